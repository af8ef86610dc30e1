"""Customer scores (RFM, lifecycle stage) in their own table: written only when they change, a
row for every customer after a recompute, and the migration that moved them there."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from app.migrate import downgrade, upgrade
from app.runtime import Runtime
from app.services.facts import refresh_customer_facts
from tests.conftest import TestClock, _create_database, _drop_database
from tests.factories import TenantCtx, TenantFactory
from tests.segments.orders import add_order, recompute

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


async def _scores(runtime: Runtime, tenant: TenantCtx) -> dict[str, dict[str, Any]]:
    async with runtime.read_sessions() as session:
        rows = await session.execute(
            text(
                "SELECT customer_id::text AS id, xmin::text AS written_by, rfm_r, rfm_f, rfm_m, "
                "rfm_group, rfm_as_of, lifecycle_stage, lifecycle_since "
                "FROM customer_scores WHERE tenant_id = :t"
            ),
            {"t": tenant.tenant_id},
        )
        return {r.id: r._asdict() for r in rows}


async def _events(runtime: Runtime, tenant: TenantCtx) -> list[tuple[str, str | None, str]]:
    async with runtime.read_sessions() as session:
        rows = await session.execute(
            text(
                "SELECT customer_id::text, from_stage, to_stage FROM lifecycle_events "
                "WHERE tenant_id = :t ORDER BY id"
            ),
            {"t": tenant.tenant_id},
        )
        return [(r[0], r[1], r[2]) for r in rows]


async def test_only_customers_whose_scores_change_are_rewritten(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    tenant = await tenants.create()
    shop = await tenant.shop("tmall")
    buyer = await tenant.customer(display_name="买家")
    prospect = await tenant.customer(display_name="潜客")
    await add_order(runtime, tenant.tenant_id, buyer["id"], shop, T0, 5000)

    clock.set(T0)
    await recompute(runtime, tenant.tenant_id)
    first = await _scores(runtime, tenant)
    assert first[prospect["id"]]["lifecycle_stage"] == "prospect"
    assert first[prospect["id"]]["rfm_group"] is None
    assert first[prospect["id"]]["rfm_as_of"] is None
    assert first[buyer["id"]]["lifecycle_stage"] == "new"
    assert first[buyer["id"]]["rfm_as_of"] == T0
    assert await _events(runtime, tenant) == [(buyer["id"], "prospect", "new")]

    await recompute(runtime, tenant.tenant_id)
    assert await _scores(runtime, tenant) == first  # same xmin: no row was written again

    clock.set(T0 + timedelta(days=40))
    await recompute(runtime, tenant.tenant_id)
    later = await _scores(runtime, tenant)
    assert later[prospect["id"]] == first[prospect["id"]]
    moved = later[buyer["id"]]
    assert moved["written_by"] != first[buyer["id"]]["written_by"]
    assert (moved["lifecycle_stage"], moved["lifecycle_since"]) == ("active", clock())
    assert moved["rfm_as_of"] == T0  # the scores themselves did not change
    assert (await _events(runtime, tenant))[1:] == [(buyer["id"], "new", "active")]


async def test_a_customer_no_import_touched_is_a_prospect_since_created(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    tenant = await tenants.create()
    fresh = await tenant.customer(display_name="新客")
    clock.set(T0)
    await recompute(runtime, tenant.tenant_id)
    row = (await _scores(runtime, tenant))[fresh["id"]]
    async with runtime.read_sessions() as session:
        created = await session.scalar(
            text("SELECT created_at FROM customers WHERE id = :c"), {"c": fresh["id"]}
        )
        facts = await session.scalar(
            text("SELECT count(*) FROM customer_facts WHERE customer_id = :c"), {"c": fresh["id"]}
        )
    assert (row["lifecycle_stage"], row["lifecycle_since"]) == ("prospect", created)
    assert facts == 0  # scoring no longer makes an empty facts row
    assert await _events(runtime, tenant) == []


async def test_a_customer_who_no_longer_buys_loses_the_scores(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    tenant = await tenants.create()
    shop = await tenant.shop("jd")
    buyer = await tenant.customer()
    await add_order(runtime, tenant.tenant_id, buyer["id"], shop, T0, 5000)
    clock.set(T0)
    await recompute(runtime, tenant.tenant_id)
    assert (await _scores(runtime, tenant))[buyer["id"]]["rfm_group"] is not None

    async with runtime.sessions() as session:  # the payment turned out never to clear
        await session.execute(
            text(
                "UPDATE orders SET status = 'pending_payment', paid_at = NULL WHERE tenant_id = :t"
            ),
            {"t": tenant.tenant_id},
        )
        await refresh_customer_facts(session, tenant.tenant_id, [uuid.UUID(buyer["id"])])
        await session.commit()
    clock.set(T0 + timedelta(days=1))
    await recompute(runtime, tenant.tenant_id)
    row = (await _scores(runtime, tenant))[buyer["id"]]
    assert (row["rfm_r"], row["rfm_group"], row["rfm_as_of"]) == (None, None, clock())
    assert row["lifecycle_stage"] == "prospect"
    assert (await _events(runtime, tenant))[-1] == (buyer["id"], "new", "prospect")


@pytest.fixture
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"kezhan_scores_{uuid.uuid4().hex[:10]}"
    url = asyncio.run(_create_database(server_url, name))
    yield url
    asyncio.run(_drop_database(server_url, name))


_SCORED = "rfm_r, rfm_f, rfm_m, rfm_group, rfm_as_of, lifecycle_stage, lifecycle_since"


async def _fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def test_migration_moves_scores_out_of_the_facts_and_back(scratch_database: str) -> None:
    url, tenant, buyer, other = scratch_database, uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    upgrade(url, "0010")
    asyncio.run(
        _fetch(
            url,
            "WITH t AS (INSERT INTO tenants (id, name) VALUES ($1, 'm') RETURNING id), "
            "c AS (INSERT INTO customers (tenant_id, id, version) "
            "      SELECT id, x, 1 FROM t, unnest(ARRAY[$2, $3]::uuid[]) x RETURNING tenant_id) "
            "SELECT count(*) FROM c",
            tenant,
            buyer,
            other,
        )
    )
    asyncio.run(
        _fetch(
            url,
            "INSERT INTO customer_facts (tenant_id, customer_id, order_count, total_spent_fen, "
            f"refund_count, refund_fen, updated_at, {_SCORED}) VALUES "
            "($1, $2, 3, 900, 0, 0, now(), 5, 4, 3, 'important_value', $4, 'loyal', $4), "
            "($1, $3, 0, 0, 0, 0, now(), NULL, NULL, NULL, NULL, NULL, 'prospect', NULL)",
            tenant,
            buyer,
            other,
            T0,
        )
    )
    before = asyncio.run(
        _fetch(url, f"SELECT customer_id, {_SCORED} FROM customer_facts ORDER BY customer_id")
    )

    upgrade(url)
    moved = asyncio.run(
        _fetch(url, f"SELECT customer_id, {_SCORED} FROM customer_scores ORDER BY customer_id")
    )
    assert moved == before
    columns = asyncio.run(
        _fetch(
            url,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'customer_facts' AND column_name LIKE ANY ('{rfm%,lifecycle%}')",
        )
    )
    assert columns == []
    # Scored after the upgrade, before any import touched them: no facts row.
    fresh = uuid.uuid4()
    asyncio.run(
        _fetch(
            url,
            "WITH c AS (INSERT INTO customers (tenant_id, id, version) VALUES ($1, $2, 1) "
            "           RETURNING tenant_id, id, created_at) "
            "INSERT INTO customer_scores (tenant_id, customer_id, lifecycle_stage, lifecycle_since)"
            " SELECT tenant_id, id, 'prospect', created_at FROM c",
            tenant,
            fresh,
        )
    )
    fresh_scores = asyncio.run(
        _fetch(
            url, f"SELECT customer_id, {_SCORED} FROM customer_scores WHERE customer_id = $1", fresh
        )
    )

    downgrade(url, "0010")
    back = asyncio.run(
        _fetch(url, f"SELECT customer_id, {_SCORED} FROM customer_facts ORDER BY customer_id")
    )
    assert back == sorted([*before, *fresh_scores], key=lambda r: r["customer_id"])
