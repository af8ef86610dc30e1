"""Orders: JSON order batches through the import upsert path, and reading orders by role."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import Vault
from app.errors import FieldError, NotFound, ValidationFailed
from app.models import Order, OrderItem, Shop
from app.schemas.orders import (
    LoadCountsOut,
    OrderBatch,
    OrderBatchOut,
    OrderIn,
    OrderItemOut,
    OrderOut,
)
from app.services import idempotency
from app.services.auth import Principal
from app.services.customers import ensure_customer
from app.services.imports.export import ITEM_SCHEMA, ORDER_SCHEMA
from app.services.imports.load import (
    EMPTY_REJECTIONS,
    LoadTarget,
    OrdersChangedHook,
    Snapshot,
    load_snapshots,
)
from app.services.paging import cursor_id, encode_cursor

BATCH_SCOPE = "orders.batch"


def loyalty_hook() -> OrdersChangedHook:
    """The loyalty domain's `orders_changed` (imported late: loyalty imports identities)."""
    from app.services.loyalty.hooks import orders_changed

    return orders_changed


async def shop_of(session: AsyncSession, tenant_id: uuid.UUID, shop_id: uuid.UUID) -> Shop:
    shop = await session.get(Shop, (tenant_id, shop_id))
    if shop is None:
        raise ValidationFailed(
            "unknown shop", [FieldError(["body", "shop_id"], "no such shop", input=str(shop_id))]
        )
    return shop


# --- JSON batches ------------------------------------------------------------------------------


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _order_row(order: OrderIn, line: int) -> dict[str, Any]:
    return {
        "order_no": order.order_no,
        "status": order.status.value,
        "raw_status": order.raw_status,
        "after_sale_status": None,
        "buyer_key": order.buyer_key,
        "buyer_key_masked": bool(order.buyer_key and "*" in order.buyer_key),
        "receiver_name": order.receiver_name,
        "receiver_phone": order.receiver_phone,
        "receiver_address": order.receiver_address,
        "province": order.province,
        "city": order.city,
        "district": order.district,
        "postal_code": order.postal_code,
        "goods_total_fen": order.goods_total_fen,
        "shipping_fen": order.shipping_fen,
        "discount_fen": order.discount_fen,
        "paid_fen": order.paid_fen,
        "received_fen": order.received_fen,
        "refund_fen": order.refund_fen,
        "ordered_at": _utc(order.ordered_at),
        "paid_at": _utc(order.paid_at),
        "shipped_at": _utc(order.shipped_at),
        "completed_at": _utc(order.completed_at),
        "buyer_message": order.buyer_message,
        "seller_memo": order.seller_memo,
        "item_count": len(order.items) or None,
        "file": "batch",
        "line": line,
    }


def batch_frames(batch: OrderBatch) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The same canonical frames the file parsers produce, from a validated JSON batch."""
    seen: dict[str, int] = {}
    for index, order in enumerate(batch.orders):
        if order.order_no in seen:
            raise ValidationFailed(
                "an order number is listed twice in this batch",
                [
                    FieldError(
                        ["body", "orders", index, "order_no"],
                        f"same as orders[{seen[order.order_no]}]",
                        input=order.order_no,
                    )
                ],
            )
        seen[order.order_no] = index
    orders = pl.DataFrame(
        [_order_row(o, i) for i, o in enumerate(batch.orders)], schema=ORDER_SCHEMA, orient="row"
    )
    items = pl.DataFrame(
        [
            {
                "order_no": o.order_no,
                "line_no": n,
                "file": "batch",
                "line": i,
                **item.model_dump(),
            }
            for i, o in enumerate(batch.orders)
            for n, item in enumerate(o.items, start=1)
        ],
        schema=ITEM_SCHEMA,
        orient="row",
    )
    return orders, items


async def load_batch(
    session: AsyncSession,
    vault: Vault,
    actor: Principal,
    batch: OrderBatch,
    idempotency_key: str | None,
    now: datetime,
) -> tuple[int, dict[str, Any]]:
    """Upsert a batch; with an Idempotency-Key a retry gets the first response back."""
    actor.require("orders:import")
    if idempotency_key is not None:
        replay = await idempotency.claim(
            session, actor.tenant_id, BATCH_SCOPE, idempotency_key, batch.model_dump(mode="json")
        )
        if replay is not None:
            return replay.status_code, replay.body
    shop = await shop_of(session, actor.tenant_id, batch.shop_id)
    orders, items = batch_frames(batch)
    counts = await load_snapshots(
        session,
        vault,
        LoadTarget(actor.tenant_id, shop.id, shop.platform, None),
        [Snapshot(now, orders, items, EMPTY_REJECTIONS, rows_read=orders.height)],
        now,
        orders_changed=loyalty_hook(),
    )
    body = OrderBatchOut(shop_id=shop.id, counts=LoadCountsOut(**counts.as_dict())).model_dump(
        mode="json"
    )
    if idempotency_key is not None:
        await idempotency.remember(
            session, actor.tenant_id, BATCH_SCOPE, idempotency_key, 200, body
        )
    return 200, body


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderFilters:
    shop_id: uuid.UUID | None = None
    platform: str | None = None
    status: str | None = None
    paid_from: datetime | None = None
    paid_to: datetime | None = None
    customer_id: uuid.UUID | None = None


def _reveal(vault: Vault, order: Order, clear: bool, name: str) -> str | None:
    masked: str | None = getattr(order, f"{name}_masked")
    sealed: bytes | None = getattr(order, f"{name}_enc")
    if not clear or sealed is None:
        return masked
    return vault.decrypt(order.tenant_id, sealed)


def _order_out(
    vault: Vault, order: Order, clear: bool, items: list[OrderItem] | None = None
) -> OrderOut:
    values = {
        c: getattr(order, c)
        for c in OrderOut.model_fields
        if c
        not in {"receiver_name", "receiver_phone", "receiver_address", "personal_data", "items"}
    }
    return OrderOut(
        **values,
        receiver_name=_reveal(vault, order, clear, "receiver_name"),
        receiver_phone=_reveal(vault, order, clear, "receiver_phone"),
        receiver_address=_reveal(vault, order, clear, "receiver_address"),
        personal_data="clear" if clear else "masked",
        items=[OrderItemOut.model_validate(i) for i in items] if items is not None else None,
    )


async def list_orders(
    session: AsyncSession,
    vault: Vault,
    actor: Principal,
    filters: OrderFilters,
    limit: int,
    cursor: str | None,
) -> tuple[list[OrderOut], str | None]:
    """Newest first by the time-ordered id, so later inserts never shift a page."""
    actor.require("orders:read")
    query = select(Order).where(Order.tenant_id == actor.tenant_id)
    if filters.customer_id is not None:
        await ensure_customer(session, actor.tenant_id, filters.customer_id)
        query = query.where(Order.customer_id == filters.customer_id)
    if filters.shop_id is not None:
        query = query.where(Order.shop_id == filters.shop_id)
    if filters.platform is not None:
        query = query.where(Order.platform == filters.platform)
    if filters.status is not None:
        query = query.where(Order.status == filters.status)
    if filters.paid_from is not None:
        query = query.where(Order.paid_at >= filters.paid_from)
    if filters.paid_to is not None:
        query = query.where(Order.paid_at < filters.paid_to)
    if cursor:
        query = query.where(Order.id < cursor_id(cursor))
    rows = list((await session.scalars(query.order_by(Order.id.desc()).limit(limit + 1))).all())
    clear = actor.can("pii:unmasked")
    page = [_order_out(vault, o, clear) for o in rows[:limit]]
    more = len(rows) > limit
    return page, encode_cursor({"id": str(page[-1].id)}) if more else None


async def get_order(
    session: AsyncSession, vault: Vault, actor: Principal, order_id: uuid.UUID
) -> OrderOut:
    actor.require("orders:read")
    order = await session.get(Order, (actor.tenant_id, order_id))
    if order is None:
        raise NotFound("no such order")
    items = list(
        (
            await session.scalars(
                select(OrderItem)
                .where(OrderItem.tenant_id == actor.tenant_id, OrderItem.order_id == order_id)
                .order_by(OrderItem.line_no)
            )
        ).all()
    )
    return _order_out(vault, order, actor.can("pii:unmasked"), items)
