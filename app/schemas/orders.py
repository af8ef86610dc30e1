"""Order requests and responses: JSON order batches in, orders with their items out."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from app.schemas.common import Schema
from app.schemas.shops import Platform


class OrderStatus(StrEnum):
    pending_payment = "pending_payment"
    paid = "paid"
    shipped = "shipped"
    completed = "completed"
    closed = "closed"
    refunding = "refunding"
    refunded = "refunded"
    partially_refunded = "partially_refunded"


Fen = Field(default=None, ge=0, description="Integer fen (1 yuan = 100 fen).")


class OrderItemIn(Schema):
    title: str | None = Field(default=None, max_length=500, examples=["纯棉短袖T恤"])
    sku: str | None = Field(default=None, max_length=500, examples=["颜色分类：白色;尺码：L"])
    merchant_code: str | None = Field(default=None, max_length=100, examples=["TS-001-W-L"])
    product_id: str | None = Field(default=None, max_length=64)
    sub_order_no: str | None = Field(default=None, max_length=64)
    quantity: int = Field(default=1, ge=1, le=1_000_000)
    unit_price_fen: int | None = Fen
    paid_fen: int | None = Fen
    refund_status: str | None = Field(default=None, max_length=100)
    refund_fen: int | None = Fen


class OrderIn(Schema):
    order_no: str = Field(
        min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_\-]+$", examples=["POS-20240630-0001"]
    )
    status: OrderStatus
    raw_status: str | None = Field(default=None, max_length=100)
    buyer_key: str | None = Field(
        default=None,
        max_length=200,
        description="How this channel knows the buyer (member card, nickname); none: anonymous.",
        examples=["MEMBER-000123"],
    )
    receiver_name: str | None = Field(default=None, max_length=100)
    receiver_phone: str | None = Field(default=None, max_length=30, examples=["13812345678"])
    receiver_address: str | None = Field(default=None, max_length=300)
    province: str | None = Field(default=None, max_length=50)
    city: str | None = Field(default=None, max_length=50)
    district: str | None = Field(default=None, max_length=50)
    postal_code: str | None = Field(default=None, max_length=10)
    goods_total_fen: int | None = Fen
    shipping_fen: int | None = Fen
    discount_fen: int | None = Fen
    paid_fen: int = Field(default=0, ge=0, description="What the buyer paid, in fen.")
    received_fen: int | None = Fen
    refund_fen: int = Field(default=0, ge=0)
    ordered_at: datetime
    paid_at: datetime | None = None
    shipped_at: datetime | None = None
    completed_at: datetime | None = None
    buyer_message: str | None = Field(default=None, max_length=2000)
    seller_memo: str | None = Field(default=None, max_length=2000)
    items: list[OrderItemIn] = Field(default_factory=list, max_length=500)


class OrderBatch(Schema):
    shop_id: uuid.UUID
    orders: list[OrderIn] = Field(min_length=1, max_length=1000)


class LoadCountsOut(Schema):
    rows_read: int
    orders_created: int
    orders_updated: int
    orders_unchanged: int
    orders_stale: int = Field(description="Older than what is stored (forward-only rule): skipped.")
    items: int
    items_written: int
    customers_created: int
    customers_matched: int
    rejected: int
    anonymous: int
    duplicates: int


class OrderBatchOut(Schema):
    shop_id: uuid.UUID
    counts: LoadCountsOut


class OrderItemOut(Schema):
    line_no: int
    sub_order_no: str | None
    title: str | None
    sku: str | None
    merchant_code: str | None
    product_id: str | None
    quantity: int
    unit_price_fen: int | None
    paid_fen: int | None
    refund_status: str | None
    refund_fen: int | None


class OrderOut(Schema):
    id: uuid.UUID
    shop_id: uuid.UUID
    platform: Platform
    order_no: str
    status: OrderStatus
    raw_status: str | None
    after_sale_status: str | None
    buyer_key: str | None
    customer_id: uuid.UUID | None
    receiver_name: str | None
    receiver_phone: str | None
    receiver_address: str | None
    province: str | None
    city: str | None
    district: str | None
    postal_code: str | None
    goods_total_fen: int | None
    shipping_fen: int | None
    discount_fen: int | None
    paid_fen: int
    received_fen: int | None
    refund_fen: int
    ordered_at: datetime | None
    paid_at: datetime | None
    shipped_at: datetime | None
    completed_at: datetime | None
    buyer_message: str | None
    seller_memo: str | None
    item_count: int | None
    import_id: uuid.UUID | None
    personal_data: str = Field(description="`clear` or `masked`, by the caller's role.")
    created_at: datetime
    updated_at: datetime
    items: list[OrderItemOut] | None = Field(
        default=None, description="The item lines (in single-order responses)."
    )
