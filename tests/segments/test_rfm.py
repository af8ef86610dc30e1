"""RFM scores and the eight groups, checked against an independent polars computation."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import polars as pl
from sqlalchemy import text

from app.models.base import new_id
from app.runtime import Runtime
from app.services.facts import refresh_customer_facts
from tests.conftest import TestClock
from tests.factories import TenantFactory
from tests.segments.conftest import NOW
from tests.segments.orders import recompute

GROUPS = {
    (True, True, True): "important_value",
    (True, False, True): "important_develop",
    (False, True, True): "important_keep",
    (False, False, True): "important_retain",
    (True, True, False): "general_value",
    (True, False, False): "general_develop",
    (False, True, False): "general_keep",
    (False, False, False): "general_retain",
}


async def _generate(runtime: Runtime, tenant_id: uuid.UUID, customers: int, seed: int) -> None:
    """Customers with 0-6 paid orders each at random times and amounts; order counts, amounts
    repeat, so ties are common."""
    rng = random.Random(seed)
    async with runtime.sessions() as session:
        shop_id = new_id()
        await session.execute(
            text(
                "INSERT INTO shops (tenant_id, id, platform, name, version) "
                "VALUES (:t, :id, 'tmall', 'rfm shop', 1)"
            ),
            {"t": tenant_id, "id": shop_id},
        )
        ids = [new_id() for _ in range(customers)]
        await session.execute(
            text(
                "INSERT INTO customers (tenant_id, id, display_name, version) "
                "SELECT :t, id, 'rfm', 1 FROM unnest(CAST(:ids AS uuid[])) id"
            ),
            {"t": tenant_id, "ids": ids},
        )
        orders = [
            {
                "t": tenant_id,
                "id": new_id(),
                "shop": shop_id,
                "no": f"R{seed}-{i}-{n}",
                "customer": customer,
                "paid": rng.choice([990, 4900, 9900, rng.randrange(100, 100_000)]),
                "at": NOW
                - timedelta(days=rng.choice([1, 7, 30, rng.randrange(1, 700)]))
                - timedelta(seconds=rng.randrange(86_400)),
            }
            for i, customer in enumerate(ids)
            for n in range(rng.choice([0, 1, 1, 1, 2, 2, 3, 6]))
        ]
        await session.execute(
            text(
                "INSERT INTO orders (tenant_id, id, shop_id, platform, order_no, status, "
                "customer_id, paid_fen, refund_fen, paid_at) VALUES "
                "(:t, :id, :shop, 'tmall', :no, 'completed', :customer, :paid, 0, :at)"
            ),
            orders,
        )
        await refresh_customer_facts(session, tenant_id, ids)
        await session.commit()


def _expected(facts: pl.DataFrame) -> pl.DataFrame:
    buyers = facts.filter(pl.col("order_count") > 0)
    n = buyers.height

    def score(column: str) -> pl.Expr:
        rank = pl.col(column).rank("min")
        return (1 + ((rank - 1) * 5 / n).floor()).cast(pl.Int64)

    scored = buyers.with_columns(
        score("last_order_at").alias("r"),
        score("order_count").alias("f"),
        score("total_spent_fen").alias("m"),
    )
    means = scored.select(pl.col("r").mean(), pl.col("f").mean(), pl.col("m").mean()).row(0)
    return scored.with_columns(
        pl.struct("r", "f", "m")
        .map_elements(
            lambda s: GROUPS[(s["r"] >= means[0], s["f"] >= means[1], s["m"] >= means[2])],
            return_dtype=pl.String,
        )
        .alias("group")
    )


async def _facts(runtime: Runtime, tenant_id: uuid.UUID) -> pl.DataFrame:
    async with runtime.read_sessions() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT customer_id::text AS id, order_count, total_spent_fen, "
                    "last_order_at, rfm_r, rfm_f, rfm_m, rfm_group, rfm_as_of, "
                    "lifecycle_stage, lifecycle_since "
                    "FROM customer_facts LEFT JOIN customer_scores USING (tenant_id, customer_id) "
                    "WHERE tenant_id = :t"
                ),
                {"t": tenant_id},
            )
        ).all()
    return pl.DataFrame([r._asdict() for r in rows], infer_schema_length=None)


async def test_rfm_scores_and_groups_match_an_independent_computation(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    clock.set(NOW)
    tenant = await tenants.create()
    await _generate(runtime, tenant.tenant_id, customers=300, seed=4)
    await recompute(runtime, tenant.tenant_id)

    facts = await _facts(runtime, tenant.tenant_id)
    expected = _expected(facts)
    got = facts.filter(pl.col("order_count") > 0).join(
        expected.select("id", "r", "f", "m", "group"), on="id"
    )
    assert got.height == expected.height > 100
    for ours, theirs in (("rfm_r", "r"), ("rfm_f", "f"), ("rfm_m", "m"), ("rfm_group", "group")):
        mismatched = got.filter(pl.col(ours) != pl.col(theirs))
        assert mismatched.height == 0, mismatched.head()
    assert set(got["rfm_r"].unique()) == {1, 2, 3, 4, 5}
    non_buyers = facts.filter(pl.col("order_count") == 0)
    assert non_buyers.height > 0
    assert non_buyers["rfm_group"].null_count() == non_buyers.height

    report = (await tenant.request("GET", "/api/v1/analytics/rfm", role="analyst")).json()
    assert report["as_of"] == NOW.isoformat().replace("+00:00", "Z")
    assert report["buyers"] == expected.height
    by_group = dict(expected.group_by("group").len().iter_rows())
    assert {g["group"]: g["customers"] for g in report["groups"]} == {
        code: by_group.get(code, 0) for code in GROUPS.values()
    }
    assert [g["label"] for g in report["groups"]][:2] == ["重要价值客户", "重要发展客户"]
    spent = dict(expected.group_by("group").agg(pl.col("total_spent_fen").sum()).iter_rows())
    assert {g["group"]: g["spent_fen"] for g in report["groups"]} == {
        code: spent.get(code, 0) for code in GROUPS.values()
    }
    grid = {(r, f): n for r, f, n in expected.group_by("r", "f").len().iter_rows()}
    assert len(report["grid"]) == 25
    assert {(c["r"], c["f"]): c["customers"] for c in report["grid"] if c["customers"]} == grid


async def test_recompute_twice_changes_nothing(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    clock.set(NOW)
    tenant = await tenants.create()
    await _generate(runtime, tenant.tenant_id, customers=60, seed=9)
    await recompute(runtime, tenant.tenant_id)
    first = await _facts(runtime, tenant.tenant_id)
    async with runtime.read_sessions() as session:
        events = await session.scalar(
            text("SELECT count(*) FROM lifecycle_events WHERE tenant_id = :t"),
            {"t": tenant.tenant_id},
        )
    await recompute(runtime, tenant.tenant_id)
    assert (await _facts(runtime, tenant.tenant_id)).sort("id").equals(first.sort("id"))
    async with runtime.read_sessions() as session:
        assert events == await session.scalar(
            text("SELECT count(*) FROM lifecycle_events WHERE tenant_id = :t"),
            {"t": tenant.tenant_id},
        )
