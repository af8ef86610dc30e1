"""Loyalty request and response shapes: program settings, accounts, entries, tiers, reports."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StrictInt, model_validator

from app.schemas.common import Schema

Points = Annotated[
    StrictInt,
    Field(gt=0, le=1_000_000_000, description="A positive whole number of points."),
]


class Rounding(StrEnum):
    floor = "floor"
    half_up = "half_up"
    ceil = "ceil"


class TierBasis(StrEnum):
    rolling_12m_spend = "rolling_12m_spend"
    lifetime_points = "lifetime_points"


class NegativePolicy(StrEnum):
    allow_negative = "allow_negative"
    claw_back_remaining = "claw_back_remaining"


class EarningStatus(StrEnum):
    paid = "paid"
    shipped = "shipped"
    completed = "completed"


class TierIn(Schema):
    code: str = Field(min_length=1, max_length=50, pattern=r"^[a-z0-9_]+$")
    name: str = Field(min_length=1, max_length=50, examples=["金卡"])
    threshold: int = Field(
        ge=0, description="Spend in fen (rolling 12 months) or lifetime points to reach the tier."
    )
    multiplier_percent: int = Field(
        default=100, ge=0, le=10_000, description="Earning multiplier, 150 = 1.5x."
    )
    benefits: str = Field(default="", max_length=2000)


class MonthsAfterEarn(Schema):
    mode: Literal["months_after_earn"] = "months_after_earn"
    months: int = Field(default=24, ge=1, le=240)


class FixedYearlyDate(Schema):
    """Lots expire at the end (Asia/Shanghai) of the first `month`/`day` after they were earned,
    `extra_years` later (0: the coming date, 1: the one after)."""

    mode: Literal["fixed_yearly_date"] = "fixed_yearly_date"
    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)
    extra_years: int = Field(default=0, ge=0, le=10)

    @model_validator(mode="after")
    def _real_date(self) -> FixedYearlyDate:
        date(2001, self.month, self.day)  # a non-leap year: 02-29 would expire only every 4 years
        return self


class NeverExpire(Schema):
    mode: Literal["never"] = "never"


Expiry = Annotated[MonthsAfterEarn | FixedYearlyDate | NeverExpire, Field(discriminator="mode")]


def _default_tiers() -> list[TierIn]:
    return [
        TierIn(code="regular", name="普通会员", threshold=0),
        TierIn(code="silver", name="银卡", threshold=100_000, multiplier_percent=110),
        TierIn(code="gold", name="金卡", threshold=500_000, multiplier_percent=125),
        TierIn(code="diamond", name="钻石", threshold=2_000_000, multiplier_percent=150),
    ]


class ProgramSettings(Schema):
    points_per_yuan: int = Field(default=1, ge=0, le=10_000)
    rounding: Rounding = Rounding.floor
    earning_status: EarningStatus = EarningStatus.completed
    return_window_days: int = Field(default=7, ge=0, le=365)
    tier_basis: TierBasis = TierBasis.rolling_12m_spend
    tiers: list[TierIn] = Field(default_factory=_default_tiers, min_length=1, max_length=20)
    expiry: Expiry = Field(default_factory=MonthsAfterEarn)
    negative_policy: NegativePolicy = NegativePolicy.allow_negative
    birthday_bonus: int = Field(default=0, ge=0, le=1_000_000)
    referral_bonus: int = Field(default=0, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _tiers_ordered(self) -> ProgramSettings:
        thresholds = [t.threshold for t in self.tiers]
        codes = [t.code for t in self.tiers]
        if thresholds[0] != 0 or thresholds != sorted(set(thresholds)):
            raise ValueError("tiers: thresholds start at 0 and strictly increase")
        if len(set(codes)) != len(codes):
            raise ValueError("tiers: codes are unique")
        return self


class ProgramIn(ProgramSettings):
    effective_from: AwareDatetime | None = Field(
        default=None, description="When the change applies (now when omitted; never in the past)."
    )


class ProgramOut(ProgramSettings):
    version: int
    effective_from: datetime
    scheduled: list[ScheduledProgram] = Field(
        default_factory=list, description="Versions that take effect later."
    )


class ScheduledProgram(Schema):
    version: int
    effective_from: datetime


class PointsIn(Schema):
    points: Points
    reason: str = Field(min_length=1, max_length=500)


class AdjustmentIn(PointsIn):
    direction: Literal["credit", "debit"] = Field(
        default="credit", description="`debit` takes points away (oldest lots first)."
    )


class ReverseIn(Schema):
    reason: str = Field(min_length=1, max_length=500)


class ReferralIn(Schema):
    referrer_id: uuid.UUID
    referred_id: uuid.UUID


class EntryOut(Schema):
    id: uuid.UUID
    customer_id: uuid.UUID
    kind: str
    points: int
    balance_after: int
    shortfall: int = Field(
        description="Points a reversal could not take back because they were already spent."
    )
    source_type: str
    source_id: uuid.UUID | None
    related_entry_id: uuid.UUID | None
    actor: str
    reason: str | None
    created_at: datetime


class TierRef(Schema):
    code: str
    name: str


class NextTier(TierRef):
    missing: int = Field(description="Spend in fen or points (per the tier basis) still needed.")


class AccountOut(Schema):
    customer_id: uuid.UUID
    balance: int = Field(description="Posted, spendable points (negative after a clawback).")
    pending: int = Field(description="Earned, visible, not spendable until the return window.")
    lifetime_points: int
    tier: TierRef | None
    tier_since: datetime | None
    next_tier: NextTier | None
    expiring_soon: int = Field(description="Points that expire within 30 days.")
    expiring_before: datetime


class ExpiringLot(Schema):
    customer_id: uuid.UUID
    points: int
    expires_at: datetime


class TierOut(TierIn):
    members: int


class MonthReport(Schema):
    month: str = Field(examples=["2026-11"], description="Calendar month in Asia/Shanghai.")
    issued: int = Field(description="Points posted by earn, bonus, referral and credit adjust.")
    redeemed: int
    expired: int
    reversed: int = Field(description="Net points taken back by reversals.")
    adjusted_out: int
    outstanding: int = Field(description="Liability: every account's balance at month end.")


ProgramOut.model_rebuild()
