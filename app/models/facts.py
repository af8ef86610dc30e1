"""Per-customer facts derived from orders, kept current by imports and rebuildable from scratch.

The customer's RFM scores and lifecycle stage live in `customer_scores` (app/models/segments.py):
the tenant-wide recompute rewrites them, and a narrow row is far cheaper to rewrite than this one.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class CustomerFacts(Base):
    __tablename__ = "customer_facts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        Index("ix_customer_facts_spent", "tenant_id", "total_spent_fen"),
        Index("ix_customer_facts_last_order", "tenant_id", "last_order_at"),
        # New buyers of a period ("one-time buyers of the last 30 days"), from the index alone.
        Index(
            "ix_customer_facts_first_order",
            "tenant_id",
            "first_order_at",
            postgresql_include=["order_count", "customer_id"],
        ),
        Index("ix_customer_facts_products", "merchant_codes", postgresql_using="gin"),
        Index("ix_customer_facts_categories", "categories", postgresql_using="gin"),
        # Pages keep free space so a refresh that changes no indexed column stays a HOT update.
        {"postgresql_with": {"fillfactor": 85}},
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    order_count: Mapped[int] = mapped_column(Integer, default=0)
    total_spent_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    avg_order_value_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    refund_count: Mapped[int] = mapped_column(Integer, default=0)
    refund_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    refund_rate: Mapped[float] = mapped_column(
        Double, default=0.0, server_default="0", comment="Paid orders with a refund / paid orders."
    )
    first_order_at: Mapped[datetime | None]
    last_order_at: Mapped[datetime | None]
    previous_order_at: Mapped[datetime | None] = mapped_column(
        comment="The paid order before the last one: a gap longer than the churn window "
        "before the last order means the customer was won back."
    )
    platforms: Mapped[list[str]] = mapped_column(
        ARRAY(String(20)), default=list, server_default="{}"
    )
    shop_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), default=list, server_default="{}"
    )
    merchant_codes: Mapped[list[str]] = mapped_column(
        ARRAY(Text), default=list, server_default="{}"
    )
    product_titles: Mapped[list[str]] = mapped_column(
        ARRAY(Text), default=list, server_default="{}"
    )
    categories: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
