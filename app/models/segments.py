"""Saved segments and their size over time, customer scores (RFM, lifecycle stage) and their
history, category rules, tenant settings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantMixin, TimestampMixin, utcnow


class Segment(TenantMixin, TimestampMixin, Base):
    """A named filter over the tenant's customers."""

    __tablename__ = "segments"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        UniqueConstraint("tenant_id", "name"),
    )

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    filter: Mapped[dict[str, Any]] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(Integer, default=1)
    last_count: Mapped[int | None] = mapped_column(BigInteger)
    last_evaluated_at: Mapped[datetime | None]


class SegmentEvaluation(Base):
    """One evaluation of a segment: how many customers matched, and when (its size over time)."""

    __tablename__ = "segment_evaluations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "segment_id"], ["segments.tenant_id", "segments.id"], ondelete="CASCADE"
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    segment_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    evaluated_at: Mapped[datetime] = mapped_column(primary_key=True)
    member_count: Mapped[int] = mapped_column(BigInteger)


class CustomerScores(Base):
    """A customer's RFM scores and lifecycle stage, written by the tenant-wide recompute.

    Kept apart from the wide `customer_facts` row (product and category arrays, four indexes) so
    that a recompute where every customer changes writes small tuples with one index, and a
    changed row usually stays on its page (HOT). Not indexed beyond the key: each column has a
    handful of values, where a scan wins anyway. A customer without a row is a prospect.
    """

    __tablename__ = "customer_scores"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        {"postgresql_with": {"fillfactor": 80}},
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    rfm_r: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_f: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_m: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_group: Mapped[str | None] = mapped_column(String(30))
    rfm_as_of: Mapped[datetime | None]
    lifecycle_stage: Mapped[str] = mapped_column(
        String(20), default="prospect", server_default="prospect"
    )
    lifecycle_since: Mapped[datetime | None]


class LifecycleEvent(Base):
    """A customer's lifecycle stage changed: the history behind flows between two dates."""

    __tablename__ = "lifecycle_events"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        Index("ix_lifecycle_events_changed_at", "tenant_id", "changed_at"),
        # Each customer's events newest first, with the stage: the flows report reads the
        # latest event of every customer from the index alone, in order, without sorting.
        Index(
            "ix_lifecycle_events_customer",
            "tenant_id",
            "customer_id",
            "changed_at",
            "id",
            postgresql_include=["to_stage"],
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    customer_id: Mapped[uuid.UUID]
    from_stage: Mapped[str | None] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    changed_at: Mapped[datetime]


class ProductCategoryRule(TenantMixin, Base):
    """Maps products to one of the tenant's categories by merchant-code prefix or title keyword."""

    __tablename__ = "product_category_rules"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        UniqueConstraint("tenant_id", "match", "pattern", "category"),
    )

    category: Mapped[str] = mapped_column(String(100))
    match: Mapped[str] = mapped_column(String(20), comment="code_prefix or title_keyword")
    pattern: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)


class SegmentSettings(Base):
    """A tenant's lifecycle thresholds; a tenant without a row uses the defaults."""

    __tablename__ = "segment_settings"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    new_days: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    loyal_orders: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    at_risk_days: Mapped[int] = mapped_column(Integer, default=90, server_default="90")
    churned_days: Mapped[int] = mapped_column(Integer, default=180, server_default="180")
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    recomputed_at: Mapped[datetime | None] = mapped_column(
        comment="`as_of` of the last RFM and lifecycle recompute."
    )
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
