"""`customer_rollups` against a count from scratch: after every kind of write that moves a
customer (created, moved to another city, buying, refunded, scored, merged away and deleted,
merged into a tombstone, facts rebuilt), the sums per key equal the join of customers with
their facts and scores, for this tenant and untouched for another; compaction changes no sum."""

from __future__ import annotations

import asyncio
import importlib.util
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from app.runtime import Runtime
from app.services.demo_exports import write_pdd_export
from app.services.facts import refresh_customer_facts
from app.services.imports import pipeline
from app.services.rollups import (
    LARGE,
    compact_rollups,
    defer_rollups,
    finish_rollups,
    lock_rollups,
)
from app.services.segments import query
from app.services.segments.compiler import compile_filter
from app.services.segments.fields import QueryContext
from tests.conftest import TestClock
from tests.factories import TenantCtx, TenantFactory
from tests.imports.helpers import upload
from tests.segments.orders import keep_on_merge, recompute

NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
_KEY = "province, city, rfm_r, rfm_f, rfm_group, stage"

_FROM_SCRATCH = """
    SELECT c.province, c.city, s.rfm_r, s.rfm_f, s.rfm_group,
           coalesce(s.lifecycle_stage, 'prospect') AS stage, count(*) AS customers,
           count(*) FILTER (WHERE f.order_count > 0) AS buyers,
           coalesce(sum(f.total_spent_fen), 0) AS spent
    FROM customers c
    LEFT JOIN customer_facts f ON f.tenant_id = c.tenant_id AND f.customer_id = c.id
    LEFT JOIN customer_scores s ON s.tenant_id = c.tenant_id AND s.customer_id = c.id
    WHERE c.tenant_id = :t AND c.merged_into_id IS NULL
    GROUP BY 1, 2, 3, 4, 5, 6
"""
_SUMMED = f"""
    SELECT {_KEY}, sum(customers) AS customers, sum(buyers) AS buyers, sum(spent_fen) AS spent
    FROM customer_rollups WHERE tenant_id = :t
    GROUP BY {_KEY}
    HAVING sum(customers) <> 0 OR sum(buyers) <> 0 OR sum(spent_fen) <> 0
"""


def _keyed(rows: list[Any]) -> dict[tuple[Any, ...], tuple[int, int, int]]:
    return {
        (r.province, r.city, r.rfm_r, r.rfm_f, r.rfm_group, r.stage): (
            int(r.customers),
            int(r.buyers),
            int(r.spent),
        )
        for r in rows
    }


async def _assert_exact(runtime: Runtime, tenant: TenantCtx) -> dict[tuple[Any, ...], Any]:
    async with runtime.sessions() as session:
        # Fresh statistics: planned on stale ones (a server without autovacuum), the count from
        # scratch over 30,000 customers just written took minutes (nested loops).
        await session.execute(text("ANALYZE customers, customer_facts, customer_scores"))
        await session.commit()
    async with runtime.read_sessions() as session:
        params = {"t": tenant.tenant_id}
        expected = _keyed(list((await session.execute(text(_FROM_SCRATCH), params)).all()))
        summed = _keyed(list((await session.execute(text(_SUMMED), params)).all()))
    assert summed == expected
    return summed


class _Shop:
    def __init__(self, tenant: TenantCtx, shop: str) -> None:
        self.tenant, self.shop = tenant, shop

    async def batch(self, *orders: tuple[str, str, int, int, str, int]) -> None:
        body = [
            {
                "order_no": no,
                "buyer_key": key,
                "status": status,
                "paid_fen": paid,
                "refund_fen": refund,
                "ordered_at": at,
                "paid_at": None if status == "pending_payment" else at,
                "province": "浙江省",
                "city": "杭州市",
            }
            for no, key, day, paid, status, refund in orders
            for at in [(NOW - timedelta(days=day)).isoformat()]
        ]
        response = await self.tenant.request(
            "POST", "/api/v1/orders/batch", json={"shop_id": self.shop, "orders": body}
        )
        assert response.status_code == 200, response.text

    async def customer_of(self, key: str) -> str:
        found = await self.tenant.request(
            "GET", "/api/v1/customers/lookup", params={"platform": "offline", "buyer_key": key}
        )
        assert found.status_code == 200, found.text
        return str(found.json()["id"])


async def test_rollups_follow_every_write_that_moves_a_customer(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    clock.set(NOW)
    tenant, other = await tenants.create(), await tenants.create()
    await other.customer(province="广东省", city="深圳市")
    theirs = await _assert_exact(runtime, other)
    shop = _Shop(tenant, (await tenant.shop("offline"))["id"])

    # Created by hand, in places and nowhere.
    people = [
        await tenant.customer(province=p, city=c)
        for p, c in [("浙江省", "杭州市"), ("浙江省", "宁波市"), ("广东省", "广州市"), (None, None)]
    ]
    await _assert_exact(runtime, tenant)
    # Moved to another city, then given a name only (no move).
    for body in ({"province": "江苏省", "city": "南京市"}, {"display_name": "改名"}):
        moved = await tenant.request("PATCH", f"/api/v1/customers/{people[0]['id']}", json=body)
        assert moved.status_code == 200, moved.text
        await _assert_exact(runtime, tenant)

    # Buying: new customers from a batch, then a re-export with a refund and a new payment.
    await shop.batch(
        ("A-1", "A", 300, 10000, "completed", 0), ("A-2", "A", 20, 2000, "completed", 0),
        ("B-1", "B", 200, 7000, "completed", 0), ("C-1", "C", 5, 9000, "completed", 0),
        ("D-1", "D", 3, 4000, "pending_payment", 0),
    )  # fmt: skip
    await _assert_exact(runtime, tenant)
    await shop.batch(
        ("A-2", "A", 20, 2000, "refunded", 2000), ("D-1", "D", 3, 4000, "completed", 0),
        ("E-1", "E", 1, 500, "completed", 0),
    )  # fmt: skip
    await _assert_exact(runtime, tenant)

    # Scored, then scored again later (stages and scores move).
    await recompute(runtime, tenant.tenant_id)
    scored = await _assert_exact(runtime, tenant)
    assert {key[5] for key in scored} >= {"prospect", "new"}
    clock.set(NOW + timedelta(days=200))
    await recompute(runtime, tenant.tenant_id)
    await _assert_exact(runtime, tenant)

    # Merged away and deleted; merged into a tombstone (a loyalty account keeps C).
    a, b, c, d = [await shop.customer_of(k) for k in "ABCD"]
    merged = await tenant.request(
        "POST", f"/api/v1/customers/{a}/merge", json={"other_customer_id": b}
    )
    assert merged.status_code == 200, merged.text
    await _assert_exact(runtime, tenant)
    await keep_on_merge(runtime, tenant.tenant_id, c)
    merged = await tenant.request(
        "POST", f"/api/v1/customers/{d}/merge", json={"other_customer_id": c}
    )
    assert merged.status_code == 200, merged.text
    await _assert_exact(runtime, tenant)

    # Every customer's facts rebuilt, then the rows compacted: the same sums, one row per key.
    async with runtime.sessions() as session:
        await refresh_customer_facts(session, uuid.UUID(str(tenant.tenant_id)), None)
        await session.commit()
    before = await _assert_exact(runtime, tenant)
    async with runtime.sessions() as session:
        await compact_rollups(session, uuid.UUID(str(tenant.tenant_id)))
        await session.commit()
        rows = await session.scalar(
            text("SELECT count(*) FROM customer_rollups WHERE tenant_id = :t"),
            {"t": tenant.tenant_id},
        )
    assert await _assert_exact(runtime, tenant) == before
    assert rows == len(before)
    assert await _assert_exact(runtime, other) == theirs


async def test_rollups_stay_exact_under_a_random_run_of_writes(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    rng = random.Random(13)
    clock.set(NOW)
    tenant = await tenants.create()
    shop = _Shop(tenant, (await tenant.shop("offline"))["id"])
    places = [("浙江省", "杭州市"), ("浙江省", "温州市"), ("四川省", "成都市"), (None, None)]
    keys = [f"K{i}" for i in range(8)]
    orders: dict[str, str] = {}
    for step in range(24):
        action = rng.choice(["order", "order", "refund", "move", "recompute", "merge"])
        if action == "order":
            no = f"N{step}"
            orders[no] = rng.choice(keys)
            paid = rng.randint(1, 90) * 100
            await shop.batch((no, orders[no], rng.randint(0, 400), paid, "completed", 0))
        elif action == "refund" and orders:
            no = rng.choice(sorted(orders))
            await shop.batch((no, orders[no], 10, 100, "refunded", 100))
        elif action == "move":
            found = await tenant.request("GET", "/api/v1/customers", params={"limit": 50})
            items = found.json()["items"]
            if items:
                province, city = rng.choice(places)
                moved = await tenant.request(
                    "PATCH",
                    f"/api/v1/customers/{rng.choice(items)['id']}",
                    json={"province": province, "city": city},
                )
                assert moved.status_code == 200, moved.text
        elif action == "recompute":
            clock.set(clock() + timedelta(days=rng.randint(1, 120)))
            await recompute(runtime, tenant.tenant_id)
        else:
            found = await tenant.request("GET", "/api/v1/customers", params={"limit": 50})
            items = found.json()["items"]
            if len(items) >= 2:
                first, second = rng.sample(items, 2)
                merged = await tenant.request(
                    "POST",
                    f"/api/v1/customers/{first['id']}/merge",
                    json={"other_customer_id": second["id"]},
                )
                assert merged.status_code == 200, merged.text
        await _assert_exact(runtime, tenant)


async def test_concurrent_changes_to_a_customers_scores_and_facts_lose_no_move(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    """A recompute moving a customer to another group while an import changes their spend (or
    a user their city): each trigger computes its delta from the other table, so the second
    must wait for the first to commit, in either order."""
    clock.set(NOW)
    tenant = await tenants.create()
    shop = _Shop(tenant, (await tenant.shop("offline"))["id"])
    await shop.batch(
        ("A-1", "A", 10, 10000, "completed", 0), ("B-1", "B", 300, 500, "completed", 0)
    )
    await recompute(runtime, tenant.tenant_id)
    customer = uuid.UUID(await shop.customer_of("A"))
    key = {"t": tenant.tenant_id, "c": customer}
    writes = [
        "UPDATE customer_scores SET rfm_group = 'general_retain', lifecycle_stage = 'churned' "
        "WHERE tenant_id = :t AND customer_id = :c",
        "UPDATE customer_facts SET total_spent_fen = total_spent_fen + 777 "
        "WHERE tenant_id = :t AND customer_id = :c",
        "UPDATE customers SET city = '绍兴市' WHERE tenant_id = :t AND id = :c",
    ]
    for first, second in [(0, 1), (1, 0), (0, 2), (2, 1)]:
        async with runtime.sessions() as one, runtime.sessions() as two:
            await one.execute(text(writes[first]), key)

            async def other(session: Any = two, statement: str = writes[second]) -> None:
                await session.execute(text(statement), key)

            waiting = asyncio.create_task(other())
            await asyncio.sleep(0.3)
            assert not waiting.done()  # held by the first transaction's lock on the customer
            await one.commit()
            await waiting
            await two.commit()
        await _assert_exact(runtime, tenant)


async def test_large_statements_rebuild_or_lock_the_tenant_and_stay_exact(
    tenants: TenantFactory, runtime: Runtime
) -> None:
    """Statements of 10,000 rows or more lock the tenant's rollups instead of each customer;
    those touching at least half the tenant's customers rebuild its rollups from scratch."""
    tenant = await tenants.create()
    t = {"t": tenant.tenant_id}
    steps = [
        # 30,000 customers in one statement: a rebuild (the tenant had none).
        """INSERT INTO customers (tenant_id, id, display_name, province, city, tags, attributes,
                                  version, created_at, updated_at)
           SELECT :t, gen_random_uuid(), 'c' || i, (ARRAY['浙江省', '广东省', NULL])[1 + i % 3],
                  (ARRAY['杭州市', '广州市', NULL])[1 + i % 3], '{}', '{}', 1, now(), now()
           FROM generate_series(1, 30000) i""",
        # Facts for 20,000 of them (two thirds: a rebuild), scores for 12,000 (a delta under
        # the tenant's lock), then 11,000 moves of facts and scores, and 11,000 deletions.
        """INSERT INTO customer_facts (tenant_id, customer_id, order_count, total_spent_fen,
                                       refund_count, refund_fen)
           SELECT :t, id, 1 + (hashtext(id::text) & 3), 100 + (hashtext(id::text) & 1023), 0, 0
           FROM (SELECT id FROM customers WHERE tenant_id = :t ORDER BY id LIMIT 20000) c""",
        """INSERT INTO customer_scores (tenant_id, customer_id, rfm_r, rfm_f, rfm_m, rfm_group,
                                        lifecycle_stage)
           SELECT :t, customer_id, 1 + (hashtext(customer_id::text) & 3), 2, 3,
                  'important_value', 'active'
           FROM customer_facts WHERE tenant_id = :t ORDER BY customer_id LIMIT 12000""",
        """UPDATE customer_facts SET total_spent_fen = total_spent_fen * 2, order_count = 0
           WHERE tenant_id = :t AND customer_id IN (
               SELECT customer_id FROM customer_facts WHERE tenant_id = :t
               ORDER BY customer_id DESC LIMIT 11000)""",
        """UPDATE customer_scores SET lifecycle_stage = 'loyal', rfm_group = 'general_keep'
           WHERE tenant_id = :t AND customer_id IN (
               SELECT customer_id FROM customer_scores WHERE tenant_id = :t
               ORDER BY customer_id LIMIT 11000)""",
        """UPDATE customers SET city = '温州市' WHERE tenant_id = :t AND id IN (
               SELECT id FROM customers WHERE tenant_id = :t ORDER BY id DESC LIMIT 11000)""",
        """DELETE FROM customer_scores WHERE tenant_id = :t AND customer_id IN (
               SELECT customer_id FROM customer_scores WHERE tenant_id = :t
               ORDER BY customer_id DESC LIMIT 11000)""",
    ]
    for step in steps:
        async with runtime.sessions() as session:
            await session.execute(text(step), t)
            await session.commit()
        summed = await _assert_exact(runtime, tenant)
    assert sum(v[0] for v in summed.values()) == 30000


_PLACES = [
    ("浙江省", "杭州市"),
    ("浙江省", "宁波市"),
    ("广东省", "广州市"),
    ("广东省", None),
    (None, None),
]
_STAGES = ["prospect", "new", "active", "loyal", "at_risk", "churned", "won_back"]
_GROUPS = ["important_value", "general_keep", "general_retain"]


def _leaf(rng: random.Random) -> dict[str, Any]:
    field = rng.choice(["province", "city", "rfm_r", "rfm_f", "rfm_group", "lifecycle_stage"])
    pool: list[Any] = {
        "province": ["浙江省", "广东省", "四川省"],
        "city": ["杭州市", "宁波市", "广州市"],
        "rfm_r": [1, 2, 3, 4, 5],
        "rfm_f": [1, 2, 3, 4, 5],
        "rfm_group": _GROUPS,
        "lifecycle_stage": _STAGES,
    }[field]
    ops = ["eq", "ne", "in", "not_in", "is_null"]
    if field in ("province", "city"):
        ops += ["starts_with", "contains"]
    if field in ("rfm_r", "rfm_f"):
        ops += ["gt", "gte", "lt", "lte", "between"]
    op = rng.choice(ops)
    value: Any = rng.choice(pool)
    if op in ("in", "not_in"):
        value = rng.sample(pool, rng.randint(1, 3))
    elif op == "is_null":
        value = rng.random() < 0.5
    elif op == "between":
        value = sorted(rng.sample(pool, 2))
    elif op in ("starts_with", "contains"):
        value = value[: rng.randint(1, 2)]
    return {"field": field, "op": op, "value": value}


def _tree(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    roll = rng.random()
    if depth >= 2 or roll < 0.4:
        return _leaf(rng)
    if roll < 0.55:
        return {"not": _tree(rng, depth + 1)}
    return {rng.choice(["and", "or"]): [_tree(rng, depth + 1) for _ in range(rng.randint(2, 3))]}


async def test_filters_on_rollup_fields_are_counted_from_the_rollups_exactly(
    tenants: TenantFactory, runtime: Runtime
) -> None:
    """Counting from `customer_rollups` gives the count of the join over customers, facts and
    scores for random filters of the fields they count by (prospects without scores, places
    with no city, merged customers included); a filter of any other field is not sent there."""
    rng = random.Random(7)
    tenant = await tenants.create()
    t = tenant.tenant_id
    async with runtime.sessions() as session:
        for i in range(300):
            province, city = rng.choice(_PLACES)
            await session.execute(
                text(
                    "INSERT INTO customers (tenant_id, id, display_name, province, city, tags, "
                    "attributes, version, created_at, updated_at) VALUES (:t, :id, 'c', :p, :c, "
                    "'{}', '{}', 1, now(), now())"
                ),
                {"t": t, "id": uuid.UUID(int=i + 1), "p": province, "c": city},
            )
            if rng.random() < 0.7:
                await session.execute(
                    text(
                        "INSERT INTO customer_scores (tenant_id, customer_id, rfm_r, rfm_f, rfm_m, "
                        "rfm_group, lifecycle_stage) VALUES (:t, :id, :r, :f, 3, :g, :s)"
                    ),
                    {
                        "t": t,
                        "id": uuid.UUID(int=i + 1),
                        "r": rng.choice([None, 1, 2, 3, 4, 5]),
                        "f": rng.choice([None, 1, 3, 5]),
                        "g": rng.choice([None, *_GROUPS]),
                        "s": rng.choice(_STAGES),
                    },
                )
        await session.execute(
            text("UPDATE customers SET merged_into_id = :s WHERE tenant_id = :t AND id = :m"),
            {"t": t, "s": uuid.UUID(int=1), "m": uuid.UUID(int=2)},
        )
        await session.commit()
    ctx = QueryContext(uuid.UUID(str(t)), NOW, {})
    routed = 0
    async with runtime.read_sessions() as session:
        for _ in range(150):
            condition = compile_filter(_tree(rng), ctx)
            assert query.on_rollups(condition) is not None
            routed += 1
            assert await query.count_members(session, condition, ctx) == await query.count_joined(
                session, condition, ctx
            )
        for other in (
            {"field": "total_spent_fen", "op": "gt", "value": 100},
            {"and": [{"field": "province", "op": "eq", "value": "浙江省"},
                     {"field": "tags", "op": "contains", "value": "VIP"}]},
        ):  # fmt: skip
            assert query.on_rollups(compile_filter(other, ctx)) is None
    assert routed == 150


async def test_a_large_writer_takes_the_triggers_tenant_lock_up_front(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    """`lock_rollups` is the lock the triggers take: a small write to the tenant's customers
    waits for a large writer that took it first, another tenant's does not."""
    spec = importlib.util.spec_from_file_location(
        "m0013", Path(__file__).parents[2] / "migrations/versions/0013_customer_rollups.py"
    )
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert migration._LARGE == LARGE
    clock.set(NOW)
    tenant, other = await tenants.create(), await tenants.create()
    for owner in (tenant, other):
        shop = _Shop(owner, (await owner.shop("offline"))["id"])
        await shop.batch(("A-1", "A", 10, 10000, "completed", 0))
    write = text("UPDATE customer_facts SET total_spent_fen = 1 WHERE tenant_id = :t")
    async with runtime.sessions() as large, runtime.sessions() as small:
        await lock_rollups(large, uuid.UUID(str(tenant.tenant_id)), LARGE)
        await lock_rollups(large, uuid.UUID(str(tenant.tenant_id)), LARGE - 1)  # no lock
        await small.execute(write, {"t": other.tenant_id})  # another tenant: not held
        waiting = asyncio.create_task(small.execute(write, {"t": tenant.tenant_id}))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await large.commit()
        await waiting
        await small.commit()
    for owner in (tenant, other):
        await _assert_exact(runtime, owner)


_CUSTOMERS_NUMBERED = """
    INSERT INTO customers (tenant_id, id, display_name, province, city, tags, attributes,
                           version, created_at, updated_at)
    SELECT :t, gen_random_uuid(), 'c' || i, (ARRAY['浙江省', '广东省', NULL])[1 + i % 3],
           (ARRAY['杭州市', '广州市', NULL])[1 + i % 3], '{}', '{}', 1, now(), now()
    FROM generate_series(CAST(:first AS int), CAST(:last AS int)) i"""
_FACTS_OF_TWENTY_THOUSAND = """
    INSERT INTO customer_facts (tenant_id, customer_id, order_count, total_spent_fen,
                                refund_count, refund_fen)
    SELECT :t, id, 1 + (hashtext(id::text) & 3), 100 + (hashtext(id::text) & 1023), 0, 0
    FROM (SELECT id FROM customers WHERE tenant_id = :t ORDER BY id LIMIT 20000) c"""
_ROWS = "SELECT count(*) FROM customer_rollups WHERE tenant_id = :t"


async def test_a_writer_of_most_of_a_tenant_defers_the_rollups_and_rebuilds_them_once(
    tenants: TenantFactory, runtime: Runtime
) -> None:
    """`defer_rollups` for `LARGE` customers or more and at least half the tenant: the
    triggers leave its rollups alone, other writers wait for the tenant's lock, and
    `finish_rollups` rebuilds them once (one row per key); the next transaction is not
    deferred."""
    tenant, other = await tenants.create(), await tenants.create()
    t, tenant_id = {"t": tenant.tenant_id}, uuid.UUID(str(tenant.tenant_id))
    write = text(
        "UPDATE customers SET city = '宁波市' WHERE tenant_id = :t AND display_name = 'c0'"
    )
    async with runtime.sessions() as session:
        await session.execute(text(_CUSTOMERS_NUMBERED), {**t, "first": 0, "last": 0})
        await session.commit()
        before = await session.scalar(text(_ROWS), t)
    async with runtime.sessions() as session, runtime.sessions() as small:
        assert not await defer_rollups(session, tenant_id, LARGE - 1)
        assert await defer_rollups(session, tenant_id, LARGE)
        assert await defer_rollups(session, tenant_id, 1)  # deferred until the end
        assert not await defer_rollups(session, uuid.UUID(str(other.tenant_id)), LARGE)
        await session.execute(text(_CUSTOMERS_NUMBERED), {**t, "first": 1, "last": 30000})
        await session.execute(text(_FACTS_OF_TWENTY_THOUSAND), t)
        assert await session.scalar(text(_ROWS), t) == before  # no statement added any
        waiting = asyncio.create_task(small.execute(write, t))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # the tenant's lock is held (the write to c0 waits)
        await finish_rollups(session, tenant_id)
        await session.commit()
        await waiting
        await small.commit()
    summed = await _assert_exact(runtime, tenant)
    assert sum(v[0] for v in summed.values()) == 30001
    assert sum(v[1] for v in summed.values()) == 20000
    async with runtime.sessions() as session:
        assert await session.scalar(text("SELECT customer_rollups_deferred()")) is None
        keys = await session.scalar(text(_ROWS), t)
        # 15,000 changed customers are less than half the tenant's 30,001: not deferred.
        assert not await defer_rollups(session, tenant_id, 15_000)
        one = "UPDATE customers SET city = '温州市' WHERE tenant_id = :t AND display_name = 'c3'"
        await session.execute(text(one), t)
        assert await session.scalar(text(_ROWS), t) > keys  # the triggers' deltas
        assert await defer_rollups(session, tenant_id, 15_001)
        await session.rollback()
    await _assert_exact(runtime, tenant)


async def test_a_first_large_import_rebuilds_the_rollups_once_and_exactly(
    tenants: TenantFactory, runtime: Runtime, tmp_path: Path
) -> None:
    """An export of over `LARGE` buyers into an empty tenant: the load defers the rollups and
    rebuilds them at its end; right after the import (before any recompute), they count every
    customer, buyer and fen, one row per key."""
    tenant = await tenants.create()
    shop = (await tenant.shop("pinduoduo"))["id"]
    written = write_pdd_export(tmp_path, 40_000, seed=3)
    assert written.distinct_buyers > LARGE
    response = await upload(tenant, written.files, "pinduoduo", shop)
    assert response.status_code == 202, response.text
    import_id = uuid.UUID(response.json()["id"])
    await pipeline.run_import(runtime, uuid.UUID(str(tenant.tenant_id)), import_id)
    done = await tenant.request("GET", response.headers["location"])
    assert done.json()["status"] == "succeeded", done.text
    summed = await _assert_exact(runtime, tenant)
    assert sum(v[0] for v in summed.values()) == done.json()["counts"]["customers_created"]
    async with runtime.read_sessions() as session:
        rows = await session.scalar(text(_ROWS), {"t": tenant.tenant_id})
    assert rows == len(summed)
