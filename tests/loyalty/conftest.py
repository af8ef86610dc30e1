"""Loyalty test helpers: a tenant with a shop, orders written straight into the table (as the
order loader would) and reported to the loyalty hook in the same transaction."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.models import LoyaltyAccount, LoyaltyEntry, LoyaltyLot, LoyaltyLotConsumption, Order
from app.models.base import new_id
from app.runtime import Runtime
from app.services.loyalty import hooks
from tests.conftest import TestClock
from tests.factories import TenantCtx, TenantFactory

_numbers = itertools.count(1)


@dataclass
class Shop:
    ctx: TenantCtx
    shop_id: uuid.UUID
    runtime: Runtime
    clock: TestClock

    async def order(
        self,
        customer_id: str | uuid.UUID,
        paid_fen: int,
        status: str = "completed",
        completed_at: datetime | None = None,
    ) -> uuid.UUID:
        """A new order, reported to loyalty as the loader does."""
        order_id = new_id()
        now = self.clock()
        async with self.runtime.sessions() as session:
            session.add(
                Order(
                    tenant_id=self.ctx.tenant_id,
                    id=order_id,
                    shop_id=self.shop_id,
                    platform="tmall",
                    order_no=f"T{next(_numbers):012d}",
                    status=status,
                    customer_id=uuid.UUID(str(customer_id)),
                    paid_fen=paid_fen,
                    refund_fen=0,
                    paid_at=now,
                    completed_at=(completed_at or now) if status == "completed" else None,
                )
            )
            await session.flush()
            await hooks.orders_changed(session, self.ctx.tenant_id, [order_id], now)
            await session.commit()
        return order_id

    async def change(self, order_id: uuid.UUID, **values: Any) -> None:
        """Update an order (status, refund...) and report it, in one transaction."""
        now = self.clock()
        if values.get("status") == "completed" and "completed_at" not in values:
            values["completed_at"] = now
        async with self.runtime.sessions() as session:
            await session.execute(
                update(Order)
                .where(Order.tenant_id == self.ctx.tenant_id, Order.id == order_id)
                .values(**values)
            )
            await hooks.orders_changed(session, self.ctx.tenant_id, [order_id], now)
            await session.commit()


@pytest.fixture
async def shop(tenants: TenantFactory, runtime: Runtime, clock: TestClock) -> Shop:
    ctx = await tenants.create()
    created = await ctx.shop("tmall")
    return Shop(ctx, uuid.UUID(created["id"]), runtime, clock)


async def ledger_state(runtime: Runtime, tenant_id: uuid.UUID) -> list[str]:
    """Every broken invariant of a tenant's ledger (empty when all hold)."""
    problems: list[str] = []
    async with runtime.sessions() as session:
        accounts = list(
            await session.scalars(
                select(LoyaltyAccount).where(LoyaltyAccount.tenant_id == tenant_id)
            )
        )
        for account in accounts:
            entries = list(
                await session.scalars(
                    select(LoyaltyEntry)
                    .where(
                        LoyaltyEntry.tenant_id == tenant_id,
                        LoyaltyEntry.customer_id == account.customer_id,
                    )
                    .order_by(LoyaltyEntry.seq)
                )
            )
            total = sum(e.points for e in entries)
            if total != account.balance:
                problems.append(f"{account.customer_id}: balance {account.balance} != {total}")
            running = 0
            for entry in entries:
                running += entry.points
                if entry.balance_after != running:
                    problems.append(f"entry {entry.id}: balance_after {entry.balance_after}")
            lots = list(
                await session.scalars(
                    select(LoyaltyLot).where(
                        LoyaltyLot.tenant_id == tenant_id,
                        LoyaltyLot.customer_id == account.customer_id,
                    )
                )
            )
            left = sum(lot.remaining for lot in lots)
            if left != max(account.balance, 0):
                problems.append(f"{account.customer_id}: lots {left}, balance {account.balance}")
            for lot in lots:
                used = await session.scalar(
                    select(func.coalesce(func.sum(LoyaltyLotConsumption.points), 0)).where(
                        LoyaltyLotConsumption.tenant_id == tenant_id,
                        LoyaltyLotConsumption.lot_id == lot.id,
                    )
                )
                if lot.remaining + int(used or 0) != lot.points:
                    problems.append(f"lot {lot.id}: {lot.points} != {lot.remaining} + {used}")
    return problems
