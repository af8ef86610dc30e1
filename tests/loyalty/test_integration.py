"""Loyalty wired to the other domains: JSON order batches earn once, customer merges move points,
and an order load killed mid-way then resumed awards each order's points once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from app.models import LoyaltyOrderEarn, Order
from app.runtime import Runtime
from app.services.loyalty import hooks
from tests.conftest import RunJobs
from tests.factories import TenantCtx
from tests.loyalty.conftest import Shop, ledger_state

START = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)


def _order(number: str, status: str, paid_fen: int, **extra: Any) -> dict[str, Any]:
    return {
        "order_no": number,
        "status": status,
        "buyer_key": "MEMBER-1",
        "paid_fen": paid_fen,
        "ordered_at": START.isoformat(),
        "paid_at": START.isoformat(),
        **extra,
    }


async def _batch(ctx: TenantCtx, shop_id: uuid.UUID, orders: list[dict[str, Any]]) -> None:
    response = await ctx.request(
        "POST", "/api/v1/orders/batch", json={"shop_id": str(shop_id), "orders": orders}
    )
    assert response.status_code == 200, response.text


async def _customer_of(runtime: Runtime, tenant_id: uuid.UUID, order_no: str) -> str:
    async with runtime.sessions() as session:
        customer = await session.scalar(
            select(Order.customer_id).where(
                Order.tenant_id == tenant_id, Order.order_no == order_no
            )
        )
    assert customer is not None
    return str(customer)


async def _account(ctx: TenantCtx, customer_id: str) -> dict[str, Any]:
    response = await ctx.request("GET", f"/api/v1/loyalty/accounts/{customer_id}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _post_pending(runtime: Runtime, run_jobs: RunJobs) -> None:
    await runtime.jobs.configure_task("kezhan:loyalty.post_pending").defer_async(timestamp=0)
    await run_jobs()


async def test_json_order_batches_earn_once_and_a_refund_reverses(
    shop: Shop, run_jobs: RunJobs
) -> None:
    shop.clock.set(START)
    completed = (START + timedelta(hours=1)).isoformat()
    await _batch(shop.ctx, shop.shop_id, [_order("B-1", "paid", 30_000)])
    customer = await _customer_of(shop.runtime, shop.ctx.tenant_id, "B-1")
    assert (await _account(shop.ctx, customer))["pending"] == 0  # paid does not earn yet
    done = _order("B-1", "completed", 30_000, completed_at=completed)
    await _batch(shop.ctx, shop.shop_id, [done])
    await _batch(shop.ctx, shop.shop_id, [done])  # the same batch again
    assert (await _account(shop.ctx, customer))["pending"] == 300
    shop.clock.advance(timedelta(days=8))
    await _post_pending(shop.runtime, run_jobs)
    assert (await _account(shop.ctx, customer))["balance"] == 300
    shop.clock.advance(timedelta(days=1))
    refunded = _order("B-1", "refunded", 30_000, refund_fen=30_000, completed_at=completed)
    await _batch(shop.ctx, shop.shop_id, [refunded])
    account = await _account(shop.ctx, customer)
    assert (account["balance"], account["pending"]) == (0, 0)
    assert await ledger_state(shop.runtime, shop.ctx.tenant_id) == []


async def test_merging_customers_through_the_api_moves_their_points(shop: Shop) -> None:
    survivor, merged = await shop.ctx.customer(), await shop.ctx.customer()
    for customer, points in ((survivor, 5), (merged, 7)):
        response = await shop.ctx.request(
            "POST",
            f"/api/v1/loyalty/accounts/{customer['id']}/adjustments",
            json={"points": points, "reason": "t"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 201
    response = await shop.ctx.request(
        "POST",
        f"/api/v1/customers/{survivor['id']}/merge",
        json={"other_customer_id": merged["id"]},
    )
    assert response.status_code == 200, response.text
    assert (await _account(shop.ctx, survivor["id"]))["balance"] == 12
    assert await ledger_state(shop.runtime, shop.ctx.tenant_id) == []
    # The ledger still names the merged customer, so it is kept, but no read shows it any more.
    gone = await shop.ctx.request("GET", f"/api/v1/customers/{merged['id']}")
    assert gone.status_code == 404
    listed = (await shop.ctx.request("GET", "/api/v1/customers")).json()["items"]
    assert [c["id"] for c in listed] == [survivor["id"]]
    everyone = await shop.ctx.request(
        "POST",
        "/api/v1/segments/preview",
        json={"filter": {"field": "order_count", "op": "gte", "value": 0}},
    )
    assert everyone.json()["count"] == 1


_LOADER = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from datetime import datetime
    from app.config import Settings
    from app.db import create_engine, create_sessionmaker
    from app.models import Order
    from app.services.loyalty import hooks

    async def main() -> None:
        url, tenant, shop, customer, start, count, delay = sys.argv[1:8]
        settings = Settings(database_url=url, environment="test")
        engine = create_engine(url, settings)
        sessions = create_sessionmaker(engine)
        now = datetime.fromisoformat(start)
        for n in range(int(count)):
            async with sessions() as session:
                order_no = f"CRASH-{n:05d}"
                order_id = await session.scalar(
                    Order.__table__.select().with_only_columns(Order.id).where(
                        Order.tenant_id == uuid.UUID(tenant), Order.order_no == order_no
                    )
                )
                if order_id is None:
                    order_id = uuid.uuid4()
                    session.add(Order(
                        tenant_id=uuid.UUID(tenant), id=order_id, shop_id=uuid.UUID(shop),
                        platform="tmall", order_no=order_no, status="completed",
                        customer_id=uuid.UUID(customer), paid_fen=1000, refund_fen=0,
                        completed_at=now,
                    ))
                    await session.flush()
                await hooks.orders_changed(session, uuid.UUID(tenant), [order_id], now)
                await session.commit()
            print(n, flush=True)
            await asyncio.sleep(float(delay))

    asyncio.run(main())
    """
)


async def test_an_order_load_killed_mid_way_and_resumed_awards_each_order_once(
    shop: Shop, runtime: Runtime
) -> None:
    """A real process loads orders one transaction each and is SIGKILLed part way; the rerun
    reports every order again (as a resumed import does) and each still earns exactly once."""
    customer = await shop.ctx.customer()
    args = [
        runtime.database_url,
        str(shop.ctx.tenant_id),
        str(shop.shop_id),
        customer["id"],
        START.isoformat(),
        "40",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOADER, *args, "0.05"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for _ in range(10):
        await asyncio.to_thread(proc.stdout.readline)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    async with runtime.sessions() as session:
        earned_before = await session.scalar(
            select(func.count()).where(LoyaltyOrderEarn.tenant_id == shop.ctx.tenant_id)
        )
    assert earned_before is not None
    assert 10 <= earned_before < 40
    resumed = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", _LOADER, *args, "0"], check=False
    )
    assert resumed.returncode == 0
    async with runtime.sessions() as session:
        order_ids = list(
            await session.scalars(select(Order.id).where(Order.tenant_id == shop.ctx.tenant_id))
        )
        await hooks.orders_changed(session, shop.ctx.tenant_id, order_ids, START)
        await session.commit()
        earns = list(
            await session.scalars(
                select(LoyaltyOrderEarn).where(LoyaltyOrderEarn.tenant_id == shop.ctx.tenant_id)
            )
        )
    assert len(order_ids) == 40
    assert len(earns) == 40
    assert sum(e.points for e in earns) == 400
    assert (await _account(shop.ctx, customer["id"]))["pending"] == 400
