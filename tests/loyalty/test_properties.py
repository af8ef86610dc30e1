"""Property-based: random sequences of earn, redeem, refund, expire, adjust and retried requests
keep every ledger invariant, and a retried request never has a second effect."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.models import LoyaltyEntry, LoyaltyLot, LoyaltyLotConsumption, Order
from app.runtime import Runtime
from app.services.loyalty import earning, hooks, lots
from tests.factories import TenantFactory
from tests.loyalty.conftest import Shop, ledger_state

if TYPE_CHECKING:
    from tests.conftest import TestClock

START = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)

customers = st.integers(0, 1)
keys = st.sampled_from(["k1", "k2", "k3", "k4"])
order_op = st.tuples(st.just("order"), customers, st.integers(100, 80_000))
redeem_op = st.tuples(st.just("redeem"), customers, st.integers(1, 150), keys)
adjust_op = st.tuples(st.just("adjust"), customers, st.integers(1, 300), keys, st.booleans())
refund_op = st.tuples(st.just("refund"), st.integers(0, 9), st.integers(1, 100))
advance_op = st.tuples(st.just("advance"), st.integers(1, 120))
operations = st.lists(
    st.one_of(
        order_op,
        order_op,
        redeem_op,
        redeem_op,
        redeem_op,
        adjust_op,
        refund_op,
        refund_op,
        advance_op,
        advance_op,
        st.tuples(st.just("post")),
        st.tuples(st.just("post")),
        st.tuples(st.just("expire")),
    ),
    min_size=10,
    max_size=40,
)


async def _run_service(runtime: Runtime, tenant_id: uuid.UUID, clock: TestClock) -> None:
    async with runtime.sessions() as session:
        await earning.post_due(session, tenant_id, clock())
        await session.commit()


async def _expire(runtime: Runtime, tenant_id: uuid.UUID, clock: TestClock) -> None:
    async with runtime.sessions() as session:
        await lots.expire_due(session, tenant_id, clock())
        await session.commit()


async def _program(shop: Shop) -> None:
    response = await shop.ctx.request(
        "PUT",
        "/api/v1/loyalty/program",
        json={"expiry": {"mode": "months_after_earn", "months": 3}, "return_window_days": 7},
    )
    assert response.status_code == 200, response.text


class Recorder:
    """What the API answered to each idempotency key: first body and response."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, str], tuple[Any, int, Any]] = {}
        self.effects: dict[str, set[str]] = {"redeem": set(), "adjust": set()}

    def check(self, scope: str, key: str, body: Any, status: int, answer: Any) -> None:
        seen = self.first.get((scope, key))
        if seen is None:
            if status == 201:
                self.first[(scope, key)] = (body, status, answer)
                self.effects[scope].add(answer["id"])
            return
        first_body, _, first_answer = seen
        if body == first_body:
            assert status == 201
            assert answer == first_answer
        else:
            assert status == 422


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
async def test_random_operations_keep_the_ledger_consistent(
    ops: list[tuple[Any, ...]], tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    clock.set(START)
    ctx = await tenants.create()
    shop = Shop(ctx, uuid.UUID((await ctx.shop("tmall"))["id"]), runtime, clock)
    await _program(shop)
    people = [await ctx.customer(), await ctx.customer()]
    for person in people:
        async with runtime.sessions() as session:
            await hooks.grant_points(
                session,
                ctx.tenant_id,
                uuid.UUID(person["id"]),
                200,
                kind="bonus",
                source_type="program",
                source_id=None,
                reason="welcome",
                idempotency_key=f"welcome:{person['id']}",
                actor="test",
                now=clock(),
            )
            await session.commit()
    orders: list[tuple[uuid.UUID, int]] = []
    recorder = Recorder()
    for op in ops:
        kind = op[0]
        if kind == "order":
            orders.append((await shop.order(people[op[1]]["id"], op[2]), op[2]))
        elif kind == "redeem":
            body = {"points": op[2], "reason": "r"}
            url = f"/api/v1/loyalty/accounts/{people[op[1]]['id']}/redemptions"
            r = await ctx.request("POST", url, json=body, headers={"Idempotency-Key": op[3]})
            assert r.status_code in {201, 409, 422}, r.text
            recorder.check("redeem", op[3], (op[1], body), r.status_code, r.json())
        elif kind == "adjust":
            body = {"points": op[2], "reason": "a", "direction": "credit" if op[4] else "debit"}
            url = f"/api/v1/loyalty/accounts/{people[op[1]]['id']}/adjustments"
            r = await ctx.request("POST", url, json=body, headers={"Idempotency-Key": op[3]})
            assert r.status_code in {201, 409, 422}, r.text
            recorder.check("adjust", op[3], (op[1], body), r.status_code, r.json())
        elif kind == "refund" and orders:
            order_id, paid = orders[op[1] % len(orders)]
            refund = paid * op[2] // 100
            status = "refunded" if refund == paid else "partially_refunded"
            await shop.change(order_id, status=status, refund_fen=refund)
        elif kind == "advance":
            # As the scheduler would: time passes, then posting and expiry runs catch up.
            clock.advance(timedelta(days=op[1]))
            await _run_service(runtime, ctx.tenant_id, clock)
            await _expire(runtime, ctx.tenant_id, clock)
        elif kind == "post":
            await _run_service(runtime, ctx.tenant_id, clock)
        elif kind == "expire":
            await _expire(runtime, ctx.tenant_id, clock)
    assert await ledger_state(runtime, ctx.tenant_id) == []
    await _assert_no_double_effects(runtime, ctx.tenant_id, recorder)


async def _assert_no_double_effects(
    runtime: Runtime, tenant_id: uuid.UUID, recorder: Recorder
) -> None:
    async with runtime.sessions() as session:
        entries = list(
            await session.scalars(select(LoyaltyEntry).where(LoyaltyEntry.tenant_id == tenant_id))
        )
        for kind in sorted({e.kind for e in entries}):
            event(f"wrote {kind} entries")
        redeemed = {str(e.id) for e in entries if e.kind == "redeem"}
        assert redeemed == recorder.effects["redeem"]
        adjusted = {str(e.id) for e in entries if e.kind == "adjust"}
        assert adjusted == recorder.effects["adjust"]
        # Each order earns at most once and never has more reversed than it earned.
        per_order: dict[uuid.UUID, list[LoyaltyEntry]] = {}
        for entry in entries:
            if entry.source_type == "order" and entry.source_id is not None:
                per_order.setdefault(entry.source_id, []).append(entry)
        for rows in per_order.values():
            earned = [e.points for e in rows if e.kind == "earn"]
            assert len(earned) <= 1
            reversed_ = sum(-e.points + e.shortfall for e in rows if e.kind == "reverse")
            assert reversed_ <= sum(earned)
        orders = await session.scalar(
            select(func.count()).select_from(Order).where(Order.tenant_id == tenant_id)
        )
        assert len(per_order) <= (orders or 0)
        # Expiry only takes what was left of a lot that was due, in one consumption.
        for entry in (e for e in entries if e.kind == "expire"):
            taken = list(
                (
                    await session.execute(
                        select(LoyaltyLotConsumption.points, LoyaltyLot.expires_at)
                        .join(
                            LoyaltyLot,
                            (LoyaltyLot.tenant_id == LoyaltyLotConsumption.tenant_id)
                            & (LoyaltyLot.id == LoyaltyLotConsumption.lot_id),
                        )
                        .where(
                            LoyaltyLotConsumption.tenant_id == tenant_id,
                            LoyaltyLotConsumption.entry_id == entry.id,
                        )
                    )
                ).all()
            )
            assert len(taken) == 1
            points, expires_at = taken[0]
            assert points == -entry.points
            assert expires_at is not None
            assert expires_at <= entry.created_at
