"""Versioned program settings: a change applies from its effective time; the past stays as is."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import FieldError, ValidationFailed
from app.models.loyalty import LoyaltyProgram
from app.schemas.loyalty import ProgramIn, ProgramSettings, Rounding, TierIn
from app.services.auth import Principal
from app.services.paging import check_if_match

_DAWN = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Program:
    version: int
    effective_from: datetime
    settings: ProgramSettings

    def tier(self, code: str | None) -> TierIn | None:
        return next((t for t in self.settings.tiers if t.code == code), None)


def default_program() -> Program:
    return Program(0, _DAWN, ProgramSettings())


def _program(row: LoyaltyProgram) -> Program:
    return Program(row.version, row.effective_from, ProgramSettings.model_validate(row.settings))


async def current_program(session: AsyncSession, tenant_id: uuid.UUID, now: datetime) -> Program:
    """The version in force at `now` (the defaults until a tenant saves its own)."""
    row = await session.scalar(
        select(LoyaltyProgram)
        .where(LoyaltyProgram.tenant_id == tenant_id, LoyaltyProgram.effective_from <= now)
        .order_by(LoyaltyProgram.effective_from.desc(), LoyaltyProgram.version.desc())
        .limit(1)
    )
    return default_program() if row is None else _program(row)


async def scheduled_programs(
    session: AsyncSession, tenant_id: uuid.UUID, now: datetime
) -> list[Program]:
    rows = await session.scalars(
        select(LoyaltyProgram)
        .where(LoyaltyProgram.tenant_id == tenant_id, LoyaltyProgram.effective_from > now)
        .order_by(LoyaltyProgram.effective_from, LoyaltyProgram.version)
    )
    return [_program(r) for r in rows]


async def latest_version(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    """The newest version saved (in force or scheduled): the program's ETag."""
    version = await session.scalar(
        select(func.max(LoyaltyProgram.version)).where(LoyaltyProgram.tenant_id == tenant_id)
    )
    return version or 0


async def get_program(
    session: AsyncSession, actor: Principal, now: datetime
) -> tuple[Program, list[Program], int]:
    actor.require("loyalty:read")
    return (
        await current_program(session, actor.tenant_id, now),
        await scheduled_programs(session, actor.tenant_id, now),
        await latest_version(session, actor.tenant_id),
    )


async def put_program(
    session: AsyncSession, actor: Principal, body: ProgramIn, if_match: str | None, now: datetime
) -> Program:
    """Save a new version; two concurrent saves of the same version: one wins, one gets 409."""
    actor.require("loyalty:program")
    latest = await latest_version(session, actor.tenant_id)
    check_if_match(if_match, latest)
    effective_from = body.effective_from or now
    if effective_from < now:
        raise ValidationFailed(
            "a program change cannot apply in the past",
            [FieldError(["body", "effective_from"], "now or later; past entries stay as they are")],
        )
    settings = ProgramSettings.model_validate(body.model_dump(exclude={"effective_from"}))
    row = LoyaltyProgram(
        tenant_id=actor.tenant_id,
        version=latest + 1,
        effective_from=effective_from.astimezone(UTC),
        settings=settings.model_dump(mode="json"),
        actor=actor.key_name,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return _program(row)


def round_points(value: Fraction, rounding: Rounding) -> int:
    if rounding is Rounding.floor:
        return value.numerator // value.denominator
    if rounding is Rounding.ceil:
        return -(-value.numerator // value.denominator)
    return int((value + Fraction(1, 2)).numerator // (value + Fraction(1, 2)).denominator)
