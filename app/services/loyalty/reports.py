"""Monthly points report: issued, redeemed, expired, reversed and the outstanding liability."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.loyalty import LoyaltyEntry
from app.schemas.loyalty import MonthReport
from app.services.auth import Principal


async def monthly(
    session: AsyncSession, actor: Principal, since: str | None, until: str | None
) -> list[MonthReport]:
    """One row per calendar month (Asia/Shanghai) with entries; `outstanding` is every balance
    at month end. Merge pairs cancel out and count in no column."""
    actor.require("loyalty:read")
    e = LoyaltyEntry
    month = func.to_char(
        func.timezone("Asia/Shanghai", e.created_at), literal_column("'YYYY-MM'")
    ).label("month")
    not_merge = e.source_type != "merge"

    def total(*conditions: ColumnElement[bool]) -> ColumnElement[int]:
        return func.coalesce(func.sum(e.points).filter(and_(*conditions)), 0)

    rows = (
        await session.execute(
            select(
                month,
                total(e.kind.in_(["earn", "bonus", "referral"])),
                total(e.kind == "adjust", e.points > 0, not_merge),
                total(e.kind == "redeem"),
                total(e.kind == "expire"),
                total(e.kind == "reverse"),
                total(e.kind == "adjust", e.points < 0, not_merge),
                func.sum(e.points),
            )
            .where(e.tenant_id == actor.tenant_id)
            .group_by(month)
            .order_by(month)
        )
    ).all()
    reports: list[MonthReport] = []
    outstanding = 0
    for name, earned, credited, redeemed, expired, reversed_, debited, net in rows:
        outstanding += int(net)
        if (since and name < since) or (until and name > until):
            continue
        reports.append(
            MonthReport(
                month=name,
                issued=int(earned) + int(credited),
                redeemed=-int(redeemed),
                expired=-int(expired),
                reversed=-int(reversed_),
                adjusted_out=-int(debited),
                outstanding=outstanding,
            )
        )
    return reports
