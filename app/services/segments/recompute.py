"""Tenant-wide recomputes: RFM scores and groups, lifecycle stages with their history.

Both are single set-based statements over `customer_facts` and only write rows whose values
change, so running them twice at the same `as_of` gives the state of running them once.

RFM: among the tenant's buying customers (at least one paid order), each of recency (last
order time), frequency (order count) and monetary (total spent) is scored 1-5 by rank quintile:
`1 + floor(5 * (rank - 1) / buyers)` where `rank` is the SQL `rank()` ascending (ties share the
lower rank, so equal values always get equal scores; 5 is the most recent / most / biggest).
A score is "high" when it is at least the mean of that score over the buyers; the three
high/low flags give the eight classic groups.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.segments.rules import Thresholds

_WORK_MEM = text("SET LOCAL work_mem = '256MB'")

_RFM = text(
    """
    WITH buyers AS (
        SELECT customer_id, last_order_at, order_count, total_spent_fen,
               count(*) OVER () AS n
        FROM customer_facts
        WHERE tenant_id = :tenant_id AND order_count > 0
    ), scored AS (
        SELECT customer_id,
               (1 + floor(5.0 * (rank() OVER (ORDER BY last_order_at) - 1) / n))::smallint AS r,
               (1 + floor(5.0 * (rank() OVER (ORDER BY order_count) - 1) / n))::smallint AS f,
               (1 + floor(5.0 * (rank() OVER (ORDER BY total_spent_fen) - 1) / n))::smallint AS m
        FROM buyers
    ), grouped AS (
        SELECT customer_id, r, f, m,
               (CASE WHEN m >= avg(m) OVER () THEN 'important_' ELSE 'general_' END)
               || (CASE WHEN r >= avg(r) OVER () THEN
                        CASE WHEN f >= avg(f) OVER () THEN 'value' ELSE 'develop' END
                   ELSE CASE WHEN f >= avg(f) OVER () THEN 'keep' ELSE 'retain' END END)
                   AS grp
        FROM scored
    )
    UPDATE customer_facts t
    SET rfm_r = g.r, rfm_f = g.f, rfm_m = g.m, rfm_group = g.grp, rfm_as_of = :as_of
    FROM grouped g
    WHERE t.tenant_id = :tenant_id AND t.customer_id = g.customer_id
      AND (t.rfm_r, t.rfm_f, t.rfm_m, t.rfm_group)
          IS DISTINCT FROM (g.r, g.f, g.m, g.grp)
    """
)

_RFM_CLEAR = text(
    """
    UPDATE customer_facts
    SET rfm_r = NULL, rfm_f = NULL, rfm_m = NULL, rfm_group = NULL, rfm_as_of = :as_of
    WHERE tenant_id = :tenant_id AND order_count = 0 AND rfm_group IS NOT NULL
    """
)

# Customers without a facts row (no import touched them yet) get one, as prospects since they
# were created, so every customer has a stage.
_PROSPECTS = text(
    """
    INSERT INTO customer_facts AS t (tenant_id, customer_id, order_count, total_spent_fen,
                                     refund_count, refund_fen, lifecycle_stage, lifecycle_since,
                                     updated_at)
    SELECT c.tenant_id, c.id, 0, 0, 0, 0, 'prospect', c.created_at, now()
    FROM customers c
    WHERE c.tenant_id = :tenant_id
      AND NOT EXISTS (SELECT FROM customer_facts x
                      WHERE x.tenant_id = c.tenant_id AND x.customer_id = c.id)
    ON CONFLICT (tenant_id, customer_id) DO NOTHING
    """
)

_LIFECYCLE = text(
    """
    WITH params AS (
        SELECT CAST(:as_of AS timestamptz) AS as_of
    ), computed AS (
        SELECT customer_id, lifecycle_stage AS old_stage,
               CASE
                 WHEN order_count = 0 THEN 'prospect'
                 WHEN last_order_at < p.as_of - make_interval(days => :churned_days) THEN 'churned'
                 WHEN last_order_at < p.as_of - make_interval(days => :at_risk_days) THEN 'at_risk'
                 WHEN last_order_at - previous_order_at > make_interval(days => :churned_days)
                   THEN 'won_back'
                 WHEN order_count >= :loyal_orders
                      OR (order_count >= 2 AND rfm_group = 'important_value') THEN 'loyal'
                 WHEN order_count = 1
                      AND first_order_at >= p.as_of - make_interval(days => :new_days) THEN 'new'
                 ELSE 'active'
               END AS stage
        FROM customer_facts, params p
        WHERE tenant_id = :tenant_id
    ), changed AS (
        UPDATE customer_facts t
        SET lifecycle_stage = c.stage, lifecycle_since = CAST(:as_of AS timestamptz)
        FROM computed c
        WHERE t.tenant_id = :tenant_id AND t.customer_id = c.customer_id
          AND c.stage <> c.old_stage
        RETURNING t.customer_id, c.old_stage, c.stage
    )
    INSERT INTO lifecycle_events (tenant_id, customer_id, from_stage, to_stage, changed_at)
    SELECT :tenant_id, customer_id, old_stage, stage, CAST(:as_of AS timestamptz) FROM changed
    """
)


async def recompute_rfm(session: AsyncSession, tenant_id: uuid.UUID, as_of: datetime) -> None:
    await session.execute(_WORK_MEM)
    params = {"tenant_id": tenant_id, "as_of": as_of}
    await session.execute(_RFM, params)
    await session.execute(_RFM_CLEAR, params)


async def recompute_lifecycle(
    session: AsyncSession, tenant_id: uuid.UUID, as_of: datetime, limits: Thresholds
) -> None:
    """Move every customer to the stage their facts give at `as_of`, recording each change."""
    await session.execute(_WORK_MEM)
    await session.execute(_PROSPECTS, {"tenant_id": tenant_id})
    await session.execute(
        _LIFECYCLE,
        {
            "tenant_id": tenant_id,
            "as_of": as_of,
            "new_days": limits.new_days,
            "loyal_orders": limits.loyal_orders,
            "at_risk_days": limits.at_risk_days,
            "churned_days": limits.churned_days,
        },
    )


_MARK = text(
    """
    INSERT INTO segment_settings AS s (tenant_id, recomputed_at) VALUES (:tenant_id, :as_of)
    ON CONFLICT (tenant_id) DO UPDATE SET recomputed_at = excluded.recomputed_at
    """
)


async def recompute_tenant(
    session: AsyncSession, tenant_id: uuid.UUID, as_of: datetime, limits: Thresholds
) -> None:
    """RFM first: the lifecycle's `loyal` stage reads the RFM group."""
    await recompute_rfm(session, tenant_id, as_of)
    await recompute_lifecycle(session, tenant_id, as_of, limits)
    await session.execute(_MARK, {"tenant_id": tenant_id, "as_of": as_of})
