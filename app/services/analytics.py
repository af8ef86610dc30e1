"""Customer analytics: sales overview, RFM distribution, lifecycle flows, cohorts, geography.

Counts of customers (geography, the RFM grid and groups, stage counts, the overview's customers
and buyers) are sums over `customer_rollups`, kept exact by triggers (app/models/analytics.py):
a few hundred rows instead of a million customers joined with their facts or scores. The
overview's window of orders is read once, from the index on payment time. The window, lifecycle
flows and cohorts are aggregate statements with a larger `work_mem` for the
transaction (hash aggregates stay in memory) and without JIT (at 1M customers compiling the
plans cost 0.1-1.7 s a statement, more than it saved). Months and days are those of
Asia/Shanghai, where the sellers and their marketplaces live.
"""

from __future__ import annotations

import uuid
from collections import Counter
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

_WORK_MEM = text("SET LOCAL work_mem = '256MB'")
_NO_JIT = text("SET LOCAL jit = off")
_BUYING = "o.paid_at IS NOT NULL AND o.status <> 'pending_payment'"
_WINDOW = f"o.tenant_id = :t AND {_BUYING} AND o.paid_at >= :since AND o.paid_at < :until"
_W_FIGURES = "count(*) AS orders, count(DISTINCT w.customer_id) AS buyers, " \
    "coalesce(sum(w.net), 0)::bigint AS gmv"  # fmt: skip
# Sums over a tenant's rollup rows (one row per key once compacted, plus recent deltas).
_SUMS = "sum(customers) AS customers, sum(buyers) AS buyers, sum(spent_fen) AS spent"
_HEAD = text(f"SELECT {_SUMS} FROM customer_rollups WHERE tenant_id = :t")


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


async def _analytic(session: AsyncSession) -> None:
    """Settings for this transaction's aggregate statements."""
    await session.execute(_WORK_MEM)
    await session.execute(_NO_JIT)


async def overview(
    session: AsyncSession, actor: Principal, since: datetime, until: datetime, interval: Interval
) -> OverviewOut:
    actor.require("analytics:read")
    _check_window(since, until)
    await _analytic(session)
    t = actor.tenant_id
    head = (await session.execute(_HEAD, {"t": t})).one()
    # One read of the window's orders, from the index on payment time (it carries the columns:
    # migration 0013); each kind of row is one figure set: the buyers (with the repeat buyers),
    # per platform, per shop, per period. Grouping them in polars instead was 25% faster at
    # 200,000 orders but holds the window in the process (docs/benchmarks.md): not kept.
    rows = await _rows(
        session,
        f"""
        WITH w AS MATERIALIZED (
            SELECT o.customer_id, o.platform, o.shop_id, o.paid_fen - o.refund_fen AS net,
                   date_trunc(:interval, o.paid_at AT TIME ZONE 'Asia/Shanghai')::date AS period
            FROM orders o WHERE {_WINDOW}
        )
        SELECT 0 AS kind, NULL AS platform, NULL::uuid AS shop_id, NULL AS shop_name,
               NULL::date AS period, NULL AS orders, count(*) AS buyers, NULL AS gmv,
               count(*) FILTER (WHERE n >= 2) AS repeaters
        FROM (SELECT count(*) AS n FROM w WHERE customer_id IS NOT NULL GROUP BY customer_id) b
        UNION ALL
        SELECT 1, w.platform, NULL, NULL, NULL, {_W_FIGURES}, NULL FROM w GROUP BY w.platform
        UNION ALL
        SELECT 2, NULL, g.shop_id, s.name, NULL, g.orders, g.buyers, g.gmv, NULL
        FROM (SELECT w.shop_id, {_W_FIGURES} FROM w GROUP BY w.shop_id) g
        JOIN shops s ON s.tenant_id = :t AND s.id = g.shop_id
        UNION ALL
        SELECT 3, NULL, NULL, NULL, w.period, {_W_FIGURES}, NULL FROM w GROUP BY w.period
        ORDER BY kind, period, gmv DESC, platform, shop_id
        """,
        t=t,
        since=since,
        until=until,
        interval=interval.value,
    )
    platforms = [r for r in rows if r.kind == 1]
    shops = [r for r in rows if r.kind == 2]
    series = [r for r in rows if r.kind == 3]
    # Buyers and repeat buyers from one pass over the buyers; every order has one platform, so
    # the orders and GMV are the platforms' sums.
    buyers, repeaters = int(rows[0].buyers), int(rows[0].repeaters)
    orders, gmv = sum(int(r.orders) for r in platforms), sum(int(r.gmv) for r in platforms)
    return OverviewOut(
        since=since,
        until=until,
        customers=int(head.customers or 0),
        buyers_ever=int(head.buyers or 0),
        totals=SalesFigures(
            orders=orders, buyers=buyers, gmv_fen=gmv, aov_fen=round(gmv / orders) if orders else 0
        ),
        repurchase_rate=round(repeaters / buyers, 4) if buyers else 0.0,
        by_platform=[PlatformFigures(platform=r.platform, **_figures(r)) for r in platforms],
        by_shop=[
            ShopFigures(shop_id=r.shop_id, shop_name=r.shop_name, **_figures(r)) for r in shops
        ],
        series=[PeriodFigures(period=r.period, **_figures(r)) for r in series],
    )


async def rfm(session: AsyncSession, actor: Principal) -> RfmOut:
    actor.require("analytics:read")
    t = actor.tenant_id
    # Per (r, f, group): the grid adds up the groups of a cell, the groups the cells of a group.
    parts = await _rows(
        session,
        f"""
        SELECT rfm_r AS r, rfm_f AS f, rfm_group, {_SUMS}
        FROM customer_rollups
        WHERE tenant_id = :t AND (rfm_r IS NOT NULL OR rfm_group IS NOT NULL)
        GROUP BY 1, 2, 3 HAVING sum(customers) <> 0
        """,
        t=t,
    )
    customers: Counter[tuple[int, int] | str] = Counter()
    spent: Counter[tuple[int, int] | str] = Counter()
    for part in parts:
        keys = ([(part.r, part.f)] if part.r is not None else []) + (
            [part.rfm_group] if part.rfm_group is not None else []
        )
        for key in keys:
            customers[key] += int(part.customers)
            spent[key] += int(part.spent)
    as_of = await session.scalar(
        text("SELECT recomputed_at FROM segment_settings WHERE tenant_id = :t"), {"t": t}
    )
    return RfmOut(
        as_of=as_of,
        buyers=sum(int(p.customers) for p in parts if p.r is not None),
        grid=[
            RfmCell(r=r, f=f, customers=customers[r, f], spent_fen=spent[r, f])
            for r in range(1, 6)
            for f in range(1, 6)
        ],
        groups=[
            RfmGroupOut(
                group=code,
                label=label,
                customers=customers[code],
                spent_fen=spent[code],
                avg_spent_fen=round(spent[code] / customers[code]) if customers[code] else 0,
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
    await _analytic(session)
    t = actor.tenant_id
    counts: Counter[str] = Counter()
    for r in await _rows(
        session,
        f"SELECT stage, {_SUMS} FROM customer_rollups WHERE tenant_id = :t GROUP BY stage",
        t=t,
    ):
        counts[r.stage] += int(r.customers)
    # Each customer's latest event by `since` and by `until`, from the index by customer read
    # backwards (newest first), in the same order on both sides of the join: no sort.
    flows = await _rows(
        session,
        """
        WITH at_start AS (
            SELECT DISTINCT ON (customer_id) customer_id, to_stage
            FROM lifecycle_events WHERE tenant_id = :t AND changed_at <= :since
            ORDER BY customer_id DESC, changed_at DESC, id DESC
        ), at_end AS (
            SELECT DISTINCT ON (customer_id) customer_id, to_stage
            FROM lifecycle_events WHERE tenant_id = :t AND changed_at <= :until
            ORDER BY customer_id DESC, changed_at DESC, id DESC
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
    bought again and what they spent (month 0 is the first-purchase month itself).

    Activity comes from `customer_months` (one row per buyer and month, kept with the facts,
    each with the buyer's first payment) rather than from every order."""
    actor.require("analytics:read")
    _check_window(since, until)
    await _analytic(session)
    # Every buyer has a row for the month of its first payment, so a cohort's size is its
    # buyers in month 0. The rows are read from ix_customer_months_first_paid alone.
    rows = await _rows(
        session,
        """
        WITH activity AS (
            SELECT date_trunc('month', first_paid_at AT TIME ZONE 'Asia/Shanghai')::date
                       AS cohort,
                   month, count(*) AS buyers, coalesce(sum(revenue_fen), 0)::bigint AS revenue
            FROM customer_months
            WHERE tenant_id = :t AND first_paid_at >= :since AND first_paid_at < :until
            GROUP BY 1, 2
        )
        SELECT a.cohort, sum(a.buyers) FILTER (WHERE a.month = a.cohort) OVER w AS size,
               ((extract(year FROM a.month) - extract(year FROM a.cohort)) * 12
                + extract(month FROM a.month) - extract(month FROM a.cohort))::int
                   AS months_since,
               a.buyers, a.revenue
        FROM activity a
        WINDOW w AS (PARTITION BY a.cohort)
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
    rows = await _rows(
        session,
        f"""
        SELECT province, city, {_SUMS} FROM customer_rollups WHERE tenant_id = :t
        GROUP BY 1, 2 HAVING sum(customers) <> 0
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
