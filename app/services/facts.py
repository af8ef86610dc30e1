"""Customer facts derived from orders: recomputed set-based for the customers an import touched.

A buying order is one that was paid (it has a payment time and is not awaiting payment); spend is
what the buyer paid less what was refunded. Facts are a pure function of the orders table, so a
refresh can run any number of times and always gives the same rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_REFRESH = text(
    """
    WITH touched AS (
        SELECT unnest(CAST(:customer_ids AS uuid[])) AS customer_id
    ), agg AS (
        SELECT t.customer_id,
               count(o.id) FILTER (WHERE o.paid_at IS NOT NULL
                                     AND o.status <> 'pending_payment') AS order_count,
               coalesce(sum(o.paid_fen - o.refund_fen) FILTER (
                   WHERE o.paid_at IS NOT NULL AND o.status <> 'pending_payment'), 0) AS spent,
               count(o.id) FILTER (WHERE o.refund_fen > 0
                                     OR o.status IN ('refunding', 'refunded',
                                                     'partially_refunded')) AS refund_count,
               coalesce(sum(o.refund_fen), 0) AS refund_fen,
               min(o.paid_at) AS first_order_at,
               max(o.paid_at) AS last_order_at
        FROM touched t
        LEFT JOIN orders o ON o.tenant_id = :tenant_id AND o.customer_id = t.customer_id
        GROUP BY t.customer_id
    )
    INSERT INTO customer_facts AS f (tenant_id, customer_id, order_count, total_spent_fen,
                                     refund_count, refund_fen, first_order_at, last_order_at,
                                     updated_at)
    SELECT :tenant_id, a.customer_id, a.order_count, a.spent, a.refund_count, a.refund_fen,
           a.first_order_at, a.last_order_at, now()
    FROM agg a
    JOIN customers c ON c.tenant_id = :tenant_id AND c.id = a.customer_id
    ON CONFLICT (tenant_id, customer_id) DO UPDATE SET
        order_count = excluded.order_count,
        total_spent_fen = excluded.total_spent_fen,
        refund_count = excluded.refund_count,
        refund_fen = excluded.refund_fen,
        first_order_at = excluded.first_order_at,
        last_order_at = excluded.last_order_at,
        updated_at = excluded.updated_at
    WHERE (f.order_count, f.total_spent_fen, f.refund_count, f.refund_fen,
           f.first_order_at, f.last_order_at)
          IS DISTINCT FROM
          (excluded.order_count, excluded.total_spent_fen, excluded.refund_count,
           excluded.refund_fen, excluded.first_order_at, excluded.last_order_at)
    """
)

_ALL_CUSTOMERS = text("SELECT array_agg(id) FROM customers WHERE tenant_id = :tenant_id")


async def refresh_customer_facts(
    session: AsyncSession, tenant_id: uuid.UUID, customer_ids: Sequence[uuid.UUID] | None = None
) -> None:
    """Recompute the facts of `customer_ids` (every customer of the tenant when None)."""
    if customer_ids is None:
        customer_ids = (await session.scalar(_ALL_CUSTOMERS, {"tenant_id": tenant_id})) or []
    if not customer_ids:
        return
    await session.execute(
        _REFRESH, {"tenant_id": tenant_id, "customer_ids": list(dict.fromkeys(customer_ids))}
    )
