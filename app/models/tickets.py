"""Service tickets: staff, categories, SLA policies, settings, tickets, their timeline, surveys."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantMixin

RUNNING_UNFLAGGED = (
    "sla_due_at IS NOT NULL AND NOT first_response_breached AND NOT resolution_breached"
)
RUNNING_INCLUDE = ["created_at", "kind", "category", "channel", "priority", "assignee_id"]


def _tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE")


def _ticket_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "ticket_id"], ["tickets.tenant_id", "tickets.id"], ondelete="CASCADE"
    )


class TicketStaff(TenantMixin, Base):
    """A service agent tickets are assigned to; an API key may act as one."""

    __tablename__ = "ticket_staff"
    __table_args__ = (
        _tenant_fk(),
        UniqueConstraint("tenant_id", "api_key_id"),
        ForeignKeyConstraint(["tenant_id", "api_key_id"], ["api_keys.tenant_id", "api_keys.id"]),
    )

    name: Mapped[str] = mapped_column(String(100))
    team: Mapped[str | None] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    api_key_id: Mapped[uuid.UUID | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TicketCategory(Base):
    """The tenant's catalogue of ticket categories, keyed by a stable code."""

    __tablename__ = "ticket_categories"
    __table_args__ = (_tenant_fk(),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(50), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class TicketSlaPolicy(Base):
    """First response and resolution targets for one priority; absent rows use the defaults."""

    __tablename__ = "ticket_sla_policies"
    __table_args__ = (_tenant_fk(),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    priority: Mapped[str] = mapped_column(String(2), primary_key=True)
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    resolution_minutes: Mapped[int] = mapped_column(Integer)
    business_hours: Mapped[bool] = mapped_column(Boolean)


class TicketSettings(Base):
    """Per-tenant ticket settings: business calendar, reopen window, at-risk horizon."""

    __tablename__ = "ticket_settings"
    __table_args__ = (_tenant_fk(),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    working_hours: Mapped[dict[str, Any]] = mapped_column(JSONB)
    holidays: Mapped[list[date]] = mapped_column(ARRAY(Date), server_default="{}")
    workdays: Mapped[list[date]] = mapped_column(ARRAY(Date), server_default="{}")
    reopen_window_days: Mapped[int] = mapped_column(Integer)
    at_risk_minutes: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)


class Ticket(TenantMixin, Base):
    """A complaint or feedback case with its state, SLA clocks and resolution.

    `sla_due_at` is the next deadline of a running clock (NULL when paused or finished), so the
    breached / at-risk queue is a range scan on one index.
    """

    __tablename__ = "tickets"
    __table_args__ = (
        _tenant_fk(),
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"]),
        ForeignKeyConstraint(
            ["tenant_id", "category"], ["ticket_categories.tenant_id", "ticket_categories.code"]
        ),
        ForeignKeyConstraint(
            ["tenant_id", "assignee_id"], ["ticket_staff.tenant_id", "ticket_staff.id"]
        ),
        Index("ix_tickets_status", "tenant_id", "status", "id"),
        Index("ix_tickets_customer", "tenant_id", "customer_id", "id"),
        Index("ix_tickets_assignee", "tenant_id", "assignee_id", "id"),
        Index("ix_tickets_order", "tenant_id", "order_id"),
        Index("ix_tickets_created_at", "tenant_id", "created_at"),
        Index(
            "ix_tickets_sla_queue",
            "tenant_id",
            "sla_due_at",
            "id",
            postgresql_where=text("sla_due_at IS NOT NULL"),
        ),
        # The summary's live breaches on rolled-up days (migration 0007): index-only.
        Index(
            "ix_tickets_running_unflagged",
            "tenant_id",
            "sla_due_at",
            postgresql_include=RUNNING_INCLUDE,
            postgresql_where=text(RUNNING_UNFLAGGED),
        ),
    )

    customer_id: Mapped[uuid.UUID]
    order_id: Mapped[uuid.UUID | None]
    kind: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(50))
    channel: Mapped[str] = mapped_column(String(20))
    priority: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    external_ref: Mapped[str | None] = mapped_column(String(100))
    assignee_id: Mapped[uuid.UUID | None]
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")

    sla_business_hours: Mapped[bool] = mapped_column(Boolean)
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    resolution_minutes: Mapped[int] = mapped_column(Integer)
    clock_started_at: Mapped[datetime] = mapped_column(
        comment="Start of the running resolution clock: creation, or the last reopen."
    )
    paused_seconds: Mapped[int] = mapped_column(
        BigInteger, default=0, comment="Clock time spent pending since clock_started_at."
    )
    paused_at: Mapped[datetime | None]
    first_response_due_at: Mapped[datetime]
    resolution_due_at: Mapped[datetime]
    sla_due_at: Mapped[datetime | None]
    first_responded_at: Mapped[datetime | None]
    first_response_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    resolution_breached: Mapped[bool] = mapped_column(Boolean, default=False)

    resolution_code: Mapped[str | None] = mapped_column(String(50))
    resolution_summary: Mapped[str | None] = mapped_column(Text)
    compensation_points: Mapped[int | None] = mapped_column(Integer)
    compensation_fen: Mapped[int | None] = mapped_column(BigInteger)
    compensation_note: Mapped[str | None] = mapped_column(Text)
    compensation_entry_id: Mapped[uuid.UUID | None] = mapped_column(
        comment="The loyalty ledger entry that paid compensation_points."
    )
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    csat_score: Mapped[int | None] = mapped_column(
        SmallInteger, comment="Copy of the CSAT answer, so reports need no join."
    )

    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TicketItem(Base):
    """An order item a ticket is about (the linked order's lines only)."""

    __tablename__ = "ticket_items"
    __table_args__ = (
        _ticket_fk(),
        ForeignKeyConstraint(
            ["tenant_id", "order_id", "line_no"],
            ["order_items.tenant_id", "order_items.order_id", "order_items.line_no"],
            ondelete="CASCADE",
        ),
        Index("ix_ticket_items_order_item", "tenant_id", "order_id", "line_no"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)


class TicketEvent(TenantMixin, Base):
    """One append-only entry on a ticket's timeline, with who did it and when."""

    __tablename__ = "ticket_events"
    __table_args__ = (
        _ticket_fk(),
        Index("ix_ticket_events_timeline", "tenant_id", "ticket_id", "id"),
    )

    ticket_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(30))
    actor_key_id: Mapped[uuid.UUID | None]
    actor_staff_id: Mapped[uuid.UUID | None]
    actor_name: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    at: Mapped[datetime]


class TicketSurvey(Base):
    """The customer's satisfaction (CSAT 1-5) with one resolved ticket."""

    __tablename__ = "ticket_surveys"
    __table_args__ = (_ticket_fk(),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    score: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime]


class NpsResponse(TenantMixin, Base):
    """A customer's 0-10 answer to "would you recommend us", optionally about a ticket."""

    __tablename__ = "nps_responses"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "ticket_id"], ["tickets.tenant_id", "tickets.id"], ondelete="CASCADE"
        ),
        Index("ix_nps_responses_customer", "tenant_id", "customer_id", "id"),
        Index("ix_nps_responses_ticket", "tenant_id", "ticket_id"),
    )

    customer_id: Mapped[uuid.UUID]
    ticket_id: Mapped[uuid.UUID | None]
    score: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(20))
    recorded_at: Mapped[datetime]
