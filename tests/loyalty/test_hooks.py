"""The hooks other domains call: orders earn once, merges move points, grants are idempotent."""

from __future__ import annotations

import uuid
from datetime import timedelta

from app.models import LoyaltyAccount, LoyaltyOrderEarn
from app.runtime import Runtime
from app.services.loyalty import earning, hooks
from tests.loyalty.conftest import Shop, ledger_state


async def _account(runtime: Runtime, tenant_id: uuid.UUID, customer_id: str) -> LoyaltyAccount:
    async with runtime.sessions() as session:
        account = await session.get(LoyaltyAccount, (tenant_id, uuid.UUID(customer_id)))
        assert account is not None
        return account


async def _post_due(shop: Shop) -> None:
    async with shop.runtime.sessions() as session:
        await earning.post_due(session, shop.ctx.tenant_id, shop.clock())
        await session.commit()


async def test_completed_order_earns_pending_points_that_post_after_the_window(shop: Shop) -> None:
    customer = await shop.ctx.customer()
    order_id = await shop.order(customer["id"], paid_fen=12_345)
    await shop.change(order_id, status="completed")  # reported again: still one earn
    async with shop.runtime.sessions() as session:
        earn = await session.get(LoyaltyOrderEarn, (shop.ctx.tenant_id, order_id))
        assert earn is not None
        assert (earn.status, earn.points) == ("pending", 123)
    await _post_due(shop)
    seen = await shop.ctx.request("GET", f"/api/v1/loyalty/accounts/{customer['id']}")
    assert (seen.json()["balance"], seen.json()["pending"]) == (0, 123)
    shop.clock.advance(timedelta(days=8))
    await _post_due(shop)
    await _post_due(shop)
    assert (await _account(shop.runtime, shop.ctx.tenant_id, customer["id"])).balance == 123
    assert await ledger_state(shop.runtime, shop.ctx.tenant_id) == []


async def test_grant_with_the_same_key_twice_has_one_effect(shop: Shop) -> None:
    customer = uuid.UUID((await shop.ctx.customer())["id"])
    ids = []
    for _ in range(2):
        async with shop.runtime.sessions() as session:
            ids.append(
                await hooks.grant_points(
                    session,
                    shop.ctx.tenant_id,
                    customer,
                    50,
                    kind="bonus",
                    source_type="ticket",
                    source_id=None,
                    reason="complaint compensation",
                    idempotency_key="ticket:1:compensation",
                    actor="agent key",
                    now=shop.clock(),
                )
            )
            await session.commit()
    assert ids[0] == ids[1]
    assert (await _account(shop.runtime, shop.ctx.tenant_id, str(customer))).balance == 50
