"""Orders and their item lines, from marketplace exports and JSON batches."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKeyConstraint, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantMixin, TimestampMixin

PAID_AT_INCLUDE = ["status", "customer_id", "platform", "shop_id", "paid_fen", "refund_fen"]


class Order(TenantMixin, TimestampMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "shop_id"], ["shops.tenant_id", "shops.id"]),
        Index("uq_orders_number", "tenant_id", "shop_id", "order_no", unique=True),
        Index("ix_orders_customer", "tenant_id", "customer_id", "paid_at"),
        # Covering: the sales overview reads a window of orders from the index alone.
        Index("ix_orders_paid_at", "tenant_id", "paid_at", postgresql_include=PAID_AT_INCLUDE),
    )

    shop_id: Mapped[uuid.UUID]
    platform: Mapped[str] = mapped_column(String(20))
    order_no: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    raw_status: Mapped[str | None] = mapped_column(String(100))
    after_sale_status: Mapped[str | None] = mapped_column(String(100))
    buyer_key: Mapped[str | None] = mapped_column(String(200))
    customer_id: Mapped[uuid.UUID | None]
    receiver_name_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    receiver_name_masked: Mapped[str | None] = mapped_column(String(100))
    receiver_phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    receiver_phone_masked: Mapped[str | None] = mapped_column(String(50))
    receiver_address_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    receiver_address_masked: Mapped[str | None] = mapped_column(String(300))
    receiver_hash: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        comment="Keyed hash of name, phone and address: detects changes re-imports bring.",
    )
    province: Mapped[str | None] = mapped_column(String(50))
    city: Mapped[str | None] = mapped_column(String(50))
    district: Mapped[str | None] = mapped_column(String(50))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    goods_total_fen: Mapped[int | None] = mapped_column(BigInteger)
    shipping_fen: Mapped[int | None] = mapped_column(BigInteger)
    discount_fen: Mapped[int | None] = mapped_column(BigInteger)
    paid_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    received_fen: Mapped[int | None] = mapped_column(BigInteger)
    refund_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    ordered_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    shipped_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    buyer_message: Mapped[str | None] = mapped_column(Text)
    seller_memo: Mapped[str | None] = mapped_column(Text)
    item_count: Mapped[int | None] = mapped_column(Integer)
    source_time: Mapped[datetime | None] = mapped_column(
        comment="When the snapshot this row came from was taken (export time, batch time)."
    )
    import_id: Mapped[uuid.UUID | None] = mapped_column(comment="The import that last changed it.")


class OrderItem(Base):
    __tablename__ = "order_items"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], ondelete="CASCADE"
        ),
        Index("ix_order_items_merchant_code", "tenant_id", "merchant_code"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sub_order_no: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(Text)
    sku: Mapped[str | None] = mapped_column(Text)
    merchant_code: Mapped[str | None] = mapped_column(String(100))
    product_id: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price_fen: Mapped[int | None] = mapped_column(BigInteger)
    paid_fen: Mapped[int | None] = mapped_column(BigInteger)
    refund_status: Mapped[str | None] = mapped_column(String(100))
    refund_fen: Mapped[int | None] = mapped_column(BigInteger)
