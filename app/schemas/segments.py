"""Segment requests and responses: filters, previews, members, saved segments, rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from app.schemas.common import Schema

FILTER_EXAMPLE: dict[str, Any] = {
    "and": [
        {"field": "province", "op": "eq", "value": "浙江省"},
        {"field": "total_spent_fen", "op": "gte", "value": 100000},
        {"ordered": {"category": "茶叶", "within_days": 365, "min_times": 2}},
        {"not": {"field": "tags", "op": "contains", "value": "黑名单"}},
    ]
}
FILTER_DOC = (
    'A tree of `{"and": [...]}`, `{"or": [...]}`, `{"not": {...}}`, conditions '
    '`{"field", "op", "value"}` (see `GET /api/v1/segments/fields`) and '
    '`{"ordered": {product, product_prefix, title_contains, category, shop_id, platform, '
    "within_days, since, until, min_times, min_amount_fen, max_amount_fen}}`."
)


class PreviewIn(Schema):
    filter: Any = Field(description=FILTER_DOC, examples=[FILTER_EXAMPLE])


class MemberOut(Schema):
    id: uuid.UUID
    display_name: str | None
    province: str | None
    city: str | None
    tags: list[str]
    order_count: int
    total_spent_fen: int
    avg_order_value_fen: int
    last_order_at: datetime | None
    days_since_last_order: int | None
    rfm_r: int | None
    rfm_f: int | None
    rfm_m: int | None
    rfm_group: str | None
    lifecycle_stage: str


class PreviewOut(Schema):
    count: int
    items: list[MemberOut]
    next_cursor: str | None


class FieldOut(Schema):
    name: str
    type: str
    group: str
    description: str
    operators: list[str]
    choices: list[str] | None


class FieldsOut(Schema):
    fields: list[FieldOut]
    ordered: list[str] = Field(description="Keys an `ordered` condition takes.")
    limits: dict[str, int]


class SegmentCreate(Schema):
    name: str = Field(min_length=1, max_length=200, examples=["浙江高价值茶客"])
    description: str | None = Field(default=None, max_length=2000)
    filter: Any = Field(description=FILTER_DOC, examples=[FILTER_EXAMPLE])


class SegmentUpdate(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    filter: Any = Field(default=None, description=FILTER_DOC)


class SegmentOut(Schema):
    id: uuid.UUID
    name: str
    description: str | None
    filter: Any
    last_count: int | None
    last_evaluated_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SizePoint(Schema):
    evaluated_at: datetime
    member_count: int


class SizeHistoryOut(Schema):
    items: list[SizePoint]


class MemberSort(StrEnum):
    newest = "newest"
    total_spent_fen = "total_spent_fen"
    order_count = "order_count"
    avg_order_value_fen = "avg_order_value_fen"
    last_order_at = "last_order_at"
    first_order_at = "first_order_at"


class CategoryMatch(StrEnum):
    code_prefix = "code_prefix"
    title_keyword = "title_keyword"


class CategoryRuleIn(Schema):
    category: str = Field(min_length=1, max_length=100, examples=["茶叶"])
    match: CategoryMatch = Field(description="Match merchant codes by prefix or titles by keyword.")
    pattern: str = Field(min_length=1, max_length=200, examples=["TEA-"])


class CategoryRuleOut(Schema):
    id: uuid.UUID
    category: str
    match: CategoryMatch
    pattern: str
    created_at: datetime


class ThresholdsIn(Schema):
    new_days: int = Field(
        default=30, ge=1, le=3650, description="`new`: first order within N days."
    )
    loyal_orders: int = Field(default=5, ge=2, le=10000, description="`loyal`: at least K orders.")
    at_risk_days: int = Field(
        default=90, ge=1, le=3650, description="`at_risk`: no order for X days."
    )
    churned_days: int = Field(
        default=180, ge=2, le=3650, description="`churned`: no order for Y days (Y > X)."
    )


class ThresholdsOut(ThresholdsIn):
    """The tenant's lifecycle thresholds as stored."""
