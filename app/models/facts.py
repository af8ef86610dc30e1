"""Per-customer facts derived from orders, kept current by imports and rebuildable from scratch."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKeyConstraint, Integer, func
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
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    order_count: Mapped[int] = mapped_column(Integer, default=0)
    total_spent_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    refund_count: Mapped[int] = mapped_column(Integer, default=0)
    refund_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    first_order_at: Mapped[datetime | None]
    last_order_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
