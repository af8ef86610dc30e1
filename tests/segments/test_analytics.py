"""Analytics endpoints against a direct computation: on a varied tenant (several platforms and
shops, refunds, unpaid orders, an order without a customer, a merged customer, stage changes at
several recomputes) each answer equals what plain per-figure statements over the tables give."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from app.runtime import Runtime
from app.services.facts import refresh_customer_facts
from app.services.segments.fields import LIFECYCLE_STAGES, RFM_GROUPS
from tests.conftest import TestClock
from tests.factories import TenantCtx, TenantFactory
from tests.segments.orders import add_order, keep_on_merge, recompute

T0 = datetime(2025, 6, 1, 3, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=400)

_BUYING = "o.paid_at IS NOT NULL AND o.status <> 'pending_payment'"
_WINDOW = f"o.tenant_id = :t AND {_BUYING} AND o.paid_at >= :since AND o.paid_at < :until"
_FIGURES = (
    "count(*) AS orders, count(DISTINCT o.customer_id) AS buyers, "
    "coalesce(sum(o.paid_fen - o.refund_fen), 0)::bigint AS gmv"
)


async def _query(runtime: Runtime, sql: str, **params: Any) -> list[Any]:
    async with runtime.read_sessions() as session:
        return list((await session.execute(text(sql), params)).all())


def _figures(row: Any) -> dict[str, int]:
    orders, gmv = int(row.orders), int(row.gmv)
    return {
        "orders": orders,
        "buyers": int(row.buyers),
        "gmv_fen": gmv,
        "aov_fen": round(gmv / orders) if orders else 0,
    }


async def _seed(tenants: TenantFactory, runtime: Runtime, clock: TestClock) -> TenantCtx:
    rng = random.Random(4)
    tenant = await tenants.create()
    t = tenant.tenant_id
    shops = [await tenant.shop(p) for p in ("tmall", "tmall", "pinduoduo", "jd")]
    customers = [
        await tenant.customer(province=rng.choice(["浙江省", "广东省", None])) for _ in range(14)
    ]
    statuses = ["completed"] * 6 + ["refunded", "partially_refunded", "pending_payment"]
    for customer in customers[:11]:
        for _ in range(rng.randint(1, 7)):
            status = rng.choice(statuses)
            paid = 1000 * rng.randint(1, 40)
            refund = {"refunded": paid, "partially_refunded": paid // 4}.get(status, 0)
            day = T0 + timedelta(days=rng.randint(0, 399), hours=rng.randint(0, 23))
            await add_order(
                runtime, t, customer["id"], rng.choice(shops),
                None if status == "pending_payment" and rng.random() < 0.5 else day,
                paid, status=status, refund_fen=refund,
            )  # fmt: skip
    async with runtime.sessions() as session:
        # An order no customer could be matched to, and a customer merged into another.
        await session.execute(
            text(
                "INSERT INTO orders (tenant_id, id, shop_id, platform, order_no, status, "
                "paid_fen, refund_fen, paid_at) VALUES (:t, :id, :shop, 'jd', 'NOBODY', "
                "'completed', 4200, 0, :paid)"
            ),
            {"t": t, "id": uuid.uuid4(), "shop": uuid.UUID(shops[3]["id"]), "paid": NOW},
        )
        await session.execute(
            text("UPDATE customers SET merged_into_id = :s WHERE tenant_id = :t AND id = :m"),
            {"t": t, "s": uuid.UUID(customers[0]["id"]), "m": uuid.UUID(customers[12]["id"])},
        )
        await session.commit()
    for days in (100, 250, 330, 400):
        clock.set(T0 + timedelta(days=days))
        await recompute(runtime, t)
    clock.set(NOW)
    return tenant


async def _expected_overview(
    runtime: Runtime, t: uuid.UUID, since: datetime, until: datetime, interval: str
) -> dict[str, Any]:
    w = {"t": t, "since": since, "until": until}
    (totals,) = await _query(
        runtime,
        f"""SELECT {_FIGURES}, (SELECT count(*) FROM (
                SELECT 1 FROM orders o WHERE {_WINDOW} AND o.customer_id IS NOT NULL
                GROUP BY o.customer_id HAVING count(*) >= 2) x) AS repeaters
            FROM orders o WHERE {_WINDOW}""",
        **w,
    )
    platforms = await _query(
        runtime,
        f"SELECT o.platform, {_FIGURES} FROM orders o WHERE {_WINDOW} "
        "GROUP BY o.platform ORDER BY gmv DESC, o.platform",
        **w,
    )
    shops = await _query(
        runtime,
        f"""SELECT o.shop_id, s.name AS shop_name, {_FIGURES}
            FROM orders o JOIN shops s ON s.tenant_id = o.tenant_id AND s.id = o.shop_id
            WHERE {_WINDOW} GROUP BY o.shop_id, s.name ORDER BY gmv DESC, o.shop_id""",
        **w,
    )
    series = await _query(
        runtime,
        f"""SELECT date_trunc(:interval, o.paid_at AT TIME ZONE 'Asia/Shanghai')::date AS period,
                   {_FIGURES}
            FROM orders o WHERE {_WINDOW} GROUP BY 1 ORDER BY 1""",
        interval=interval,
        **w,
    )
    (head,) = await _query(
        runtime,
        """SELECT (SELECT count(*) FROM customers
                   WHERE tenant_id = :t AND merged_into_id IS NULL) AS customers,
                  (SELECT count(*) FROM customer_facts
                   WHERE tenant_id = :t AND order_count > 0) AS buyers_ever""",
        t=t,
    )
    buyers = int(totals.buyers)
    return {
        "customers": head.customers,
        "buyers_ever": head.buyers_ever,
        "totals": _figures(totals),
        "repurchase_rate": round(int(totals.repeaters) / buyers, 4) if buyers else 0.0,
        "by_platform": [{"platform": r.platform, **_figures(r)} for r in platforms],
        "by_shop": [
            {"shop_id": str(r.shop_id), "shop_name": r.shop_name, **_figures(r)} for r in shops
        ],
        "series": [{"period": r.period.isoformat(), **_figures(r)} for r in series],
    }


async def test_overview_equals_the_figures_computed_one_by_one(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    tenant = await _seed(tenants, runtime, clock)
    windows = [
        (NOW - timedelta(days=30), NOW + timedelta(seconds=1), "day"),
        (T0, NOW + timedelta(days=1), "week"),
        (T0 + timedelta(days=37, hours=5), T0 + timedelta(days=301), "month"),
        (T0 - timedelta(days=30), T0, "day"),  # no orders at all
    ]
    for since, until, interval in windows:
        response = await tenant.request(
            "GET",
            "/api/v1/analytics/overview",
            params={"since": since.isoformat(), "until": until.isoformat(), "interval": interval},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        expected = await _expected_overview(runtime, tenant.tenant_id, since, until, interval)
        assert {k: body[k] for k in expected} == expected, (since, until, interval)
    assert expected["totals"]["orders"] == 0
    assert body["series"] == body["by_shop"] == []


async def test_rfm_grid_and_groups_equal_direct_sums(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    tenant = await _seed(tenants, runtime, clock)
    t = tenant.tenant_id
    join = (
        "FROM customer_scores s LEFT JOIN customer_facts f "
        "ON f.tenant_id = s.tenant_id AND f.customer_id = s.customer_id WHERE s.tenant_id = :t"
    )
    spent = "count(*) AS customers, coalesce(sum(f.total_spent_fen), 0)::bigint AS spent"
    grid = {
        (r.r, r.f): r
        for r in await _query(
            runtime,
            f"SELECT s.rfm_r AS r, s.rfm_f AS f, {spent} {join} AND s.rfm_r IS NOT NULL "
            "GROUP BY 1, 2",
            t=t,
        )
    }
    groups = {
        r.rfm_group: r
        for r in await _query(
            runtime,
            f"SELECT s.rfm_group, {spent} {join} AND s.rfm_group IS NOT NULL GROUP BY 1",
            t=t,
        )
    }
    body = (await tenant.request("GET", "/api/v1/analytics/rfm", role="analyst")).json()
    assert len(grid) > 1
    assert len(groups) > 1
    assert body["buyers"] == sum(int(r.customers) for r in grid.values())
    assert body["grid"] == [
        {
            "r": r,
            "f": f,
            "customers": int(grid[r, f].customers) if (r, f) in grid else 0,
            "spent_fen": int(grid[r, f].spent) if (r, f) in grid else 0,
        }
        for r in range(1, 6)
        for f in range(1, 6)
    ]
    assert body["groups"] == [
        {
            "group": code,
            "label": label,
            "customers": int(groups[code].customers) if code in groups else 0,
            "spent_fen": int(groups[code].spent) if code in groups else 0,
            "avg_spent_fen": round(int(groups[code].spent) / int(groups[code].customers))
            if code in groups
            else 0,
        }
        for code, label in RFM_GROUPS.items()
    ]


async def test_lifecycle_stages_and_flows_equal_a_join_of_customers_and_history(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    tenant = await _seed(tenants, runtime, clock)
    t = tenant.tenant_id
    counts = {
        r.stage: int(r.customers)
        for r in await _query(
            runtime,
            """SELECT coalesce(s.lifecycle_stage, 'prospect') AS stage, count(*) AS customers
               FROM customers c
               LEFT JOIN customer_scores s ON s.tenant_id = c.tenant_id AND s.customer_id = c.id
               WHERE c.tenant_id = :t AND c.merged_into_id IS NULL GROUP BY 1""",
            t=t,
        )
    }
    events = await _query(
        runtime,
        "SELECT customer_id, to_stage, changed_at, id FROM lifecycle_events WHERE tenant_id = :t",
        t=t,
    )

    def stage_at(when: datetime) -> dict[Any, str]:
        """Each customer's stage at `when`: the to_stage of its latest event by then."""
        latest: dict[Any, Any] = {}
        for e in events:
            if e.changed_at <= when:
                seen = latest.get(e.customer_id)
                if seen is None or (e.changed_at, e.id) > (seen.changed_at, seen.id):
                    latest[e.customer_id] = e
        return {c: e.to_stage for c, e in latest.items()}

    for since, until in ((T0 + timedelta(days=150), NOW), (T0, T0 + timedelta(days=300))):
        before, after = stage_at(since), stage_at(until)
        moves = Counter(
            (before.get(c, "prospect"), stage)
            for c, stage in after.items()
            if before.get(c, "prospect") != stage
        )
        flows = sorted(
            ((a, b, n) for (a, b), n in moves.items()), key=lambda m: (-m[2], m[0], m[1])
        )
        body = (
            await tenant.request(
                "GET",
                "/api/v1/analytics/lifecycle",
                params={"since": since.isoformat(), "until": until.isoformat()},
            )
        ).json()
        assert body["stages"] == [
            {"stage": s, "customers": counts.get(s, 0)} for s in LIFECYCLE_STAGES
        ]
        assert body["flows"] == [
            {"from_stage": a, "to_stage": b, "customers": n} for a, b, n in flows
        ]
        assert flows
    assert counts["prospect"] >= 2  # live customers only: the merged one is left out


_COHORTS_FROM_ORDERS = f"""
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
                + extract(month FROM m.month) - extract(month FROM b.cohort))::int AS months_since,
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
"""


async def _cohorts_agree(runtime: Runtime, tenant: TenantCtx) -> list[dict[str, Any]]:
    """The endpoint's cohorts equal those computed from every order; returns them."""
    since, until = T0 - timedelta(days=40), NOW
    rows = await _query(runtime, _COHORTS_FROM_ORDERS, t=tenant.tenant_id, since=since, until=until)
    expected: dict[str, dict[str, Any]] = {}
    for r in rows:
        cohort = expected.setdefault(
            r.cohort.isoformat(), {"cohort": r.cohort.isoformat(), "size": r.size, "months": []}
        )
        cohort["months"].append(
            {
                "months_since": r.months_since,
                "buyers": int(r.buyers),
                "retention": round(int(r.buyers) / int(r.size), 4),
                "revenue_fen": int(r.revenue),
            }
        )
    response = await tenant.request(
        "GET",
        "/api/v1/analytics/cohorts",
        params={"since": since.isoformat(), "until": until.isoformat()},
    )
    assert response.status_code == 200, response.text
    cohorts: list[dict[str, Any]] = response.json()["cohorts"]
    assert cohorts == list(expected.values())
    return cohorts


def _order(no: str, key: str, day: int, paid: int, **fields: Any) -> dict[str, Any]:
    at = (T0 + timedelta(days=day)).isoformat()
    return {"order_no": no, "buyer_key": key, "status": "completed", "paid_fen": paid,
            "ordered_at": at, "paid_at": at, **fields}  # fmt: skip


async def test_cohorts_follow_batches_status_changes_refunds_merges_and_rebuilds(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    clock.set(NOW)
    tenant = await tenants.create()
    t = tenant.tenant_id
    shop = (await tenant.shop("offline"))["id"]

    async def batch(*orders: dict[str, Any]) -> None:
        response = await tenant.request(
            "POST", "/api/v1/orders/batch", json={"shop_id": shop, "orders": list(orders)}
        )
        assert response.status_code == 200, response.text

    await batch(
        _order("A-1", "A", 0, 10000), _order("A-2", "A", 35, 2000), _order("A-3", "A", 36, 500),
        _order("B-1", "B", 3, 7000), _order("B-2", "B", 100, 3000),
        _order("C-1", "C", 40, 9000), _order("C-2", "C", 70, 1000),
        _order("D-1", "D", 41, 4000, status="pending_payment", paid_at=None),
    )  # fmt: skip
    before = await _cohorts_agree(runtime, tenant)
    assert [c["size"] for c in before] == [2, 1]
    # A later export: a status change, a refund, a payment moved to another month, a new buyer.
    await batch(
        _order("A-2", "A", 35, 2000, status="refunded", refund_fen=2000),
        _order("B-2", "B", 100, 3000, status="partially_refunded", refund_fen=1000),
        _order("C-2", "C", 130, 1000),
        _order("D-1", "D", 41, 4000),
    )  # fmt: skip
    await _cohorts_agree(runtime, tenant)

    async def customer_of(key: str) -> str:
        found = await tenant.request(
            "GET", "/api/v1/customers/lookup", params={"platform": "offline", "buyer_key": key}
        )
        return str(found.json()["id"])

    a, b, c, d = [await customer_of(k) for k in "ABCD"]
    merged = await tenant.request(
        "POST", f"/api/v1/customers/{a}/merge", json={"other_customer_id": b}
    )
    assert merged.status_code == 200, merged.text
    await _cohorts_agree(runtime, tenant)
    # A loyalty account names C, so C stays as a tombstone pointing at A after the merge.
    await keep_on_merge(runtime, t, c)
    merged = await tenant.request(
        "POST", f"/api/v1/customers/{d}/merge", json={"other_customer_id": c}
    )
    assert merged.status_code == 200, merged.text
    async with runtime.read_sessions() as session:
        tombstone = await session.scalar(
            text("SELECT merged_into_id FROM customers WHERE id = :c"), {"c": uuid.UUID(c)}
        )
    assert str(tombstone) == d
    after = await _cohorts_agree(runtime, tenant)
    assert after != before

    # `kezhan facts rebuild` refreshes every customer (the tombstone's facts too): the months
    # are rebuilt from the orders.
    async with runtime.sessions() as session:
        await session.execute(text("DELETE FROM customer_months WHERE tenant_id = :t"), {"t": t})
        await refresh_customer_facts(session, uuid.UUID(str(t)), None)
        await session.commit()

    def activity(cohorts: list[dict[str, Any]]) -> list[tuple[int, int, int]]:
        return [
            (m["months_since"], m["buyers"], m["revenue_fen"]) for c in cohorts for m in c["months"]
        ]

    assert activity(await _cohorts_agree(runtime, tenant)) == activity(after)
