"""Tiers: measured on rolling 12-month spend or lifetime points, recomputed with every earn and
reverse and by schedule, each change recorded with its date and cause."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.base import new_id
from app.models.loyalty import LoyaltyAccount, LoyaltyOrderEarn, LoyaltyTierChange
from app.schemas.loyalty import TierBasis, TierIn
from app.services.imports.load import UUID7_SQL
from app.services.loyalty.program import Program

ROLLING = timedelta(days=365)


async def rolling_spend(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID, now: datetime
) -> int:
    """Net paid (after refunds) of the customer's earning orders in the last 12 months, in fen."""
    total = await session.scalar(
        select(func.coalesce(func.sum(LoyaltyOrderEarn.net_fen), 0)).where(
            LoyaltyOrderEarn.tenant_id == tenant_id,
            LoyaltyOrderEarn.customer_id == customer_id,
            LoyaltyOrderEarn.status != "voided",
            LoyaltyOrderEarn.earned_at > now - ROLLING,
            LoyaltyOrderEarn.earned_at <= now,
        )
    )
    return int(total or 0)


async def measure(
    session: AsyncSession, account: LoyaltyAccount, program: Program, now: datetime
) -> int:
    if program.settings.tier_basis is TierBasis.lifetime_points:
        return account.lifetime_points
    return await rolling_spend(session, account.tenant_id, account.customer_id, now)


def tier_for(program: Program, value: int) -> TierIn:
    reached = [t for t in program.settings.tiers if t.threshold <= value]
    return reached[-1]


def next_tier(program: Program, value: int) -> tuple[TierIn, int] | None:
    above = [t for t in program.settings.tiers if t.threshold > value]
    return (above[0], above[0].threshold - value) if above else None


async def recompute(
    session: AsyncSession, account: LoyaltyAccount, program: Program, now: datetime, cause: str
) -> None:
    """Move the (locked) account to the tier its measure reaches, up or down, and record it."""
    tier = tier_for(program, await measure(session, account, program, now))
    if tier.code == account.tier:
        return
    session.add(
        LoyaltyTierChange(
            tenant_id=account.tenant_id,
            id=new_id(),
            customer_id=account.customer_id,
            from_tier=account.tier,
            to_tier=tier.code,
            changed_at=now,
            cause=cause,
        )
    )
    account.tier, account.tier_since, account.updated_at = tier.code, now, now
    await session.flush()


async def tier_history(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> list[LoyaltyTierChange]:
    rows = await session.scalars(
        select(LoyaltyTierChange)
        .where(
            LoyaltyTierChange.tenant_id == tenant_id,
            LoyaltyTierChange.customer_id == customer_id,
        )
        .order_by(LoyaltyTierChange.changed_at, LoyaltyTierChange.id)
    )
    return list(rows)


async def recompute_tenant(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    program: Program,
    now: datetime,
    after: uuid.UUID | None,
    limit: int = 500,
) -> uuid.UUID | None:
    """Scheduled pass: re-measure up to `limit` accounts after customer `after` (spend leaves
    the rolling window without any event); returns where to continue, None when done."""
    query = select(LoyaltyAccount.customer_id).where(
        LoyaltyAccount.tenant_id == tenant_id, LoyaltyAccount.merged_into.is_(None)
    )
    if after is not None:
        query = query.where(LoyaltyAccount.customer_id > after)
    customers = list(await session.scalars(query.order_by(LoyaltyAccount.customer_id).limit(limit)))
    for customer_id in customers:
        account = await session.scalar(
            select(LoyaltyAccount)
            .where(LoyaltyAccount.tenant_id == tenant_id, LoyaltyAccount.customer_id == customer_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert account is not None
        await recompute(session, account, program, now, "schedule")
    return customers[-1] if len(customers) == limit else None


# Measured account by account from the ids (primary-key lookups, never a scan of the tenant).
_MEASURE_MANY = """
SELECT c.id AS customer_id, a.tier AS old_tier, {tier} AS tier
FROM unnest(CAST(:customers AS uuid[])) AS c(id)
CROSS JOIN LATERAL (SELECT tier, lifetime_points FROM loyalty_accounts
                    WHERE tenant_id = CAST(:tenant_id AS uuid) AND customer_id = c.id
                    OFFSET 0) a
CROSS JOIN LATERAL (
    SELECT CASE WHEN CAST(:lifetime AS boolean) THEN a.lifetime_points
                ELSE (SELECT COALESCE(sum(e.net_fen), 0) FROM loyalty_order_earns e
                      WHERE e.tenant_id = CAST(:tenant_id AS uuid) AND e.customer_id = c.id
                        AND e.status <> 'voided' AND e.earned_at > CAST(:since AS timestamptz)
                        AND e.earned_at <= CAST(:now AS timestamptz))
           END AS value
) m
"""

_APPLY_MANY = f"""
WITH changed AS (
    SELECT * FROM unnest(CAST(:customers AS uuid[]), CAST(:old AS text[]), CAST(:new AS text[]))
        AS t(customer_id, old_tier, tier)
), moved AS (
    UPDATE loyalty_accounts a SET tier = t.tier, tier_since = CAST(:now AS timestamptz),
        updated_at = CAST(:now AS timestamptz)
    FROM changed t
    WHERE a.tenant_id = CAST(:tenant_id AS uuid) AND a.customer_id = t.customer_id
)
INSERT INTO loyalty_tier_changes (tenant_id, id, customer_id, from_tier, to_tier, changed_at,
    cause)
SELECT CAST(:tenant_id AS uuid), {UUID7_SQL}, customer_id, old_tier, tier,
       CAST(:now AS timestamptz), CAST(:cause AS text)
FROM changed
"""


async def recompute_many(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    program: Program,
    customers: list[uuid.UUID],
    now: datetime,
    cause: str,
) -> None:
    """`recompute` for many (locked) accounts: one statement measures, one applies the moves."""
    params: dict[str, object] = {
        "tenant_id": tenant_id,
        "customers": customers,
        "now": now,
        "since": now - ROLLING,
        "lifetime": program.settings.tier_basis is TierBasis.lifetime_points,
        "cause": cause,
    }
    whens = []
    for n, tier in reversed(list(enumerate(program.settings.tiers))):
        params[f"code{n}"], params[f"threshold{n}"] = tier.code, tier.threshold
        whens.append(f"WHEN m.value >= CAST(:threshold{n} AS bigint) THEN CAST(:code{n} AS text)")
    measured = await session.execute(
        text(_MEASURE_MANY.format(tier=f"CASE {' '.join(whens)} END")), params
    )
    moves = [row for row in measured if row.tier != row.old_tier]
    if not moves:
        return
    await session.execute(
        text(_APPLY_MANY),
        {
            **params,
            "customers": [row.customer_id for row in moves],
            "old": [row.old_tier for row in moves],
            "new": [row.tier for row in moves],
        },
    )
    # The statement changed rows the session may hold: reload those accounts on next use.
    wanted = set(customers)
    for held in list(session.identity_map.values()):
        if isinstance(held, LoyaltyAccount) and held.customer_id in wanted:
            session.expire(held)
