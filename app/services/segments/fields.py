"""The field catalogue of the filter language: each field's type, SQL expression and operators.

Every segment query reads `customers` (alias `c`) left-joined to `customer_facts` (alias `f`)
and `customer_scores` (alias `s`): a customer no import has touched yet has no facts row and
counts as having no orders; one no recompute has scored yet has no scores row and is a prospect.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Integer, Text, cast, extract, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.expression import ColumnClause

from app.models import Customer, CustomerFacts, CustomerIdentity, LoyaltyAccount, Ticket
from app.models.segments import CustomerScores
from app.schemas.shops import Platform

customers = Customer.__table__.alias("c")
facts = CustomerFacts.__table__.alias("f")
scores = CustomerScores.__table__.alias("s")
identities = CustomerIdentity.__table__.alias("ci")
loyalty = LoyaltyAccount.__table__.alias("la")
tickets = Ticket.__table__.alias("tk")
c, f, s = customers.c, facts.c, scores.c

PLATFORMS = tuple(p.value for p in Platform)
GENDERS = ("male", "female", "unknown")
OPEN_TICKET_STATUSES = ("new", "open", "pending")
LIFECYCLE_STAGES = ("prospect", "new", "active", "loyal", "at_risk", "churned", "won_back")

RFM_GROUPS: dict[str, str] = {
    "important_value": "重要价值客户",
    "important_develop": "重要发展客户",
    "important_keep": "重要保持客户",
    "important_retain": "重要挽留客户",
    "general_value": "一般价值客户",
    "general_develop": "一般发展客户",
    "general_keep": "一般保持客户",
    "general_retain": "一般挽留客户",
}


class FieldType(StrEnum):
    string = "string"
    enum = "enum"
    integer = "integer"
    money = "money"
    number = "number"
    datetime = "datetime"
    date = "date"
    string_list = "string_list"
    text_list = "text_list"
    enum_list = "enum_list"
    uuid_list = "uuid_list"


OPERATORS: dict[FieldType, tuple[str, ...]] = {
    FieldType.string: ("eq", "ne", "in", "not_in", "contains", "starts_with", "is_null"),
    FieldType.enum: ("eq", "ne", "in", "not_in", "is_null"),
    FieldType.integer: ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_null"),
    FieldType.money: ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_null"),
    FieldType.number: ("eq", "ne", "gt", "gte", "lt", "lte", "between", "is_null"),
    FieldType.datetime: ("gt", "gte", "lt", "lte", "between", "is_null", "within_days"),
    FieldType.date: ("eq", "ne", "gt", "gte", "lt", "lte", "between", "is_null"),
    FieldType.string_list: ("contains", "in", "not_in", "is_null"),
    FieldType.text_list: ("eq", "in", "not_in", "contains", "starts_with", "is_null"),
    FieldType.enum_list: ("contains", "in", "not_in", "is_null"),
    FieldType.uuid_list: ("contains", "in", "not_in", "is_null"),
}


@dataclass(frozen=True)
class QueryContext:
    """What a compiled filter may depend on besides its own values: the tenant and `now`."""

    tenant_id: Any
    now: datetime
    categories: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """The tenant's category rules (match, pattern) by category; loaded when a filter names one."""
    candidates: list[uuid.UUID] | None = None
    """The only customers that can match, when the in-memory frame has narrowed them down: an
    `ordered` condition then reads only their orders."""


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    group: str
    description: str
    column: Callable[[QueryContext], ColumnElement[Any]]
    choices: tuple[str, ...] | None = None
    default: Any = None
    """The value of a customer without a facts row (no import touched them yet), if any."""

    @property
    def operators(self) -> tuple[str, ...]:
        return OPERATORS[self.type]


def _col(column: ColumnClause[Any] | ColumnElement[Any]) -> Callable[[QueryContext], Any]:
    return lambda _ctx: column


def _days_since_last_order(ctx: QueryContext) -> Any:
    return cast(func.floor(extract("epoch", literal(ctx.now) - f.last_order_at) / 86400), Integer)


def _identity_platforms(ctx: QueryContext) -> Any:
    platforms = (
        select(func.array_agg(identities.c.platform))
        .where(identities.c.tenant_id == ctx.tenant_id, identities.c.customer_id == c.id)
        .scalar_subquery()
    )
    return cast(platforms, ARRAY(Text()))


def _loyalty_tier(ctx: QueryContext) -> Any:
    return (
        select(loyalty.c.tier)
        .where(loyalty.c.tenant_id == ctx.tenant_id, loyalty.c.customer_id == c.id)
        .scalar_subquery()
    )


def _open_complaints(ctx: QueryContext) -> Any:
    return (
        select(func.count())
        .where(
            tickets.c.tenant_id == ctx.tenant_id,
            tickets.c.customer_id == c.id,
            tickets.c.kind == "complaint",
            tickets.c.status.in_(OPEN_TICKET_STATUSES),
        )
        .scalar_subquery()
    )


_FIELDS: list[Field] = [
    Field("display_name", FieldType.string, "profile", "Display name.", _col(c.display_name)),
    Field("gender", FieldType.enum, "profile", "Gender.", _col(c.gender), GENDERS),
    Field("birthday", FieldType.date, "profile", "Date of birth.", _col(c.birthday)),
    Field("province", FieldType.string, "profile", "Province (省).", _col(c.province)),
    Field("city", FieldType.string, "profile", "City (市).", _col(c.city)),
    Field("district", FieldType.string, "profile", "District (区).", _col(c.district)),
    Field("created_at", FieldType.datetime, "profile", "When the profile was created.",
          _col(c.created_at)),
    Field("tags", FieldType.string_list, "tags", "The customer's tags.", _col(c.tags)),
    Field("identity_platforms", FieldType.enum_list, "identities",
          "Platforms the customer has a channel identity on.", _identity_platforms, PLATFORMS),
    Field("order_count", FieldType.integer, "facts", "Paid orders.", _col(f.order_count),
          default=0),
    Field("total_spent_fen", FieldType.money, "facts", "Paid less refunded, in fen.",
          _col(f.total_spent_fen), default=0),
    Field("avg_order_value_fen", FieldType.money, "facts", "Spend per paid order, in fen.",
          _col(f.avg_order_value_fen), default=0),
    Field("refund_count", FieldType.integer, "facts", "Orders with a refund.",
          _col(f.refund_count), default=0),
    Field("refund_fen", FieldType.money, "facts", "Refunded, in fen.", _col(f.refund_fen),
          default=0),
    Field("refund_rate", FieldType.number, "facts",
          "Paid orders with a refund / paid orders (0 to 1).", _col(f.refund_rate), default=0),
    Field("first_order_at", FieldType.datetime, "facts", "First paid order.",
          _col(f.first_order_at)),
    Field("last_order_at", FieldType.datetime, "facts", "Last paid order.",
          _col(f.last_order_at)),
    Field("days_since_last_order", FieldType.integer, "facts",
          "Whole days from the last paid order to now (null without orders).",
          _days_since_last_order),
    Field("platforms", FieldType.enum_list, "facts", "Platforms the customer bought on.",
          _col(cast(f.platforms, ARRAY(Text()))), PLATFORMS),
    Field("shops", FieldType.uuid_list, "facts", "Shops (ids) the customer bought in.",
          _col(f.shop_ids)),
    Field("products", FieldType.text_list, "facts", "Merchant codes (商家编码) bought.",
          _col(f.merchant_codes)),
    Field("product_titles", FieldType.text_list, "facts", "Product titles bought.",
          _col(f.product_titles)),
    Field("categories", FieldType.string_list, "facts",
          "The tenant's product categories bought (see category rules).", _col(f.categories)),
    Field("rfm_r", FieldType.integer, "rfm", "Recency score 1-5 (5 = most recent).",
          _col(s.rfm_r)),
    Field("rfm_f", FieldType.integer, "rfm", "Frequency score 1-5.", _col(s.rfm_f)),
    Field("rfm_m", FieldType.integer, "rfm", "Monetary score 1-5.", _col(s.rfm_m)),
    Field("rfm_group", FieldType.enum, "rfm", "The eight-group RFM label.", _col(s.rfm_group),
          tuple(RFM_GROUPS)),
    Field("lifecycle_stage", FieldType.enum, "lifecycle", "Lifecycle stage.",
          _col(s.lifecycle_stage), LIFECYCLE_STAGES, default="prospect"),
    Field("lifecycle_since", FieldType.datetime, "lifecycle", "When the stage was entered.",
          _col(s.lifecycle_since)),
    Field("loyalty_tier", FieldType.string, "loyalty", "The loyalty tier (null: no account).",
          _loyalty_tier),
    Field("open_complaints", FieldType.integer, "tickets",
          "Complaint tickets not yet resolved (new, open or pending).", _open_complaints),
]  # fmt: skip

FIELDS: dict[str, Field] = {field.name: field for field in _FIELDS}
