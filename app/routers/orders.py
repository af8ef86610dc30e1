"""Order endpoints: JSON order batches, order lists and single orders with their items."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Query
from fastapi.responses import JSONResponse

from app.deps import ClockDep, CurrentKey, ReadSession, RuntimeDep, Session, VaultDep
from app.lean_route import LeanRoute
from app.problems import responses
from app.schemas.common import Cursor, Limit, Page
from app.schemas.orders import OrderBatch, OrderBatchOut, OrderOut, OrderStatus
from app.schemas.shops import Platform
from app.services import orders
from app.services.orders import OrderFilters
from app.services.segments.jobs import schedule_recompute

router = APIRouter(route_class=LeanRoute, prefix="/api/v1", tags=["orders"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry safely: the same key and body return the first response.",
    ),
]

_BATCH_EXAMPLE: dict[str, Any] = {
    "shop_id": "01930000-0000-7000-8000-000000000001",
    "orders": [
        {
            "order_no": "POS-20240630-0001",
            "status": "completed",
            "buyer_key": "MEMBER-000123",
            "receiver_phone": "13812345678",
            "paid_fen": 12800,
            "ordered_at": "2024-06-30T10:15:00+08:00",
            "paid_at": "2024-06-30T10:15:30+08:00",
            "items": [{"title": "手冲咖啡豆 250g", "quantity": 2, "unit_price_fen": 6400}],
        }
    ],
}


@router.post(
    "/orders/batch",
    summary="Upsert up to 1,000 orders (integration scripts, offline and O2O stores)",
    response_model=OrderBatchOut,
    responses=responses(401, 403, 422),
    openapi_extra={"requestBody": {"content": {"application/json": {"example": _BATCH_EXAMPLE}}}},
)
async def batch_orders(
    session: Session,
    vault: VaultDep,
    actor: CurrentKey,
    clock: ClockDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    body: OrderBatch,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    status, payload = await orders.load_batch(session, vault, actor, body, idempotency_key, clock())
    # After the response, so after the commit: RFM and lifecycle stages follow the new orders.
    background.add_task(schedule_recompute, runtime, actor.tenant_id)
    return JSONResponse(payload, status_code=status)


async def _list(
    session: ReadSession,
    vault: VaultDep,
    actor: CurrentKey,
    filters: OrderFilters,
    limit: int,
    cursor: str | None,
) -> Page[OrderOut]:
    items, next_cursor = await orders.list_orders(session, vault, actor, filters, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.get(
    "/orders",
    summary="Find orders (newest first) by shop, platform, status, payment time, customer",
    responses=responses(401, 403, 404, 422),
)
async def list_orders(
    session: ReadSession,
    vault: VaultDep,
    actor: CurrentKey,
    shop_id: uuid.UUID | None = None,
    platform: Platform | None = None,
    status: OrderStatus | None = None,
    paid_from: Annotated[
        datetime | None, Query(description="Paid at or after (inclusive).")
    ] = None,
    paid_to: Annotated[datetime | None, Query(description="Paid before (exclusive).")] = None,
    customer_id: uuid.UUID | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[OrderOut]:
    filters = OrderFilters(
        shop_id=shop_id,
        platform=platform.value if platform else None,
        status=status.value if status else None,
        paid_from=paid_from,
        paid_to=paid_to,
        customer_id=customer_id,
    )
    return await _list(session, vault, actor, filters, limit, cursor)


@router.get(
    "/orders/{order_id}",
    summary="Get an order with its item lines",
    responses=responses(401, 403, 404),
)
async def get_order(
    session: ReadSession, vault: VaultDep, actor: CurrentKey, order_id: uuid.UUID
) -> OrderOut:
    return await orders.get_order(session, vault, actor, order_id)


@router.get(
    "/customers/{customer_id}/orders",
    summary="A customer's orders, newest first",
    tags=["customers"],
    responses=responses(401, 403, 404, 422),
)
async def customer_orders(
    session: ReadSession,
    vault: VaultDep,
    actor: CurrentKey,
    customer_id: uuid.UUID,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[OrderOut]:
    filters = OrderFilters(customer_id=customer_id)
    return await _list(session, vault, actor, filters, limit, cursor)
