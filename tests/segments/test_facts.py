"""Customer facts from orders: the extended columns, idempotent refresh, rebuild by job and by
`kezhan facts rebuild`, recompute scheduling; and the analytics endpoints over them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from app.cli import app as cli
from app.runtime import Runtime
from app.services.facts import refresh_customer_facts
from app.services.segments.jobs import schedule_recompute
from tests.conftest import RunJobs, TestClock
from tests.factories import TenantFactory
from tests.segments.orders import add_order

NOW = datetime(2026, 5, 10, tzinfo=UTC)


async def _facts(runtime: Runtime, customer_id: str) -> dict[str, Any]:
    async with runtime.read_sessions() as session:
        row = (
            await session.execute(
                text(
                    "SELECT * FROM customer_facts "
                    "LEFT JOIN customer_scores USING (tenant_id, customer_id) "
                    "WHERE customer_id = :c"
                ),
                {"c": customer_id},
            )
        ).one()
    return dict(row._mapping)


async def test_facts_cover_spend_refunds_channels_products_and_categories(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock, run_jobs: RunJobs
) -> None:
    clock.set(NOW)
    tenant = await tenants.create()
    tmall, pdd = await tenant.shop("tmall"), await tenant.shop("pinduoduo")
    buyer = await tenant.customer()
    t = tenant.tenant_id
    await add_order(runtime, t, buyer["id"], tmall, NOW - timedelta(days=30), 30000,
                    [("TEA-9", "安吉白茶"), ("CUP-1", "玻璃杯")])  # fmt: skip
    await add_order(runtime, t, buyer["id"], pdd, NOW - timedelta(days=3), 10000,
                    [("TEA-9", "安吉白茶")], status="refunded", refund_fen=10000)  # fmt: skip
    await add_order(runtime, t, buyer["id"], tmall, None, 7000, status="pending_payment")
    facts = await _facts(runtime, buyer["id"])
    assert facts["order_count"] == 2
    assert facts["total_spent_fen"] == 30000
    assert facts["avg_order_value_fen"] == 15000
    assert facts["refund_count"] == 1
    assert facts["refund_rate"] == 0.5
    assert facts["first_order_at"] == NOW - timedelta(days=30)
    assert facts["previous_order_at"] == NOW - timedelta(days=30)
    assert facts["last_order_at"] == NOW - timedelta(days=3)
    assert sorted(facts["platforms"]) == ["pinduoduo", "tmall"]
    assert sorted(map(str, facts["shop_ids"])) == sorted([tmall["id"], pdd["id"]])
    assert sorted(facts["merchant_codes"]) == ["CUP-1", "TEA-9"]
    assert sorted(facts["product_titles"]) == ["安吉白茶", "玻璃杯"]
    assert facts["categories"] == []

    async with runtime.sessions() as session:
        await refresh_customer_facts(session, t, [uuid.UUID(buyer["id"])] * 2)
        await session.commit()
    again = await _facts(runtime, buyer["id"])
    assert again["updated_at"] == facts["updated_at"]  # nothing changed, nothing written

    rule = {"category": "茶", "match": "title_keyword", "pattern": "茶"}
    created = await tenant.request("POST", "/api/v1/segments/category-rules", json=rule)
    assert created.status_code == 201
    assert (await _facts(runtime, buyer["id"]))["categories"] == []
    await run_jobs()  # the rebuild the new rule queued
    assert (await _facts(runtime, buyer["id"]))["categories"] == ["茶"]
    # The rebuild also recomputes stages: the tenant's only buyer, a repeat one, tops the RFM.
    assert (await _facts(runtime, buyer["id"]))["lifecycle_stage"] == "loyal"

    rules = (await tenant.request("GET", "/api/v1/segments/category-rules")).json()
    assert [r["pattern"] for r in rules] == ["茶"]
    removed = await tenant.request("DELETE", f"/api/v1/segments/category-rules/{rules[0]['id']}")
    assert removed.status_code == 204
    await run_jobs()
    assert (await _facts(runtime, buyer["id"]))["categories"] == []


async def test_a_burst_of_scheduled_recomputes_runs_once(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock, run_jobs: RunJobs
) -> None:
    clock.set(NOW)
    tenant = await tenants.create()
    shop = await tenant.shop("jd")
    buyer = await tenant.customer()
    await add_order(runtime, tenant.tenant_id, buyer["id"], shop, NOW - timedelta(days=1), 100)
    for _ in range(3):
        await schedule_recompute(runtime, tenant.tenant_id)
    async with runtime.read_sessions() as session:
        queued = await session.scalar(
            text(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo' "
                "AND task_name = 'kezhan:segments_recompute' AND args->>'tenant_id' = :t"
            ),
            {"t": str(tenant.tenant_id)},
        )
    assert queued == 1
    await run_jobs()
    assert (await _facts(runtime, buyer["id"]))["lifecycle_stage"] == "new"


def test_cli_rebuild_recomputes_facts_from_orders(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant_id, customer_id, shop_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    async def seed() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, 'cli')", tenant_id)
            await conn.execute(
                "INSERT INTO shops (tenant_id, id, platform, name, version) "
                "VALUES ($1, $2, 'tmall', 's', 1)",
                tenant_id,
                shop_id,
            )
            await conn.execute(
                "INSERT INTO customers (tenant_id, id, version) VALUES ($1, $2, 1)",
                tenant_id,
                customer_id,
            )
            await conn.execute(
                "INSERT INTO orders (tenant_id, id, shop_id, platform, order_no, status, "
                "customer_id, paid_fen, refund_fen, paid_at) VALUES "
                "($1, $2, $3, 'tmall', 'CLI1', 'completed', $4, 4200, 0, now())",
                tenant_id,
                uuid.uuid4(),
                shop_id,
                customer_id,
            )
        finally:
            await conn.close()

    async def facts() -> Any:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchrow(
                "SELECT total_spent_fen, lifecycle_stage FROM customer_facts "
                "JOIN customer_scores USING (tenant_id, customer_id) "
                "WHERE tenant_id = $1 AND customer_id = $2",
                tenant_id,
                customer_id,
            )
        finally:
            await conn.close()

    asyncio.run(seed())
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = CliRunner().invoke(cli, ["facts", "rebuild", "--tenant", str(tenant_id)])
    assert result.exit_code == 0, result.output
    row = asyncio.run(facts())
    assert row["total_spent_fen"] == 4200
    assert row["lifecycle_stage"] == "new"


async def test_analytics_overview_cohorts_and_geo(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    clock.set(NOW)
    tenant = await tenants.create()
    tmall, pdd = await tenant.shop("tmall"), await tenant.shop("pinduoduo")
    a = await tenant.customer(province="浙江省", city="杭州市")
    b = await tenant.customer(province="浙江省", city="宁波市")
    await tenant.customer(province="广东省", city="广州市")
    t = tenant.tenant_id
    march, april = datetime(2026, 3, 15, tzinfo=UTC), datetime(2026, 4, 15, tzinfo=UTC)
    await add_order(runtime, t, a["id"], tmall, march, 10000)
    await add_order(runtime, t, a["id"], tmall, april, 20000)
    await add_order(runtime, t, a["id"], pdd, april + timedelta(days=1), 3000, refund_fen=1000)
    await add_order(runtime, t, b["id"], pdd, april, 5000)

    window = {"since": "2026-04-01T00:00:00+08:00", "until": "2026-05-01T00:00:00+08:00"}
    overview = (
        await tenant.request(
            "GET",
            "/api/v1/analytics/overview",
            role="analyst",
            params={**window, "interval": "month"},
        )
    ).json()
    assert overview["customers"] == 3
    assert overview["buyers_ever"] == 2
    assert overview["totals"] == {"orders": 3, "buyers": 2, "gmv_fen": 27000, "aov_fen": 9000}
    assert overview["repurchase_rate"] == 0.5
    platforms = {p["platform"]: p["gmv_fen"] for p in overview["by_platform"]}
    assert platforms == {"tmall": 20000, "pinduoduo": 7000}
    assert [s["shop_id"] for s in overview["by_shop"]] == [tmall["id"], pdd["id"]]
    assert overview["series"] == [
        {"period": "2026-04-01", "orders": 3, "buyers": 2, "gmv_fen": 27000, "aov_fen": 9000}
    ]
    empty = await tenant.request(
        "GET",
        "/api/v1/analytics/overview",
        params={"since": window["until"], "until": window["since"]},
    )
    assert empty.status_code == 422

    cohorts = (
        await tenant.request(
            "GET", "/api/v1/analytics/cohorts", params={"since": "2026-01-01T00:00:00+08:00"}
        )
    ).json()["cohorts"]
    assert [(c["cohort"], c["size"]) for c in cohorts] == [("2026-03-01", 1), ("2026-04-01", 1)]
    march_cohort = {m["months_since"]: m for m in cohorts[0]["months"]}
    assert march_cohort[0] == {
        "months_since": 0,
        "buyers": 1,
        "retention": 1.0,
        "revenue_fen": 10000,
    }
    assert march_cohort[1]["revenue_fen"] == 22000

    geo = (await tenant.request("GET", "/api/v1/analytics/geo")).json()["provinces"]
    assert [(p["province"], p["customers"], p["buyers"]) for p in geo] == [
        ("浙江省", 2, 2),
        ("广东省", 1, 0),
    ]
    assert geo[0]["spent_fen"] == 37000
    assert {c["city"] for c in geo[0]["cities"]} == {"杭州市", "宁波市"}
