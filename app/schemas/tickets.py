"""Ticket, staff, category, SLA policy, settings, survey and report requests and responses."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator, model_validator

from app.schemas.common import Schema


class TicketKind(StrEnum):
    complaint = "complaint"
    after_sale = "after_sale"
    product_feedback = "product_feedback"
    suggestion = "suggestion"
    praise = "praise"
    inquiry = "inquiry"


class TicketChannel(StrEnum):
    tmall_chat = "tmall_chat"
    pdd_chat = "pdd_chat"
    phone = "phone"
    email = "email"
    wechat = "wechat"
    review = "review"
    store = "store"
    survey = "survey"
    other = "other"


class Priority(StrEnum):
    p1 = "p1"
    p2 = "p2"
    p3 = "p3"
    p4 = "p4"


class TicketStatus(StrEnum):
    new = "new"
    open = "open"
    pending = "pending"
    resolved = "resolved"
    closed = "closed"


class SlaState(StrEnum):
    breached = "breached"
    at_risk = "at_risk"


class Visibility(StrEnum):
    public = "public"
    internal = "internal"


# --- staff and categories ------------------------------------------------------------------


class StaffCreate(Schema):
    name: str = Field(min_length=1, max_length=100, examples=["小李"])
    team: str | None = Field(default=None, max_length=100, examples=["售后一组"])
    active: bool = True
    api_key_id: uuid.UUID | None = Field(
        default=None, description="An API key that acts as this staff member on the timeline."
    )


class StaffUpdate(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    team: str | None = Field(default=None, max_length=100)
    active: bool | None = None
    api_key_id: uuid.UUID | None = None


class StaffOut(Schema):
    id: uuid.UUID
    name: str
    team: str | None
    active: bool
    api_key_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


_CODE = re.compile(r"^[a-z][a-z0-9_]{0,49}$")


class CategoryCreate(Schema):
    code: str = Field(
        min_length=1, max_length=50, description="lowercase snake_case", examples=["packaging"]
    )
    name: str = Field(min_length=1, max_length=100, examples=["包装破损"])
    active: bool = True
    position: int = Field(default=100, ge=0, le=10_000)

    @field_validator("code")
    @classmethod
    def _snake(cls, value: str) -> str:
        if not _CODE.match(value):
            raise ValueError("a lowercase letter, then lowercase letters, digits or _")
        return value


class CategoryUpdate(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    active: bool | None = None
    position: int | None = Field(default=None, ge=0, le=10_000)


class CategoryOut(Schema):
    code: str
    name: str
    active: bool
    position: int


# --- SLA policies and settings -------------------------------------------------------------


class SlaPolicyIn(Schema):
    first_response_minutes: int = Field(ge=1, le=525_600, examples=[240])
    resolution_minutes: int = Field(ge=1, le=525_600, examples=[2880])
    business_hours: bool = Field(
        examples=[True], description="Count only the tenant calendar's working hours."
    )


class SlaPolicyOut(SlaPolicyIn):
    priority: Priority
    is_default: bool = Field(description="True until the tenant sets its own policy.")


class WorkingWindow(Schema):
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["09:00"])
    end: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$", examples=["18:00"])

    @model_validator(mode="after")
    def _ordered(self) -> WorkingWindow:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


def _default_hours() -> dict[str, list[WorkingWindow]]:
    return {
        day: [WorkingWindow(start="09:00", end="18:00")]
        for day in ("mon", "tue", "wed", "thu", "fri")
    }


class TicketSettingsIn(Schema):
    timezone: str = Field(default="Asia/Shanghai", max_length=64, examples=["Asia/Shanghai"])
    working_hours: dict[str, list[WorkingWindow]] = Field(
        default_factory=_default_hours,
        description="Working windows per weekday (`mon`..`sun`); a day left out is not worked.",
    )
    holidays: list[date] = Field(default_factory=list, max_length=1000, examples=[["2026-10-01"]])
    workdays: list[date] = Field(
        default_factory=list,
        max_length=1000,
        description="Make-up workdays (调休) on a weekend: worked with Monday's hours.",
        examples=[["2026-10-10"]],
    )
    reopen_window_days: int = Field(default=7, ge=0, le=365)
    at_risk_minutes: int = Field(
        default=120, ge=1, le=10_080, description="A clock due within this long is at risk."
    )


class TicketSettingsOut(TicketSettingsIn):
    """The tenant's ticket settings as stored."""


# --- tickets -------------------------------------------------------------------------------


class TicketCreate(Schema):
    customer_id: uuid.UUID
    kind: TicketKind = Field(examples=["complaint"])
    category: str = Field(default="other", max_length=50, examples=["logistics"])
    channel: TicketChannel = Field(examples=["tmall_chat"])
    priority: Priority = Field(default=Priority.p3, examples=["p2"])
    subject: str = Field(min_length=1, max_length=200, examples=["快递三天没有更新"])
    description: str | None = Field(default=None, max_length=20_000)
    external_ref: str | None = Field(
        default=None, max_length=100, description="A platform dispute number.", examples=["DS1"]
    )
    order_id: uuid.UUID | None = None
    order_item_lines: list[int] = Field(
        default_factory=list, max_length=200, description="Line numbers of the linked order."
    )
    assignee_id: uuid.UUID | None = None
    tags: list[str] = Field(default_factory=list, max_length=50, examples=[["差评"]])


class TicketUpdate(Schema):
    """Fields present replace the stored ones."""

    kind: TicketKind | None = None
    category: str | None = Field(default=None, max_length=50)
    channel: TicketChannel | None = None
    priority: Priority | None = None
    subject: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=20_000)
    external_ref: str | None = Field(default=None, max_length=100)
    order_id: uuid.UUID | None = None
    order_item_lines: list[int] | None = Field(default=None, max_length=200)
    assignee_id: uuid.UUID | None = None
    tags: list[str] | None = Field(default=None, max_length=50)


class Compensation(Schema):
    points: int | None = Field(default=None, ge=1, le=10_000_000, examples=[200])
    amount_fen: int | None = Field(default=None, ge=1, examples=[500])
    note: str | None = Field(default=None, max_length=1000, examples=["物流延误补偿"])


class TransitionIn(Schema):
    to: TicketStatus
    resolution_code: str | None = Field(default=None, min_length=1, max_length=50)
    resolution_summary: str | None = Field(default=None, min_length=1, max_length=5000)
    compensation: Compensation | None = None
    note: str | None = Field(default=None, max_length=5000, description="Kept on the timeline.")

    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "to": "resolved",
                    "resolution_code": "refunded",
                    "resolution_summary": "退款 20 元并致歉",
                    "compensation": {"points": 200},
                }
            ]
        }
    }


class CommentIn(Schema):
    body: str = Field(min_length=1, max_length=20_000, examples=["您好，已为您催促快递"])
    visibility: Visibility = Field(
        default=Visibility.public,
        description="`public` is a reply to the customer (it meets the first-response clock); "
        "`internal` is a note for staff.",
    )


class TicketSla(Schema):
    business_hours: bool
    first_response_due_at: datetime
    resolution_due_at: datetime
    first_responded_at: datetime | None
    first_response_breached: bool
    resolution_breached: bool
    paused: bool
    paused_seconds: int
    next_due_at: datetime | None = Field(description="The running clock's next deadline.")


class TicketOut(Schema):
    id: uuid.UUID
    customer_id: uuid.UUID
    order_id: uuid.UUID | None
    order_item_lines: list[int]
    kind: TicketKind
    category: str
    channel: TicketChannel
    priority: Priority
    status: TicketStatus
    allowed_transitions: list[TicketStatus]
    subject: str
    description: str | None
    external_ref: str | None
    assignee_id: uuid.UUID | None
    tags: list[str]
    sla: TicketSla
    resolution_code: str | None
    resolution_summary: str | None
    compensation: Compensation | None
    compensation_entry_id: uuid.UUID | None
    resolved_at: datetime | None
    closed_at: datetime | None
    reopen_count: int
    created_at: datetime
    updated_at: datetime


class TicketEventOut(Schema):
    id: uuid.UUID
    ticket_id: uuid.UUID
    kind: str = Field(
        examples=["status_changed"],
        description="created, status_changed, assigned, priority_changed, public_reply, "
        "internal_note, linked_order, updated, compensation_paid, survey_answered, "
        "customer_merged",
    )
    actor_name: str
    actor_staff_id: uuid.UUID | None
    actor_key_id: uuid.UUID | None
    data: dict[str, Any]
    at: datetime


# --- satisfaction --------------------------------------------------------------------------


class SurveyIn(Schema):
    score: int = Field(ge=1, le=5, examples=[5])
    comment: str | None = Field(default=None, max_length=5000)


class SurveyOut(SurveyIn):
    ticket_id: uuid.UUID
    recorded_at: datetime


class NpsIn(Schema):
    customer_id: uuid.UUID
    score: int = Field(ge=0, le=10, examples=[9])
    comment: str | None = Field(default=None, max_length=5000)
    channel: TicketChannel | None = None
    ticket_id: uuid.UUID | None = Field(
        default=None, description="The ticket the answer is about, if any (for reports)."
    )


class NpsOut(Schema):
    id: uuid.UUID
    customer_id: uuid.UUID
    ticket_id: uuid.UUID | None
    score: int
    comment: str | None
    channel: TicketChannel | None
    recorded_at: datetime


# --- reports -------------------------------------------------------------------------------


class ReportDimension(StrEnum):
    kind = "kind"
    category = "category"
    channel = "channel"
    priority = "priority"
    staff = "staff"
    day = "day"
    week = "week"
    month = "month"


class NpsDimension(StrEnum):
    none = "none"
    category = "category"
    staff = "staff"
    channel = "channel"


class SummaryRow(Schema):
    key: str | None = Field(description="The group: a kind, category code, staff id, period...")
    tickets: int
    first_response_median_minutes: float | None
    resolution_median_minutes: float | None
    sla_breach_rate: float | None = Field(description="Share of tickets that breached a clock.")
    reopen_rate: float | None = Field(description="Share of resolved-once tickets reopened.")
    csat_average: float | None
    csat_responses: int


class SummaryReport(Schema):
    group_by: ReportDimension
    created_after: datetime | None
    created_before: datetime | None
    rows: list[SummaryRow]


class NpsRow(Schema):
    key: str | None
    responses: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None = Field(description="% promoters - % detractors, -100..100.")


class NpsReport(Schema):
    group_by: NpsDimension
    rows: list[NpsRow]


class ProductRow(Schema):
    merchant_code: str | None
    title: str | None
    tickets: int


class ProductReport(Schema):
    kind: TicketKind | None
    rows: list[ProductRow]
