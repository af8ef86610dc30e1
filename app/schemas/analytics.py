"""Analytics responses: overview, RFM grid and groups, lifecycle, cohorts, geography."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from pydantic import Field

from app.schemas.common import Schema


class Interval(StrEnum):
    day = "day"
    week = "week"
    month = "month"


class SalesFigures(Schema):
    orders: int
    buyers: int
    gmv_fen: int = Field(description="Paid less refunded, in fen.")
    aov_fen: int = Field(description="GMV per order, in fen.")


class PlatformFigures(SalesFigures):
    platform: str


class ShopFigures(SalesFigures):
    shop_id: uuid.UUID
    shop_name: str | None


class PeriodFigures(SalesFigures):
    period: date = Field(description="First day of the period (Asia/Shanghai).")


class OverviewOut(Schema):
    since: datetime
    until: datetime
    customers: int = Field(description="All customer profiles.")
    buyers_ever: int = Field(description="Customers with at least one paid order, ever.")
    totals: SalesFigures
    repurchase_rate: float = Field(description="Buyers with 2+ orders in the window / buyers.")
    by_platform: list[PlatformFigures]
    by_shop: list[ShopFigures]
    series: list[PeriodFigures]


class RfmCell(Schema):
    r: int
    f: int
    customers: int
    spent_fen: int


class RfmGroupOut(Schema):
    group: str
    label: str
    customers: int
    spent_fen: int
    avg_spent_fen: int


class RfmOut(Schema):
    as_of: datetime | None = Field(description="When the scores were last recomputed.")
    buyers: int
    grid: list[RfmCell] = Field(description="The 5x5 recency x frequency grid.")
    groups: list[RfmGroupOut]


class StageCount(Schema):
    stage: str
    customers: int


class StageFlow(Schema):
    from_stage: str
    to_stage: str
    customers: int


class StageChange(Schema):
    from_stage: str | None
    to_stage: str
    changed_at: datetime


class LifecycleHistoryOut(Schema):
    items: list[StageChange]


class LifecycleOut(Schema):
    stages: list[StageCount]
    since: datetime
    until: datetime
    flows: list[StageFlow] = Field(
        description="Customers whose stage at `since` differs from their stage at `until`."
    )


class CohortMonth(Schema):
    months_since: int
    buyers: int
    retention: float
    revenue_fen: int


class CohortOut(Schema):
    cohort: date = Field(description="Month of the first purchase (Asia/Shanghai).")
    size: int
    months: list[CohortMonth]


class CohortsOut(Schema):
    cohorts: list[CohortOut]


class CityFigures(Schema):
    city: str | None
    customers: int
    buyers: int
    spent_fen: int


class ProvinceFigures(Schema):
    province: str | None
    customers: int
    buyers: int
    spent_fen: int
    cities: list[CityFigures]


class GeoOut(Schema):
    provinces: list[ProvinceFigures]
