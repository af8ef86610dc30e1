"""What the API does with accounts: read balances and entries, redeem, adjust, reverse, refer."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, FieldError, InvalidTransition, NotFound, ValidationFailed
from app.models.loyalty import LoyaltyAccount, LoyaltyEntry, LoyaltyLot, LoyaltyOrderEarn
from app.schemas.loyalty import (
    AccountOut,
    AdjustmentIn,
    EntryOut,
    ExpiringLot,
    NextTier,
    PointsIn,
    ReferralIn,
    TierOut,
    TierRef,
)
from app.services import idempotency
from app.services.auth import Principal
from app.services.loyalty import tiers
from app.services.loyalty.hooks import grant_points
from app.services.loyalty.ledger import (
    CREDIT_KINDS,
    NewLot,
    Posting,
    add_points,
    claw_back,
    consumed_lots,
    credit,
    ensure_customer,
    entry_by_key,
    lock_account,
    spend_points,
)
from app.services.loyalty.lots import expiring_lots, expiry_for
from app.services.loyalty.program import Program, current_program
from app.services.paging import cursor_values, encode_cursor

SOON = timedelta(days=30)


async def get_account(
    session: AsyncSession, actor: Principal, customer_id: uuid.UUID, now: datetime
) -> AccountOut:
    """Balance, pending points, tier and what the next tier needs; zeros before first use."""
    actor.require("loyalty:read")
    await ensure_customer(session, actor.tenant_id, customer_id)
    program = await current_program(session, actor.tenant_id, now)
    account = await session.get(LoyaltyAccount, (actor.tenant_id, customer_id))
    if account is None:
        account = LoyaltyAccount(
            tenant_id=actor.tenant_id, customer_id=customer_id, balance=0, lifetime_points=0
        )
    value = await tiers.measure(session, account, program, now)
    tier = program.tier(account.tier) or tiers.tier_for(program, value)
    upcoming = tiers.next_tier(program, value)
    pending = await session.scalar(
        select(func.coalesce(func.sum(LoyaltyOrderEarn.points), 0)).where(
            LoyaltyOrderEarn.tenant_id == actor.tenant_id,
            LoyaltyOrderEarn.customer_id == customer_id,
            LoyaltyOrderEarn.status == "pending",
        )
    )
    before = now + SOON
    expiring = await session.scalar(
        select(func.coalesce(func.sum(LoyaltyLot.remaining), 0)).where(
            LoyaltyLot.tenant_id == actor.tenant_id,
            LoyaltyLot.customer_id == customer_id,
            LoyaltyLot.remaining > 0,
            LoyaltyLot.expires_at < before,
        )
    )
    return AccountOut(
        customer_id=customer_id,
        balance=account.balance,
        pending=int(pending or 0),
        lifetime_points=account.lifetime_points,
        tier=TierRef(code=tier.code, name=tier.name),
        tier_since=account.tier_since,
        next_tier=(
            NextTier(code=upcoming[0].code, name=upcoming[0].name, missing=upcoming[1])
            if upcoming
            else None
        ),
        expiring_soon=int(expiring or 0),
        expiring_before=before,
    )


async def list_entries(
    session: AsyncSession,
    actor: Principal,
    customer_id: uuid.UUID,
    limit: int,
    cursor: str | None,
) -> tuple[list[LoyaltyEntry], str | None]:
    """The account's entries, newest first."""
    actor.require("loyalty:read")
    await ensure_customer(session, actor.tenant_id, customer_id)
    query = select(LoyaltyEntry).where(
        LoyaltyEntry.tenant_id == actor.tenant_id, LoyaltyEntry.customer_id == customer_id
    )
    if cursor is not None:
        query = query.where(LoyaltyEntry.seq < _cursor_seq(cursor))
    rows = list(await session.scalars(query.order_by(LoyaltyEntry.seq.desc()).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor({"seq": str(rows[limit - 1].seq)})


def _cursor_seq(cursor: str) -> int:
    (value,) = cursor_values(cursor, "seq")
    if not value.isdigit():
        raise ValidationFailed(
            "invalid cursor",
            [FieldError(["query", "cursor"], "use the next_cursor of a previous page")],
        )
    return int(value)


async def _once(
    session: AsyncSession,
    actor: Principal,
    scope: str,
    key: str,
    payload: dict[str, Any],
    run: Callable[[], Awaitable[LoyaltyEntry]],
) -> EntryOut:
    """Run a posting once per `Idempotency-Key`; a retry gets the first response back."""
    replay = await idempotency.claim(session, actor.tenant_id, scope, key, payload)
    if replay is not None:
        return EntryOut.model_validate(replay.body)
    out = EntryOut.model_validate(await run())
    await idempotency.remember(
        session, actor.tenant_id, scope, key, 201, out.model_dump(mode="json")
    )
    return out


async def redeem(
    session: AsyncSession,
    actor: Principal,
    customer_id: uuid.UUID,
    body: PointsIn,
    key: str,
    now: datetime,
) -> EntryOut:
    """Spend points, oldest lots first; more than the balance is a 409 carrying the balance."""
    actor.require("loyalty:redeem")

    async def run() -> LoyaltyEntry:
        posting = Posting(
            "redeem", "redemption", actor.key_name, f"redeem:{customer_id}:{key}", body.reason
        )
        return await spend_points(session, actor.tenant_id, customer_id, posting, body.points, now)

    payload = {"customer_id": str(customer_id), **body.model_dump(mode="json")}
    return await _once(session, actor, "loyalty:redemptions", key, payload, run)


async def adjust(
    session: AsyncSession,
    actor: Principal,
    customer_id: uuid.UUID,
    body: AdjustmentIn,
    key: str,
    now: datetime,
) -> EntryOut:
    """A manual credit (a new lot under the program's expiry) or debit (never overdraws)."""
    actor.require("loyalty:adjust")

    async def run() -> LoyaltyEntry:
        tenant_id = actor.tenant_id
        posting = Posting(
            "adjust", "admin", actor.key_name, f"adjust:{customer_id}:{key}", body.reason
        )
        if body.direction == "debit":
            return await spend_points(session, tenant_id, customer_id, posting, body.points, now)
        program = await current_program(session, tenant_id, now)
        lot = NewLot(body.points, expiry_for(program.settings, now))
        return await add_points(session, tenant_id, customer_id, posting, lot, now)

    payload = {"customer_id": str(customer_id), **body.model_dump(mode="json")}
    return await _once(session, actor, "loyalty:adjustments", key, payload, run)


async def reverse_entry(
    session: AsyncSession, actor: Principal, entry_id: uuid.UUID, reason: str, now: datetime
) -> tuple[EntryOut, bool]:
    """Undo an entry with a `reverse` entry (once: again returns the first reversal, False)."""
    actor.require("loyalty:reverse")
    original = await session.get(LoyaltyEntry, (actor.tenant_id, entry_id))
    if original is None:
        raise NotFound("no such entry")
    account = await lock_account(session, actor.tenant_id, original.customer_id, now)
    key = f"entry:{entry_id}:reverse"
    existing = await entry_by_key(session, actor.tenant_id, key)
    if existing is not None:
        return EntryOut.model_validate(existing), False
    if original.kind == "reverse" or original.source_type == "merge":
        raise InvalidTransition(
            f"a {original.source_type} {original.kind} entry cannot be reversed; "
            "post an adjustment instead"
        )
    program = await current_program(session, actor.tenant_id, now)
    posting = Posting(
        "reverse",
        "entry",
        actor.key_name,
        key,
        reason,
        source_id=entry_id,
        related_entry_id=entry_id,
    )
    if original.points < 0:
        entry = await _give_back(session, account, program, posting, original, now)
    else:
        entry = await _take_back(session, account, program, posting, original, now)
    await tiers.recompute(session, account, program, now, "reverse")
    return EntryOut.model_validate(entry), True


async def _give_back(
    session: AsyncSession,
    account: LoyaltyAccount,
    program: Program,
    posting: Posting,
    original: LoyaltyEntry,
    now: datetime,
) -> LoyaltyEntry:
    """Return spent points into lots like the ones they came from (a past expiry starts anew)."""
    fresh = expiry_for(program.settings, now)
    lots = [
        NewLot(points, expires_at if expires_at is None or expires_at > now else fresh)
        for points, expires_at in await consumed_lots(session, account.tenant_id, original.id)
    ]
    missing = -original.points - sum(lot.points for lot in lots)
    if missing > 0:
        lots.append(NewLot(missing, fresh))
    return await credit(session, account, posting, lots, now)


async def _take_back(
    session: AsyncSession,
    account: LoyaltyAccount,
    program: Program,
    posting: Posting,
    original: LoyaltyEntry,
    now: datetime,
) -> LoyaltyEntry:
    amount = original.points
    earn = None
    if original.source_type == "order" and original.source_id is not None:
        earn = await session.get(
            LoyaltyOrderEarn,
            (account.tenant_id, original.source_id),
            with_for_update=True,
            populate_existing=True,
        )
    if earn is not None:
        # Refunds may already have taken part of these points back.
        amount = earn.points - earn.reversed_points
        if amount <= 0:
            raise InvalidTransition("the order's refunds already took these points back")
        earn.reversed_points = earn.points
    return await claw_back(
        session,
        account,
        posting,
        amount,
        program.settings.negative_policy,
        now,
        prefer_entry=original.id,
        takes_back_earning=original.kind in CREDIT_KINDS,
    )


async def refer(
    session: AsyncSession, actor: Principal, body: ReferralIn, now: datetime
) -> EntryOut:
    """Pay the program's referral bonus to the referrer, once per referred customer."""
    actor.require("loyalty:redeem")
    if body.referrer_id == body.referred_id:
        raise Conflict(
            "a customer cannot refer themselves",
            [FieldError(["body", "referred_id"], "must differ from referrer_id")],
        )
    for customer_id in (body.referrer_id, body.referred_id):
        await ensure_customer(session, actor.tenant_id, customer_id)
    program = await current_program(session, actor.tenant_id, now)
    if program.settings.referral_bonus == 0:
        raise Conflict("the loyalty program pays no referral bonus (set referral_bonus first)")
    entry_id = await grant_points(
        session,
        actor.tenant_id,
        body.referrer_id,
        program.settings.referral_bonus,
        kind="referral",
        source_type="customer",
        source_id=body.referred_id,
        reason="referral",
        idempotency_key=f"referral:{body.referred_id}",
        actor=actor.key_name,
        now=now,
    )
    entry = await session.get(LoyaltyEntry, (actor.tenant_id, entry_id))
    assert entry is not None
    return EntryOut.model_validate(entry)


async def list_expiring(
    session: AsyncSession,
    actor: Principal,
    within_days: int,
    customer_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
    now: datetime,
) -> tuple[list[ExpiringLot], str | None]:
    actor.require("loyalty:read")
    if customer_id is not None:
        await ensure_customer(session, actor.tenant_id, customer_id)
    lots, next_cursor = await expiring_lots(
        session, actor.tenant_id, now + timedelta(days=within_days), customer_id, limit, cursor
    )
    items = [
        ExpiringLot(customer_id=lot.customer_id, points=lot.remaining, expires_at=lot.expires_at)
        for lot in lots
        if lot.expires_at is not None
    ]
    return items, next_cursor


async def list_tiers(session: AsyncSession, actor: Principal, now: datetime) -> list[TierOut]:
    """The tiers in force and how many members each holds now."""
    actor.require("loyalty:read")
    program = await current_program(session, actor.tenant_id, now)
    counts = dict(
        (
            await session.execute(
                select(LoyaltyAccount.tier, func.count())
                .where(
                    LoyaltyAccount.tenant_id == actor.tenant_id,
                    LoyaltyAccount.merged_into.is_(None),
                )
                .group_by(LoyaltyAccount.tier)
            )
        ).all()
    )
    # Accounts not yet measured (no earn so far) sit in the entry tier.
    entry_tier = program.settings.tiers[0].code
    counts[entry_tier] = counts.get(entry_tier, 0) + counts.pop(None, 0)
    return [
        TierOut(**t.model_dump(), members=counts.get(t.code, 0)) for t in program.settings.tiers
    ]
