"""Channel identities: how a marketplace or store knows a buyer, pointing at one customer."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, Index, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantMixin, utcnow


class CustomerIdentity(TenantMixin, Base):
    __tablename__ = "customer_identities"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint(
            "tenant_id", "platform", "shop_id", "buyer_key", postgresql_nulls_not_distinct=True
        ),
        Index("ix_customer_identities_customer", "tenant_id", "customer_id"),
    )

    customer_id: Mapped[uuid.UUID]
    platform: Mapped[str] = mapped_column(String(20))
    shop_id: Mapped[uuid.UUID | None]
    buyer_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
