"""Customer profiles with their encrypted contacts and addresses, and their timeline."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantMixin, TimestampMixin, utcnow


def _customer_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"
    )


class Customer(TenantMixin, TimestampMixin, Base):
    __tablename__ = "customers"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        Index(
            "ix_customers_tenant_id_display_name",
            "tenant_id",
            "display_name",
            postgresql_ops={"display_name": "text_pattern_ops"},
        ),
        Index("ix_customers_tenant_id_province", "tenant_id", "province"),
        Index("ix_customers_tenant_id_created_at", "tenant_id", "created_at"),
        Index("ix_customers_tags", "tags", postgresql_using="gin"),
    )

    display_name: Mapped[str | None] = mapped_column(String(200))
    gender: Mapped[str | None] = mapped_column(String(10))
    birthday: Mapped[date | None] = mapped_column(Date)
    province: Mapped[str | None] = mapped_column(String(50))
    city: Mapped[str | None] = mapped_column(String(50))
    district: Mapped[str | None] = mapped_column(String(50))
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    version: Mapped[int] = mapped_column(Integer, default=1)
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(
        comment="Set when merged into another customer while history elsewhere still names this one"
    )


class CustomerContact(TenantMixin, Base):
    """A phone or email: ciphertext, keyed hash for exact lookup, and its masked form."""

    __tablename__ = "customer_contacts"
    __table_args__ = (
        _customer_fk(),
        Index("ix_customer_contacts_lookup", "tenant_id", "kind", "value_hash"),
        Index("ix_customer_contacts_customer", "tenant_id", "customer_id", "position"),
    )

    customer_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(10))
    position: Mapped[int] = mapped_column(Integer)
    value_enc: Mapped[bytes] = mapped_column(LargeBinary)
    value_hash: Mapped[bytes] = mapped_column(LargeBinary)
    masked: Mapped[str] = mapped_column(String(200))


class CustomerAddress(TenantMixin, Base):
    __tablename__ = "customer_addresses"
    __table_args__ = (
        _customer_fk(),
        Index("ix_customer_addresses_customer", "tenant_id", "customer_id", "position"),
    )

    customer_id: Mapped[uuid.UUID]
    position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str | None] = mapped_column(String(50))
    receiver_name_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    receiver_name_masked: Mapped[str | None] = mapped_column(String(100))
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_masked: Mapped[str | None] = mapped_column(String(50))
    province: Mapped[str | None] = mapped_column(String(50))
    city: Mapped[str | None] = mapped_column(String(50))
    district: Mapped[str | None] = mapped_column(String(50))
    street_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    street_masked: Mapped[str | None] = mapped_column(String(300))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class Interaction(TenantMixin, Base):
    """One event on a customer's timeline: a note, call, chat, visit, sms or email."""

    __tablename__ = "interactions"
    __table_args__ = (
        _customer_fk(),
        Index("ix_interactions_timeline", "tenant_id", "customer_id", "occurred_at", "id"),
    )

    customer_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str | None] = mapped_column(String(50))
    content: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(200))
    api_key_id: Mapped[uuid.UUID | None]
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
