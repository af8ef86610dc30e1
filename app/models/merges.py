"""Merge suggestions: customers who look alike across platforms, with evidence, for a person."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKeyConstraint, Index, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantMixin, utcnow


class MergeSuggestion(TenantMixin, Base):
    __tablename__ = "merge_suggestions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "other_customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("tenant_id", "customer_id", "other_customer_id"),
        Index("ix_merge_suggestions_open", "tenant_id", "status", "id"),
        Index("ix_merge_suggestions_other", "tenant_id", "other_customer_id"),
    )

    customer_id: Mapped[uuid.UUID]
    other_customer_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(20), default="open")  # open, dismissed, merged
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
    resolved_at: Mapped[datetime | None]
