"""What other domains call, inside their own transaction: orders changed, customers merged,
points granted (complaint compensation). Each is idempotent: calling it again changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import FieldError, ValidationFailed
from app.models.loyalty import LoyaltyAccount, LoyaltyLot, LoyaltyOrderEarn
from app.schemas.loyalty import NegativePolicy
from app.services.identities import MERGE_HOOKS
from app.services.loyalty import earning, tiers
from app.services.loyalty.ledger import (
    NewLot,
    Posting,
    claw_back,
    credit,
    debit,
    entry_by_key,
    lock_account,
)
from app.services.loyalty.lots import expiry_for
from app.services.loyalty.program import current_program

GRANT_KINDS = frozenset({"bonus", "referral", "adjust"})
_CHUNK = 2000


async def orders_changed(
    session: AsyncSession, tenant_id: uuid.UUID, order_ids: Sequence[uuid.UUID], now: datetime
) -> None:
    """Call with the orders a load created or whose status or refund changed, in its transaction.

    Earns (pending) when an order reaches the earning status, voids or scales pending points on
    a refund inside the return window, and reverses the refunded share after posting.
    """
    unique = sorted(set(order_ids))
    for start in range(0, len(unique), _CHUNK):
        await earning.orders_changed(session, tenant_id, unique[start : start + _CHUNK], now)


async def grant_points(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    points: int,
    *,
    kind: str,
    source_type: str,
    source_id: uuid.UUID | None,
    reason: str,
    idempotency_key: str,
    actor: str,
    now: datetime,
) -> uuid.UUID:
    """Credit points (a new lot under the program's expiry) and return the entry id; the same
    `idempotency_key` again returns the first entry and changes nothing."""
    if kind not in GRANT_KINDS:
        raise ValidationFailed(
            f"points can be granted as {', '.join(sorted(GRANT_KINDS))}",
            [FieldError(["kind"], "unknown grant kind", input=kind)],
        )
    if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
        raise ValidationFailed(
            "points must be a positive whole number",
            [FieldError(["points"], "greater than 0", input=points)],
        )
    account = await lock_account(session, tenant_id, customer_id, now)
    existing = await entry_by_key(session, tenant_id, idempotency_key)
    if existing is not None:
        return existing.id
    program = await current_program(session, tenant_id, now)
    posting = Posting(kind, source_type, actor, idempotency_key, reason, source_id=source_id)
    entry = await credit(
        session, account, posting, [NewLot(points, expiry_for(program.settings, now))], now
    )
    await tiers.recompute(session, account, program, now, kind)
    return entry.id


async def customers_merged(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    survivor_id: uuid.UUID,
    merged_id: uuid.UUID,
    now: datetime,
) -> None:
    """Move the merged customer's points, lots (with their expiry), pending order points and
    lifetime points to the survivor: an `adjust` out of one and an `adjust` into the other, each
    naming the other customer and the other entry."""
    if survivor_id == merged_id:
        return
    moved = list(
        await session.scalars(
            update(LoyaltyOrderEarn)
            .where(
                LoyaltyOrderEarn.tenant_id == tenant_id,
                LoyaltyOrderEarn.customer_id == merged_id,
            )
            .values(customer_id=survivor_id, updated_at=now)
            .returning(LoyaltyOrderEarn.order_id)
        )
    )
    if await session.get(LoyaltyAccount, (tenant_id, merged_id)) is None:
        # No ledger history to keep: the merged customer can be deleted, and the survivor's
        # account (if any) re-measures its tier when the moved orders post.
        held = await session.get(LoyaltyAccount, (tenant_id, survivor_id))
        if moved and held is not None:
            survivor = await lock_account(session, tenant_id, survivor_id, now)
            program = await current_program(session, tenant_id, now)
            await tiers.recompute(session, survivor, program, now, "merge")
        return
    first, second = sorted([survivor_id, merged_id])
    locked = {
        first: await lock_account(session, tenant_id, first, now),
        second: await lock_account(session, tenant_id, second, now),
    }
    survivor, merged = locked[survivor_id], locked[merged_id]
    out_key, in_key = f"merge:{merged_id}:out", f"merge:{merged_id}:in"
    if await entry_by_key(session, tenant_id, out_key) is None and merged.balance != 0:
        await _move_balance(session, survivor, merged, out_key, in_key, now)
    if merged.merged_into is None:
        survivor.lifetime_points += merged.lifetime_points
        merged.merged_into, merged.updated_at = survivor_id, now
    program = await current_program(session, tenant_id, now)
    await tiers.recompute(session, survivor, program, now, "merge")
    await session.flush()


async def _move_balance(
    session: AsyncSession,
    survivor: LoyaltyAccount,
    merged: LoyaltyAccount,
    out_key: str,
    in_key: str,
    now: datetime,
) -> None:
    reason = "customers merged"
    if merged.balance > 0:
        lots = await session.scalars(
            select(LoyaltyLot)
            .where(
                LoyaltyLot.tenant_id == merged.tenant_id,
                LoyaltyLot.customer_id == merged.customer_id,
                LoyaltyLot.remaining > 0,
            )
            .order_by(LoyaltyLot.earned_at, LoyaltyLot.id)
        )
        moved = [NewLot(lot.remaining, lot.expires_at) for lot in lots]
        out = await debit(
            session,
            merged,
            Posting("adjust", "merge", "system", out_key, reason, source_id=survivor.customer_id),
            merged.balance,
            now,
        )
        await credit(
            session,
            survivor,
            Posting(
                "adjust",
                "merge",
                "system",
                in_key,
                reason,
                source_id=merged.customer_id,
                related_entry_id=out.id,
            ),
            moved,
            now,
        )
    else:
        # A debt moves too: the survivor owes it (paid from its lots), the merged account is square.
        debt = -merged.balance
        into = await claw_back(
            session,
            survivor,
            Posting("adjust", "merge", "system", in_key, reason, source_id=merged.customer_id),
            debt,
            NegativePolicy.allow_negative,
            now,
            takes_back_earning=False,
        )
        await credit(
            session,
            merged,
            Posting(
                "adjust",
                "merge",
                "system",
                out_key,
                reason,
                source_id=survivor.customer_id,
                related_entry_id=into.id,
            ),
            [NewLot(debt, None)],
            now,
        )


# Customer merges (app.services.identities) run this inside the merge transaction.
if customers_merged not in MERGE_HOOKS:
    MERGE_HOOKS.append(customers_merged)
