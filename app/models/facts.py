"""Per-customer facts derived from orders, kept current by imports and rebuildable from scratch.

Besides the order aggregates a row carries the customer's RFM scores and lifecycle stage, which
the segment recompute job writes (they depend on the whole tenant, not on one customer's orders).
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
    SmallInteger,
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
        Index("ix_customer_facts_products", "merchant_codes", postgresql_using="gin"),
        Index("ix_customer_facts_categories", "categories", postgresql_using="gin"),
        # RFM and lifecycle columns are deliberately not indexed and pages keep free space, so
        # the tenant-wide recomputes are HOT updates that touch no index (few values each: an
        # index would rarely beat a scan anyway).
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
    rfm_r: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_f: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_m: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_group: Mapped[str | None] = mapped_column(String(30))
    rfm_as_of: Mapped[datetime | None]
    lifecycle_stage: Mapped[str] = mapped_column(
        String(20), default="prospect", server_default="prospect"
    )
    lifecycle_since: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
