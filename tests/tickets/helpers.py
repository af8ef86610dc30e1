"""Helpers for ticket tests: orders inserted directly (order sync has its own API), tickets."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert

from app.models import Order, OrderItem
from app.models.base import new_id, utcnow
from app.runtime import Runtime
from tests.factories import TenantCtx


async def insert_order(
    runtime: Runtime,
    tenant: TenantCtx,
    shop_id: str,
    customer_id: str | None,
    items: list[tuple[str | None, str]],
) -> uuid.UUID:
    """An order with one line per (merchant_code, title), numbered from 1."""
    order_id = new_id()
    async with runtime.sessions() as session:
        await session.execute(
            insert(Order).values(
                tenant_id=tenant.tenant_id,
                id=order_id,
                shop_id=uuid.UUID(shop_id),
                platform="tmall",
                order_no=f"T{order_id.hex[:16]}",
                status="completed",
                customer_id=uuid.UUID(customer_id) if customer_id else None,
                paid_fen=10_000,
                refund_fen=0,
                paid_at=utcnow(),
            )
        )
        if items:
            await session.execute(
                insert(OrderItem),
                [
                    {
                        "tenant_id": tenant.tenant_id,
                        "order_id": order_id,
                        "line_no": i + 1,
                        "merchant_code": code,
                        "title": title,
                        "quantity": 1,
                    }
                    for i, (code, title) in enumerate(items)
                ],
            )
        await session.commit()
    return order_id


async def open_ticket(tenant: TenantCtx, customer_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "customer_id": customer_id,
        "kind": "complaint",
        "channel": "tmall_chat",
        "subject": "快递没到",
        **fields,
    }
    response = await tenant.request("POST", "/api/v1/tickets", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def move(tenant: TenantCtx, ticket_id: str, to: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"to": to, **fields}
    if to == "resolved":
        body.setdefault("resolution_code", "explained")
        body.setdefault("resolution_summary", "已解释并道歉")
    response = await tenant.request("POST", f"/api/v1/tickets/{ticket_id}/transitions", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result
