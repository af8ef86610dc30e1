"""Points from orders: earned once when an order reaches the earning status, pending through the
return window, voided by a refund inside it, posted after it, reversed proportionally after that.

One `loyalty_order_earns` row per order (its primary key) makes a second earn impossible, and the
entries' idempotency keys (`order:<id>:earn`, `order:<id>:reverse:<points>`) make every ledger
effect happen once however often a loader, a retry or a resumed import reports the same order.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from fractions import Fraction

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Order
from app.models.loyalty import LoyaltyAccount, LoyaltyOrderEarn
from app.schemas.loyalty import EarningStatus, Rounding
from app.services.loyalty import tiers
from app.services.loyalty.ledger import (
    NewLot,
    Posting,
    claw_back,
    credit,
    entry_by_key,
    lock_account,
)
from app.services.loyalty.lots import expiry_for
from app.services.loyalty.program import Program, current_program, points_for, round_points

_CHUNK = 5000
_REFUNDED = frozenset({"refunded", "closed"})
_AFTER_COMPLETION = frozenset({"completed", "refunding", "partially_refunded", "refunded"})
_REACHED: dict[EarningStatus, frozenset[str]] = {
    EarningStatus.paid: frozenset(
        {"paid", "shipped", "completed", "refunding", "partially_refunded"}
    ),
    EarningStatus.shipped: frozenset({"shipped", "completed", "refunding", "partially_refunded"}),
    EarningStatus.completed: frozenset({"completed", "refunding", "partially_refunded"}),
}


@dataclass(frozen=True)
class OrderState:
    id: uuid.UUID
    customer_id: uuid.UUID
    status: str
    paid_fen: int
    refund_fen: int
    completed_at: datetime | None

    @property
    def net_fen(self) -> int:
        return 0 if self.status in _REFUNDED else max(self.paid_fen - self.refund_fen, 0)

    def reached(self, earning: EarningStatus) -> bool:
        if earning is EarningStatus.completed and self.status != "completed":
            # A later status counts only if the order really was completed before.
            return self.completed_at is not None and self.status in _REACHED[earning]
        return self.status in _REACHED[earning]


async def _order_states(
    session: AsyncSession, tenant_id: uuid.UUID, order_ids: Sequence[uuid.UUID]
) -> list[OrderState]:
    states: list[OrderState] = []
    unique = sorted(set(order_ids))
    for start in range(0, len(unique), _CHUNK):
        rows = await session.execute(
            select(
                Order.id,
                Order.customer_id,
                Order.status,
                Order.paid_fen,
                Order.refund_fen,
                Order.completed_at,
            ).where(
                Order.tenant_id == tenant_id,
                Order.id.in_(unique[start : start + _CHUNK]),
                Order.customer_id.is_not(None),
            )
        )
        states.extend(
            OrderState(
                r.id, r.customer_id, r.status, r.paid_fen or 0, r.refund_fen or 0, r.completed_at
            )
            for r in rows
        )
    return states


async def _earns(
    session: AsyncSession, tenant_id: uuid.UUID, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, LoyaltyOrderEarn]:
    rows = await session.scalars(
        select(LoyaltyOrderEarn)
        .where(LoyaltyOrderEarn.tenant_id == tenant_id, LoyaltyOrderEarn.order_id.in_(order_ids))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {row.order_id: row for row in rows}


async def orders_changed(
    session: AsyncSession, tenant_id: uuid.UUID, order_ids: Sequence[uuid.UUID], now: datetime
) -> None:
    """Bring the loyalty effects of these orders up to their current state (idempotent)."""
    states = await _order_states(session, tenant_id, order_ids)
    if not states:
        return
    # An order keeps earning for the account that holds its points (after a customer merge).
    held = await session.execute(
        select(LoyaltyOrderEarn.order_id, LoyaltyOrderEarn.customer_id).where(
            LoyaltyOrderEarn.tenant_id == tenant_id,
            LoyaltyOrderEarn.order_id.in_([s.id for s in states]),
        )
    )
    holders = {row.order_id: row.customer_id for row in held}
    states = [replace(s, customer_id=holders.get(s.id, s.customer_id)) for s in states]
    program = await current_program(session, tenant_id, now)
    by_customer: dict[uuid.UUID, list[OrderState]] = defaultdict(list)
    for state in states:
        by_customer[state.customer_id].append(state)
    # Accounts are locked in one global order, so concurrent loaders never deadlock.
    for customer_id in sorted(by_customer):
        account = await lock_account(session, tenant_id, customer_id, now)
        orders = by_customer[customer_id]
        earns = await _earns(session, tenant_id, [o.id for o in orders])
        changed = False
        for order in orders:
            changed |= await _reconcile(session, account, program, order, earns.get(order.id), now)
        if changed:
            await tiers.recompute(session, account, program, now, "order")


async def _reconcile(
    session: AsyncSession,
    account: LoyaltyAccount,
    program: Program,
    order: OrderState,
    earn: LoyaltyOrderEarn | None,
    now: datetime,
) -> bool:
    """One order's effect; True when something changed that may move the tier."""
    if earn is None:
        return await _start_earning(session, account, program, order, now)
    if earn.status == "pending":
        return _update_pending(earn, program, order, now)
    if earn.status == "posted":
        return await _reverse_refunds(session, account, program, earn, order, now)
    return False


def _post_at(program: Program, order: OrderState, now: datetime) -> datetime | None:
    window = timedelta(days=program.settings.return_window_days)
    if order.completed_at is not None:
        return order.completed_at + window
    # Earning on `completed` without a completion time in the data: the window starts now.
    return now + window if program.settings.earning_status is EarningStatus.completed else None


async def _start_earning(
    session: AsyncSession,
    account: LoyaltyAccount,
    program: Program,
    order: OrderState,
    now: datetime,
) -> bool:
    settings = program.settings
    if not order.reached(settings.earning_status) or order.net_fen == 0:
        return False
    tier = program.tier(account.tier) or tiers.tier_for(program, 0)
    inserted = await session.scalar(
        insert(LoyaltyOrderEarn)
        .values(
            tenant_id=account.tenant_id,
            order_id=order.id,
            customer_id=account.customer_id,
            status="pending",
            points=points_for(settings, order.net_fen, tier.multiplier_percent),
            base_fen=order.net_fen,
            net_fen=order.net_fen,
            reversed_points=0,
            program_version=program.version,
            earned_at=now,
            post_at=_post_at(program, order, now),
            updated_at=now,
        )
        .on_conflict_do_nothing()
        .returning(LoyaltyOrderEarn.order_id)
    )
    return inserted is not None


def _update_pending(
    earn: LoyaltyOrderEarn, program: Program, order: OrderState, now: datetime
) -> bool:
    """Inside the return window: a full refund voids the points, a partial one scales them."""
    net = order.net_fen
    if net == earn.net_fen and (earn.post_at is not None or order.completed_at is None):
        return False
    if net == 0:
        earn.status, earn.voided_at = "voided", now
    elif net < earn.base_fen:
        earn.points = round_points(Fraction(earn.points * net, earn.base_fen), Rounding.floor)
        earn.base_fen = net
    earn.net_fen = net
    if earn.post_at is None:
        earn.post_at = _post_at(program, order, now)
    earn.updated_at = now
    return True


async def _reverse_refunds(
    session: AsyncSession,
    account: LoyaltyAccount,
    program: Program,
    earn: LoyaltyOrderEarn,
    order: OrderState,
    now: datetime,
) -> bool:
    """After posting: take back the refunded share of the points, once per refunded amount."""
    net = min(order.net_fen, earn.base_fen)
    if net >= earn.net_fen:
        return False
    refunded = earn.base_fen - net
    target = (
        earn.points
        if net == 0
        else round_points(Fraction(earn.points * refunded, earn.base_fen), Rounding.half_up)
    )
    earn.net_fen, earn.updated_at = net, now
    due = target - earn.reversed_points
    if due > 0:
        key = f"order:{earn.order_id}:reverse:{target}"
        if await entry_by_key(session, account.tenant_id, key) is None:
            posting = Posting(
                "reverse",
                "order",
                "system",
                key,
                f"refund of {refunded} fen of {earn.base_fen} fen",
                source_id=earn.order_id,
                related_entry_id=earn.posted_entry_id,
            )
            await claw_back(
                session,
                account,
                posting,
                due,
                program.settings.negative_policy,
                now,
                prefer_entry=earn.posted_entry_id,
                takes_back_earning=True,
            )
        earn.reversed_points = target
    await session.flush()
    return True


async def post_due(
    session: AsyncSession, tenant_id: uuid.UUID, now: datetime, limit: int = 500
) -> int:
    """Post pending points whose return window has closed; returns how many orders it posted
    (call again until 0). Account lock first, then the earn row, as everywhere else."""
    due = (
        await session.execute(
            select(LoyaltyOrderEarn.customer_id, LoyaltyOrderEarn.order_id)
            .where(
                LoyaltyOrderEarn.tenant_id == tenant_id,
                LoyaltyOrderEarn.status == "pending",
                LoyaltyOrderEarn.post_at <= now,
            )
            .order_by(LoyaltyOrderEarn.customer_id, LoyaltyOrderEarn.order_id)
            .limit(limit)
        )
    ).all()
    by_customer: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for customer_id, order_id in due:
        by_customer[customer_id].append(order_id)
    program = await current_program(session, tenant_id, now)
    posted = 0
    for customer_id, order_ids in sorted(by_customer.items()):
        account = await lock_account(session, tenant_id, customer_id, now)
        earns = await _earns(session, tenant_id, order_ids)
        for earn in earns.values():
            if earn.status == "pending" and earn.post_at is not None and earn.post_at <= now:
                await _post(session, account, program, earn, now)
                posted += 1
        await tiers.recompute(session, account, program, now, "earn")
    return posted


async def _post(
    session: AsyncSession,
    account: LoyaltyAccount,
    program: Program,
    earn: LoyaltyOrderEarn,
    now: datetime,
) -> None:
    key = f"order:{earn.order_id}:earn"
    entry = await entry_by_key(session, account.tenant_id, key)
    if entry is None and earn.points > 0:
        posting = Posting(
            "earn", "order", "system", key, "order completed", source_id=earn.order_id
        )
        lot = NewLot(earn.points, expiry_for(program.settings, now))
        entry = await credit(session, account, posting, [lot], now)
    earn.status, earn.updated_at = "posted", now
    earn.posted_entry_id = entry.id if entry is not None else None
    await session.flush()
