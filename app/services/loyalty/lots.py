"""Lots and expiry: when a lot expires, the scheduled expiry run, and what will expire soon."""

from __future__ import annotations

import calendar
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.loyalty import LoyaltyLot
from app.schemas.loyalty import FixedYearlyDate, MonthsAfterEarn, ProgramSettings
from app.services.loyalty.ledger import expire_lot, lock_account
from app.services.paging import cursor_values, encode_cursor

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _end_of_day(year: int, month: int, day: int) -> datetime:
    """Midnight after `year-month-day` in Asia/Shanghai (the seller's calendar), in UTC."""
    day = min(day, calendar.monthrange(year, month)[1])
    local = datetime(year, month, day, tzinfo=SHANGHAI) + timedelta(days=1)
    return local.astimezone(UTC)


def expiry_for(settings: ProgramSettings, earned_at: datetime) -> datetime | None:
    policy = settings.expiry
    if isinstance(policy, MonthsAfterEarn):
        return _add_months(earned_at.astimezone(UTC), policy.months)
    if isinstance(policy, FixedYearlyDate):
        year = earned_at.astimezone(SHANGHAI).year
        when = _end_of_day(year, policy.month, policy.day)
        if when <= earned_at:
            year += 1
        return _end_of_day(year + policy.extra_years, policy.month, policy.day)
    return None


async def expire_due(
    session: AsyncSession, tenant_id: uuid.UUID, now: datetime, limit: int = 500
) -> int:
    """Expire what is left of every lot past its date, for up to `limit` accounts; returns how
    many accounts were handled (call again until 0). Idempotent: one `expire` entry per lot."""
    customers = list(
        await session.scalars(
            select(LoyaltyLot.customer_id)
            .where(
                LoyaltyLot.tenant_id == tenant_id,
                LoyaltyLot.expires_at <= now,
                LoyaltyLot.remaining > 0,
            )
            .distinct()
            .limit(limit)
        )
    )
    for customer_id in sorted(customers):
        account = await lock_account(session, tenant_id, customer_id, now)
        lots = await session.scalars(
            select(LoyaltyLot)
            .where(
                LoyaltyLot.tenant_id == tenant_id,
                LoyaltyLot.customer_id == customer_id,
                LoyaltyLot.expires_at <= now,
                LoyaltyLot.remaining > 0,
            )
            .order_by(LoyaltyLot.expires_at, LoyaltyLot.id)
            .execution_options(populate_existing=True)
        )
        for lot in list(lots):
            await expire_lot(session, account, lot, now)
    return len(customers)


async def expiring_lots(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    before: datetime,
    customer_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[LoyaltyLot], str | None]:
    """Lots with points left that expire before `before`, soonest first (for reminders)."""
    query = select(LoyaltyLot).where(
        LoyaltyLot.tenant_id == tenant_id,
        LoyaltyLot.expires_at < before,
        LoyaltyLot.remaining > 0,
    )
    if customer_id is not None:
        query = query.where(LoyaltyLot.customer_id == customer_id)
    if cursor is not None:
        at, lot_id = cursor_values(cursor, "at", "id")
        query = query.where(
            tuple_(LoyaltyLot.expires_at, LoyaltyLot.id)
            > tuple_(datetime.fromisoformat(at), uuid.UUID(lot_id))
        )
    rows = list(
        await session.scalars(query.order_by(LoyaltyLot.expires_at, LoyaltyLot.id).limit(limit + 1))
    )
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    assert last.expires_at is not None
    return rows[:limit], encode_cursor({"at": last.expires_at.isoformat(), "id": str(last.id)})
