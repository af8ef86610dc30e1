"""The points ledger: every movement is one append-only entry written under the account's lock.

Invariants kept here (and checked by the property tests): an account's balance equals the sum of
its entries; the points left in its lots equal its balance when that is positive and 0 when it is
negative; a lot never gives more than it holds; an idempotency key has at most one entry.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, NotFound
from app.models import Customer
from app.models.base import new_id
from app.models.loyalty import LoyaltyAccount, LoyaltyEntry, LoyaltyLot, LoyaltyLotConsumption
from app.schemas.loyalty import NegativePolicy

CREDIT_KINDS = frozenset({"earn", "bonus", "referral"})
"""Kinds that count towards lifetime points (and back out of it when reversed)."""

_LOT_BATCH = 200


class InsufficientPoints(Conflict):
    title = "Insufficient points"
    slug = "insufficient-points"


@dataclass(frozen=True)
class Posting:
    """What an entry says besides its points: why, from where, by whom, under which key."""

    kind: str
    source_type: str
    actor: str
    idempotency_key: str
    reason: str | None = None
    source_id: uuid.UUID | None = None
    related_entry_id: uuid.UUID | None = None


@dataclass(frozen=True)
class NewLot:
    points: int
    expires_at: datetime | None


async def ensure_customer(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> None:
    found = await session.scalar(
        select(Customer.id).where(Customer.tenant_id == tenant_id, Customer.id == customer_id)
    )
    if found is None:
        raise NotFound("no such customer")


async def lock_account(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID, now: datetime
) -> LoyaltyAccount:
    """The customer's account, created on first use, locked until the transaction ends."""
    await session.execute(
        insert(LoyaltyAccount)
        .values(
            tenant_id=tenant_id,
            customer_id=customer_id,
            balance=0,
            lifetime_points=0,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )
    account = await session.scalar(
        select(LoyaltyAccount)
        .where(LoyaltyAccount.tenant_id == tenant_id, LoyaltyAccount.customer_id == customer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert account is not None
    return account


async def entry_by_key(
    session: AsyncSession, tenant_id: uuid.UUID, idempotency_key: str
) -> LoyaltyEntry | None:
    """The entry already written under this key; call it with the account locked."""
    result: LoyaltyEntry | None = await session.scalar(
        select(LoyaltyEntry)
        .where(
            LoyaltyEntry.tenant_id == tenant_id,
            LoyaltyEntry.idempotency_key == idempotency_key,
        )
        .execution_options(populate_existing=True)
    )
    return result


def _entry(
    account: LoyaltyAccount, posting: Posting, points: int, shortfall: int, now: datetime
) -> LoyaltyEntry:
    account.balance += points
    account.updated_at = now
    return LoyaltyEntry(
        tenant_id=account.tenant_id,
        id=new_id(),
        customer_id=account.customer_id,
        kind=posting.kind,
        points=points,
        balance_after=account.balance,
        shortfall=shortfall,
        source_type=posting.source_type,
        source_id=posting.source_id,
        related_entry_id=posting.related_entry_id,
        actor=posting.actor,
        reason=posting.reason,
        idempotency_key=posting.idempotency_key,
        created_at=now,
    )


async def credit(
    session: AsyncSession,
    account: LoyaltyAccount,
    posting: Posting,
    lots: Sequence[NewLot],
    now: datetime,
) -> LoyaltyEntry:
    """Add points as new lots. A negative balance (a debt from a clawback) is paid off first."""
    total = sum(lot.points for lot in lots)
    debt = max(-account.balance, 0)
    entry = _entry(account, posting, total, 0, now)
    session.add(entry)
    await session.flush()
    for lot in lots:
        paid = min(lot.points, debt)
        debt -= paid
        row = LoyaltyLot(
            tenant_id=account.tenant_id,
            id=new_id(),
            customer_id=account.customer_id,
            entry_id=entry.id,
            points=lot.points,
            remaining=lot.points - paid,
            earned_at=now,
            expires_at=lot.expires_at,
        )
        session.add(row)
        if paid:
            await session.flush()
            session.add(_consumption(row, entry, paid))
    if posting.kind in CREDIT_KINDS:
        account.lifetime_points += total
    await session.flush()
    return entry


def _consumption(lot: LoyaltyLot, entry: LoyaltyEntry, points: int) -> LoyaltyLotConsumption:
    return LoyaltyLotConsumption(
        tenant_id=lot.tenant_id, lot_id=lot.id, entry_id=entry.id, points=points
    )


async def _open_lots(
    session: AsyncSession, account: LoyaltyAccount, prefer_entry: uuid.UUID | None
) -> list[LoyaltyLot]:
    """Lots with points left: those of `prefer_entry` first, then the oldest first (FIFO)."""
    preferred = case((LoyaltyLot.entry_id == prefer_entry, 0), else_=1) if prefer_entry else None
    order = [LoyaltyLot.earned_at, LoyaltyLot.id]
    query = (
        select(LoyaltyLot)
        .where(
            LoyaltyLot.tenant_id == account.tenant_id,
            LoyaltyLot.customer_id == account.customer_id,
            LoyaltyLot.remaining > 0,
        )
        .order_by(*([preferred, *order] if preferred is not None else order))
        .limit(_LOT_BATCH)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(query))


async def _consume(
    session: AsyncSession,
    account: LoyaltyAccount,
    entry: LoyaltyEntry,
    amount: int,
    prefer_entry: uuid.UUID | None = None,
) -> None:
    """Take `amount` points out of the account's lots for `entry`."""
    while amount > 0:
        # Autoflush writes the lots emptied so far, so each batch starts at the next open lot.
        lots = await _open_lots(session, account, prefer_entry)
        if not lots:
            break
        for lot in lots:
            take = min(lot.remaining, amount)
            lot.remaining -= take
            amount -= take
            session.add(_consumption(lot, entry, take))
            if amount == 0:
                break
    await session.flush()


async def debit(
    session: AsyncSession,
    account: LoyaltyAccount,
    posting: Posting,
    amount: int,
    now: datetime,
) -> LoyaltyEntry:
    """Spend points the account has (redeem, debit adjust, merge out); never overdraws."""
    if amount > account.balance:
        raise InsufficientPoints(
            f"the account has {max(account.balance, 0)} points; {amount} were asked for",
            extra={"balance": account.balance, "requested": amount},
        )
    entry = _entry(account, posting, -amount, 0, now)
    session.add(entry)
    await session.flush()
    await _consume(session, account, entry, amount)
    return entry


async def claw_back(
    session: AsyncSession,
    account: LoyaltyAccount,
    posting: Posting,
    amount: int,
    policy: NegativePolicy,
    now: datetime,
    prefer_entry: uuid.UUID | None = None,
    *,
    takes_back_earning: bool,
) -> LoyaltyEntry:
    """Take back points that were given (refund, reversal), even when already spent.

    `allow_negative` takes all and leaves a debt later credits pay off; `claw_back_remaining`
    takes what is left and records the rest as the entry's `shortfall`.
    """
    available = max(account.balance, 0)
    taken = amount if policy is NegativePolicy.allow_negative else min(amount, available)
    entry = _entry(account, posting, -taken, amount - taken, now)
    session.add(entry)
    await session.flush()
    await _consume(session, account, entry, min(taken, available), prefer_entry)
    if takes_back_earning:
        account.lifetime_points -= amount
    return entry


async def expire_lot(
    session: AsyncSession, account: LoyaltyAccount, lot: LoyaltyLot, now: datetime
) -> LoyaltyEntry | None:
    """Write the `expire` entry for what is left of a lot (nothing when it was all spent)."""
    key = f"lot:{lot.id}:expire"
    if lot.remaining == 0 or await entry_by_key(session, account.tenant_id, key) is not None:
        return None
    posting = Posting("expire", "lot", "system", key, "points expired", source_id=lot.id)
    entry = _entry(account, posting, -lot.remaining, 0, now)
    session.add(entry)
    await session.flush()
    session.add(_consumption(lot, entry, lot.remaining))
    lot.remaining = 0
    await session.flush()
    return entry


# The posting hot path (API redemptions and adjustments): a handful of plain statements instead
# of the unit of work, because a posting's time was round trips and ORM rows, not SQL work. The
# account row lock is taken by the balance UPDATE itself (its WHERE re-checks the balance on the
# row version it locked, so two concurrent debits can never both pass); every later statement
# starts after the lock, so it sees the lots as the previous holder left them.
_SPEND_BALANCE = """
UPDATE loyalty_accounts SET balance = balance - :points, updated_at = :now
WHERE tenant_id = :tenant_id AND customer_id = :customer_id AND balance >= :points
RETURNING balance
"""

_ADD_BALANCE = """
UPDATE loyalty_accounts SET balance = balance + :points,
    lifetime_points = lifetime_points + :lifetime, updated_at = :now
WHERE tenant_id = :tenant_id AND customer_id = :customer_id AND balance >= 0
RETURNING balance
"""

_ENTRY_COLUMNS = (
    "tenant_id",
    "id",
    "customer_id",
    "kind",
    "points",
    "balance_after",
    "shortfall",
    "source_type",
    "source_id",
    "related_entry_id",
    "actor",
    "reason",
    "idempotency_key",
    "created_at",
)
_INSERT_ENTRY = (
    f"INSERT INTO loyalty_entries ({', '.join(_ENTRY_COLUMNS)})"
    f" VALUES ({', '.join(':' + c for c in _ENTRY_COLUMNS)})"
)

# Oldest lots first: a batch of open lots with the points before each (running sum), the ones
# needed to cover `amount` lowered and their consumptions written, in one statement.
_CONSUME_OLDEST = """
WITH open AS (
    SELECT id, remaining,
           sum(remaining) OVER (ORDER BY earned_at, id) - remaining AS before
    FROM (SELECT id, remaining, earned_at FROM loyalty_lots
          WHERE tenant_id = :tenant_id AND customer_id = :customer_id AND remaining > 0
          ORDER BY earned_at, id LIMIT :batch) l
), take AS (
    SELECT id, LEAST(remaining, CAST(:amount AS bigint) - before)::bigint AS points
    FROM open WHERE before < CAST(:amount AS bigint)
), spent AS (
    UPDATE loyalty_lots l SET remaining = l.remaining - t.points
    FROM take t WHERE l.tenant_id = :tenant_id AND l.id = t.id
    RETURNING t.points
), used AS (
    INSERT INTO loyalty_lot_consumptions (tenant_id, lot_id, entry_id, points)
    SELECT :tenant_id, id, :entry_id, points FROM take
)
SELECT COALESCE(sum(points), 0) FROM spent
"""

_NEW_LOT = """
INSERT INTO loyalty_lots (tenant_id, id, customer_id, entry_id, points, remaining, earned_at,
    expires_at)
VALUES (:tenant_id, :id, :customer_id, :entry_id, :points, :points, :now, :expires_at)
"""


def _new_entry(
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    posting: Posting,
    points: int,
    balance_after: int,
    now: datetime,
) -> LoyaltyEntry:
    return LoyaltyEntry(
        tenant_id=tenant_id,
        id=new_id(),
        customer_id=customer_id,
        kind=posting.kind,
        points=points,
        balance_after=balance_after,
        shortfall=0,
        source_type=posting.source_type,
        source_id=posting.source_id,
        related_entry_id=posting.related_entry_id,
        actor=posting.actor,
        reason=posting.reason,
        idempotency_key=posting.idempotency_key,
        created_at=now,
    )


async def _insert_entry(session: AsyncSession, entry: LoyaltyEntry) -> None:
    await session.execute(text(_INSERT_ENTRY), {c: getattr(entry, c) for c in _ENTRY_COLUMNS})


async def spend_points(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    posting: Posting,
    amount: int,
    now: datetime,
) -> LoyaltyEntry:
    """`debit` for the API's hot path: lock and debit the account (never overdraws), write the
    entry and take the points from the oldest lots, in three statements. Returns the entry
    written (not attached to the session). 404 without the customer, 409 without the points."""
    params = {"tenant_id": tenant_id, "customer_id": customer_id, "points": amount, "now": now}
    balance = await session.scalar(text(_SPEND_BALANCE), params)
    if balance is None:
        held = await session.scalar(
            select(LoyaltyAccount.balance).where(
                LoyaltyAccount.tenant_id == tenant_id, LoyaltyAccount.customer_id == customer_id
            )
        )
        if held is None:
            await ensure_customer(session, tenant_id, customer_id)
        raise InsufficientPoints(
            f"the account has {max(held or 0, 0)} points; {amount} were asked for",
            extra={"balance": held or 0, "requested": amount},
        )
    entry = _new_entry(tenant_id, customer_id, posting, -amount, balance, now)
    await _insert_entry(session, entry)
    left = amount
    while left > 0:
        taken = await session.scalar(
            text(_CONSUME_OLDEST),
            {
                "tenant_id": tenant_id,
                "customer_id": customer_id,
                "entry_id": entry.id,
                "amount": left,
                "batch": _LOT_BATCH,
            },
        )
        if not taken:
            break
        left -= int(taken)
    return entry


async def add_points(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    posting: Posting,
    lot: NewLot,
    now: datetime,
) -> LoyaltyEntry:
    """`credit` of one lot for the API's hot path: three statements when the account exists
    and owes nothing; a new account or one in debt (credits pay debts first) goes through
    `credit`. Returns the entry written."""
    lifetime = lot.points if posting.kind in CREDIT_KINDS else 0
    params = {
        "tenant_id": tenant_id,
        "customer_id": customer_id,
        "points": lot.points,
        "lifetime": lifetime,
        "now": now,
    }
    balance = await session.scalar(text(_ADD_BALANCE), params)
    if balance is None:
        await ensure_customer(session, tenant_id, customer_id)
        account = await lock_account(session, tenant_id, customer_id, now)
        return await credit(session, account, posting, [lot], now)
    entry = _new_entry(tenant_id, customer_id, posting, lot.points, balance, now)
    await _insert_entry(session, entry)
    await session.execute(
        text(_NEW_LOT),
        {
            "tenant_id": tenant_id,
            "id": new_id(),
            "customer_id": customer_id,
            "entry_id": entry.id,
            "points": lot.points,
            "now": now,
            "expires_at": lot.expires_at,
        },
    )
    return entry


async def consumed_lots(
    session: AsyncSession, tenant_id: uuid.UUID, entry_id: uuid.UUID
) -> list[tuple[int, datetime | None]]:
    """What an entry took from which lots: (points, that lot's expiry), oldest lot first."""
    rows = await session.execute(
        select(LoyaltyLotConsumption.points, LoyaltyLot.expires_at)
        .join(
            LoyaltyLot,
            (LoyaltyLot.tenant_id == LoyaltyLotConsumption.tenant_id)
            & (LoyaltyLot.id == LoyaltyLotConsumption.lot_id),
        )
        .where(
            LoyaltyLotConsumption.tenant_id == tenant_id,
            LoyaltyLotConsumption.entry_id == entry_id,
            LoyaltyLot.entry_id != entry_id,
        )
        .order_by(LoyaltyLot.earned_at, LoyaltyLot.id)
    )
    return [(points, expires_at) for points, expires_at in rows]
