"""Test helper: orders inserted with plain SQL (the import pipeline is not under test here)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import text

from app.models.base import new_id
from app.runtime import Runtime
from app.services.facts import refresh_customer_facts
from app.services.segments import jobs

_numbers = itertools.count(1)

_ORDER = text(
    """
    INSERT INTO orders (tenant_id, id, shop_id, platform, order_no, status, customer_id,
                        paid_fen, refund_fen, ordered_at, paid_at)
    VALUES (:tenant_id, :id, :shop_id, :platform, :order_no, :status, :customer_id,
            :paid_fen, :refund_fen, :paid_at, :paid_at)
    """
)
_ITEM = text(
    """
    INSERT INTO order_items (tenant_id, order_id, line_no, title, merchant_code, quantity,
                             paid_fen)
    VALUES (:tenant_id, :order_id, :line_no, :title, :merchant_code, 1, :paid_fen)
    """
)


async def add_order(
    runtime: Runtime,
    tenant_id: uuid.UUID | str,
    customer_id: uuid.UUID | str,
    shop: dict[str, str],
    paid_at: datetime | None,
    paid_fen: int,
    items: Sequence[tuple[str, str]] = (),
    status: str = "completed",
    refund_fen: int = 0,
) -> uuid.UUID:
    """One order (and its item lines: merchant code, title), then the buyer's facts refreshed,
    as an import would do in its transaction."""
    order_id = new_id()
    tenant, customer = uuid.UUID(str(tenant_id)), uuid.UUID(str(customer_id))
    async with runtime.sessions() as session:
        await session.execute(
            _ORDER,
            {
                "tenant_id": tenant,
                "id": order_id,
                "shop_id": uuid.UUID(shop["id"]),
                "platform": shop["platform"],
                "order_no": f"T{next(_numbers)}",
                "status": status,
                "customer_id": customer,
                "paid_fen": paid_fen,
                "refund_fen": refund_fen,
                "paid_at": paid_at,
            },
        )
        for line, (code, title) in enumerate(items, 1):
            await session.execute(
                _ITEM,
                {
                    "tenant_id": tenant,
                    "order_id": order_id,
                    "line_no": line,
                    "title": title,
                    "merchant_code": code,
                    "paid_fen": paid_fen // max(len(items), 1),
                },
            )
        await refresh_customer_facts(session, tenant, [customer])
        await session.commit()
    return order_id


async def recompute(runtime: Runtime, tenant_id: uuid.UUID | str) -> None:
    """What the segments_recompute job does, run inline."""
    await jobs.recompute(runtime.sessions, uuid.UUID(str(tenant_id)), runtime.clock())


async def keep_on_merge(runtime: Runtime, tenant_id: uuid.UUID | str, customer_id: str) -> None:
    """Give the customer a loyalty account: an append-only domain names it, so merging it away
    keeps it as a tombstone pointing at the survivor instead of deleting it."""
    async with runtime.sessions() as session:
        await session.execute(
            text(
                "INSERT INTO loyalty_accounts (tenant_id, customer_id, balance, lifetime_points) "
                "VALUES (:t, :c, 0, 0)"
            ),
            {"t": uuid.UUID(str(tenant_id)), "c": uuid.UUID(customer_id)},
        )
        await session.commit()
