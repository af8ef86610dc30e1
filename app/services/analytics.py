"""Customer analytics: sales overview, RFM distribution, lifecycle flows, cohorts, geography.

Each endpoint is one or a few aggregate statements over orders, customer facts and scores with
a larger `work_mem` for the transaction (hash aggregates stay in memory). Months and days are
those of Asia/Shanghai, where the sellers and their marketplaces live.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import FieldError, NotFound, ValidationFailed
from app.schemas.analytics import (
    CityFigures,
    CohortMonth,
    CohortOut,
    CohortsOut,
    GeoOut,
    Interval,
    LifecycleOut,
    OverviewOut,
    PeriodFigures,
    PlatformFigures,
    ProvinceFigures,
    RfmCell,
    RfmGroupOut,
    RfmOut,
    SalesFigures,
    ShopFigures,
    StageChange,
    StageCount,
    StageFlow,
)
from app.services.auth import Principal
from app.services.segments.fields import LIFECYCLE_STAGES, RFM_GROUPS

_WORK_MEM = text("SET LOCAL work_mem = '128MB'")
_BUYING = "o.paid_at IS NOT NULL AND o.status <> 'pending_payment'"
_WINDOW = f"o.tenant_id = :t AND {_BUYING} AND o.paid_at >= :since AND o.paid_at < :until"
_FIGURES = "count(*) AS orders, count(DISTINCT o.customer_id) AS buyers, " \
    "coalesce(sum(o.paid_fen - o.refund_fen), 0)::bigint AS gmv"  # fmt: skip


def _check_window(since: datetime, until: datetime) -> None:
    if since >= until:
        raise ValidationFailed(
            "empty time window", [FieldError(["query", "until"], "must be after since")]
        )


def _figures(row: Any) -> dict[str, int]:
    orders, gmv = int(row.orders), int(row.gmv)
    return {
        "orders": orders,
        "buyers": int(row.buyers),
        "gmv_fen": gmv,
        "aov_fen": round(gmv / orders) if orders else 0,
    }


async def _rows(session: AsyncSession, sql: str, **params: Any) -> list[Any]:
    return list((await session.execute(text(sql), params)).all())


async def overview(
    session: AsyncSession, actor: Principal, since: datetime, until: datetime, interval: Interval
) -> OverviewOut:
    actor.require("analytics:read")
    _check_window(since, until)
    await session.execute(_WORK_MEM)
    t = actor.tenant_id
    head = (
        await session.execute(
            text(
                """
                SELECT (SELECT count(*) FROM customers
                        WHERE tenant_id = :t AND merged_into_id IS NULL) AS customers,
                       (SELECT count(*) FROM customer_facts
                        WHERE tenant_id = :t AND order_count > 0) AS buyers_ever
                """
            ),
            {"t": t},
        )
    ).one()
    per_buyer = await _rows(
        session,
        f"""
        SELECT count(*) AS orders, count(DISTINCT o.customer_id) AS buyers,
               coalesce(sum(o.paid_fen - o.refund_fen), 0)::bigint AS gmv,
               (SELECT count(*) FROM (
                   SELECT 1 FROM orders o WHERE {_WINDOW} AND o.customer_id IS NOT NULL
                   GROUP BY o.customer_id HAVING count(*) >= 2) x) AS repeaters
        FROM orders o WHERE {_WINDOW}
        """,
        t=t,
        since=since,
        until=until,
    )
    totals = per_buyer[0]
    platforms = await _rows(
        session,
        f"SELECT o.platform, {_FIGURES} FROM orders o WHERE {_WINDOW} "
        "GROUP BY o.platform ORDER BY gmv DESC, o.platform",
        t=t,
        since=since,
        until=until,
    )
    shops = await _rows(
        session,
        f"""
        SELECT o.shop_id, s.name AS shop_name, {_FIGURES}
        FROM orders o JOIN shops s ON s.tenant_id = o.tenant_id AND s.id = o.shop_id
        WHERE {_WINDOW} GROUP BY o.shop_id, s.name ORDER BY gmv DESC, o.shop_id
        """,
        t=t,
        since=since,
        until=until,
    )
    series = await _rows(
        session,
        f"""
        SELECT date_trunc(:interval, o.paid_at AT TIME ZONE 'Asia/Shanghai')::date AS period,
               {_FIGURES}
        FROM orders o WHERE {_WINDOW} GROUP BY 1 ORDER BY 1
        """,
        t=t,
        since=since,
        until=until,
        interval=interval.value,
    )
    buyers = int(totals.buyers)
    return OverviewOut(
        since=since,
        until=until,
        customers=head.customers,
        buyers_ever=head.buyers_ever,
        totals=SalesFigures(**_figures(totals)),
        repurchase_rate=round(int(totals.repeaters) / buyers, 4) if buyers else 0.0,
        by_platform=[PlatformFigures(platform=r.platform, **_figures(r)) for r in platforms],
        by_shop=[
            ShopFigures(shop_id=r.shop_id, shop_name=r.shop_name, **_figures(r)) for r in shops
        ],
        series=[PeriodFigures(period=r.period, **_figures(r)) for r in series],
    )


async def rfm(session: AsyncSession, actor: Principal) -> RfmOut:
    actor.require("analytics:read")
    await session.execute(_WORK_MEM)
    t = actor.tenant_id
    grid = await _rows(
        session,
        """
        SELECT s.rfm_r AS r, s.rfm_f AS f, count(*) AS customers,
               coalesce(sum(f.total_spent_fen), 0)::bigint AS spent
        FROM customer_scores s
        LEFT JOIN customer_facts f ON f.tenant_id = s.tenant_id AND f.customer_id = s.customer_id
        WHERE s.tenant_id = :t AND s.rfm_r IS NOT NULL
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        t=t,
    )
    groups = {
        r.rfm_group: r
        for r in await _rows(
            session,
            """
            SELECT s.rfm_group, count(*) AS customers,
                   coalesce(sum(f.total_spent_fen), 0)::bigint AS spent
            FROM customer_scores s
            LEFT JOIN customer_facts f
                   ON f.tenant_id = s.tenant_id AND f.customer_id = s.customer_id
            WHERE s.tenant_id = :t AND s.rfm_group IS NOT NULL
            GROUP BY 1
            """,
            t=t,
        )
    }
    as_of = await session.scalar(
        text("SELECT recomputed_at FROM segment_settings WHERE tenant_id = :t"), {"t": t}
    )
    cells = {(r.r, r.f): r for r in grid}
    return RfmOut(
        as_of=as_of,
        buyers=sum(int(r.customers) for r in grid),
        grid=[
            RfmCell(
                r=r,
                f=f,
                customers=int(cells[r, f].customers) if (r, f) in cells else 0,
                spent_fen=int(cells[r, f].spent) if (r, f) in cells else 0,
            )
            for r in range(1, 6)
            for f in range(1, 6)
        ],
        groups=[
            RfmGroupOut(
                group=code,
                label=label,
                customers=int(groups[code].customers) if code in groups else 0,
                spent_fen=int(groups[code].spent) if code in groups else 0,
                avg_spent_fen=round(int(groups[code].spent) / int(groups[code].customers))
                if code in groups
                else 0,
            )
            for code, label in RFM_GROUPS.items()
        ],
    )


async def lifecycle(
    session: AsyncSession, actor: Principal, since: datetime, until: datetime
) -> LifecycleOut:
    """Stage counts now, and net flows: each customer's stage at `since` versus at `until`."""
    actor.require("analytics:read")
    _check_window(since, until)
    await session.execute(_WORK_MEM)
    t = actor.tenant_id
    counts = {
        r.stage: int(r.customers)
        for r in await _rows(
            session,
            """
            SELECT coalesce(s.lifecycle_stage, 'prospect') AS stage, count(*) AS customers
            FROM customers c
            LEFT JOIN customer_scores s ON s.tenant_id = c.tenant_id AND s.customer_id = c.id
            WHERE c.tenant_id = :t GROUP BY 1
            """,
            t=t,
        )
    }
    flows = await _rows(
        session,
        """
        WITH at_start AS (
            SELECT DISTINCT ON (customer_id) customer_id, to_stage
            FROM lifecycle_events WHERE tenant_id = :t AND changed_at <= :since
            ORDER BY customer_id, changed_at DESC, id DESC
        ), at_end AS (
            SELECT DISTINCT ON (customer_id) customer_id, to_stage
            FROM lifecycle_events WHERE tenant_id = :t AND changed_at <= :until
            ORDER BY customer_id, changed_at DESC, id DESC
        )
        SELECT coalesce(s.to_stage, 'prospect') AS from_stage, e.to_stage,
               count(*) AS customers
        FROM at_end e LEFT JOIN at_start s USING (customer_id)
        WHERE coalesce(s.to_stage, 'prospect') <> e.to_stage
        GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2
        """,
        t=t,
        since=since,
        until=until,
    )
    return LifecycleOut(
        stages=[StageCount(stage=s, customers=counts.get(s, 0)) for s in LIFECYCLE_STAGES],
        since=since,
        until=until,
        flows=[
            StageFlow(from_stage=r.from_stage, to_stage=r.to_stage, customers=int(r.customers))
            for r in flows
        ],
    )


async def customer_lifecycle(
    session: AsyncSession, actor: Principal, customer_id: uuid.UUID
) -> list[StageChange]:
    """One customer's stage changes, oldest first."""
    actor.require("analytics:read")
    exists = await session.scalar(
        text("SELECT 1 FROM customers WHERE tenant_id = :t AND id = :c"),
        {"t": actor.tenant_id, "c": customer_id},
    )
    if exists is None:
        raise NotFound("no such customer")
    rows = await _rows(
        session,
        """
        SELECT from_stage, to_stage, changed_at FROM lifecycle_events
        WHERE tenant_id = :t AND customer_id = :c ORDER BY changed_at, id
        """,
        t=actor.tenant_id,
        c=customer_id,
    )
    return [
        StageChange(from_stage=r.from_stage, to_stage=r.to_stage, changed_at=r.changed_at)
        for r in rows
    ]


async def cohorts(
    session: AsyncSession, actor: Principal, since: datetime, until: datetime
) -> CohortsOut:
    """Buyers grouped by the month of their first purchase; per later month, how many of them
    bought again and what they spent (month 0 is the first-purchase month itself)."""
    actor.require("analytics:read")
    _check_window(since, until)
    await session.execute(_WORK_MEM)
    rows = await _rows(
        session,
        f"""
        WITH buyers AS (
            SELECT customer_id,
                   date_trunc('month', first_order_at AT TIME ZONE 'Asia/Shanghai') AS cohort
            FROM customer_facts
            WHERE tenant_id = :t AND order_count > 0
              AND first_order_at >= :since AND first_order_at < :until
        ), sizes AS (
            SELECT cohort, count(*) AS size FROM buyers GROUP BY cohort
        ), activity AS (
            SELECT b.cohort,
                   ((extract(year FROM m.month) - extract(year FROM b.cohort)) * 12
                    + extract(month FROM m.month) - extract(month FROM b.cohort))::int
                       AS months_since,
                   count(DISTINCT o.customer_id) AS buyers,
                   coalesce(sum(o.paid_fen - o.refund_fen), 0)::bigint AS revenue
            FROM buyers b
            JOIN orders o ON o.tenant_id = :t AND o.customer_id = b.customer_id AND {_BUYING}
            CROSS JOIN LATERAL (
                SELECT date_trunc('month', o.paid_at AT TIME ZONE 'Asia/Shanghai') AS month
            ) m
            GROUP BY 1, 2
        )
        SELECT s.cohort::date AS cohort, s.size, a.months_since, a.buyers, a.revenue
        FROM sizes s JOIN activity a USING (cohort)
        ORDER BY 1, 3
        """,
        t=actor.tenant_id,
        since=since,
        until=until,
    )
    result: dict[Any, CohortOut] = {}
    for r in rows:
        cohort = result.setdefault(r.cohort, CohortOut(cohort=r.cohort, size=r.size, months=[]))
        cohort.months.append(
            CohortMonth(
                months_since=r.months_since,
                buyers=int(r.buyers),
                retention=round(int(r.buyers) / int(r.size), 4),
                revenue_fen=int(r.revenue),
            )
        )
    return CohortsOut(cohorts=list(result.values()))


async def geo(session: AsyncSession, actor: Principal, cities_per_province: int) -> GeoOut:
    actor.require("analytics:read")
    await session.execute(_WORK_MEM)
    rows = await _rows(
        session,
        """
        SELECT c.province, c.city, count(*) AS customers,
               count(*) FILTER (WHERE f.order_count > 0) AS buyers,
               coalesce(sum(f.total_spent_fen), 0)::bigint AS spent
        FROM customers c
        LEFT JOIN customer_facts f ON f.tenant_id = c.tenant_id AND f.customer_id = c.id
        WHERE c.tenant_id = :t
        GROUP BY 1, 2
        """,
        t=actor.tenant_id,
    )
    provinces: dict[str | None, ProvinceFigures] = {}
    for r in rows:
        p = provinces.setdefault(
            r.province,
            ProvinceFigures(province=r.province, customers=0, buyers=0, spent_fen=0, cities=[]),
        )
        p.customers += int(r.customers)
        p.buyers += int(r.buyers)
        p.spent_fen += int(r.spent)
        p.cities.append(
            CityFigures(
                city=r.city,
                customers=int(r.customers),
                buyers=int(r.buyers),
                spent_fen=int(r.spent),
            )
        )
    ordered = sorted(provinces.values(), key=lambda p: (-p.customers, p.province or ""))
    for p in ordered:
        p.cities = sorted(p.cities, key=lambda c: (-c.customers, c.city or ""))[
            :cities_per_province
        ]
    return GeoOut(provinces=ordered)
