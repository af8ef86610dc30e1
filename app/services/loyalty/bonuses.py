"""Birthday bonus: the program's points on the customer's birthday (Asia/Shanghai), once a year."""

from __future__ import annotations

import calendar
import uuid
from datetime import datetime

from sqlalchemy import extract, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Customer
from app.services.loyalty.hooks import grant_points
from app.services.loyalty.lots import SHANGHAI
from app.services.loyalty.program import current_program


async def birthday_bonuses(session: AsyncSession, tenant_id: uuid.UUID, now: datetime) -> int:
    """Grant today's birthday bonuses (29 February birthdays on the 28th in common years);
    idempotent per customer and year. Returns how many customers have a birthday today."""
    program = await current_program(session, tenant_id, now)
    points = program.settings.birthday_bonus
    if points == 0:
        return 0
    today = now.astimezone(SHANGHAI).date()
    days = [today.day]
    if (today.month, today.day) == (2, 28) and not calendar.isleap(today.year):
        days.append(29)
    customers = await session.scalars(
        select(Customer.id).where(
            Customer.tenant_id == tenant_id,
            extract("month", Customer.birthday) == today.month,
            or_(*(extract("day", Customer.birthday) == day for day in days)),
        )
    )
    count = 0
    for customer_id in sorted(customers):
        await grant_points(
            session,
            tenant_id,
            customer_id,
            points,
            kind="bonus",
            source_type="program",
            source_id=None,
            reason=f"birthday {today.year}",
            idempotency_key=f"birthday:{customer_id}:{today.year}",
            actor="system",
            now=now,
        )
        count += 1
    return count
