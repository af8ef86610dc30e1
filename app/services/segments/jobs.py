"""Segment jobs: per-tenant RFM + lifecycle recompute (after imports and nightly) and facts rebuild.

`schedule_recompute` is what an import calls after its transaction commits. A queueing lock per
tenant folds a burst of imports into one waiting job; every task is idempotent.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from procrastinate import JobContext
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.jobs import defer, runtime_of, tasks
from app.models import Tenant
from app.runtime import Runtime
from app.services.facts import refresh_customer_facts
from app.services.segments.recompute import recompute_tenant
from app.services.segments.rules import thresholds
from app.services.segments.saved import evaluate_all

log = logging.getLogger(__name__)

RECOMPUTE = "kezhan:segments_recompute"
REBUILD = "kezhan:facts_rebuild"


async def recompute(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, as_of: datetime
) -> None:
    """RFM and lifecycle stages for one tenant, then its saved segments' sizes.

    Two transactions: a recompute that changes many customers holds the tenant's rollup lock
    (app/models/analytics.py) until it commits, and customer edits wait for it, so the segment
    counts run after. Both steps are idempotent: a retried job gives the same state."""
    async with sessions() as session:
        limits = await thresholds(session, tenant_id)
        await recompute_tenant(session, tenant_id, as_of, limits)
        await session.commit()
    async with sessions() as session:
        await evaluate_all(session, tenant_id, as_of)
        await session.commit()


async def rebuild(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, as_of: datetime
) -> None:
    """Every customer's facts from the orders, then the recompute: the from-scratch path."""
    async with sessions() as session:
        await refresh_customer_facts(session, tenant_id, None)
        await session.commit()
    await recompute(sessions, tenant_id, as_of)


async def tenant_ids(sessions: async_sessionmaker[AsyncSession]) -> list[uuid.UUID]:
    async with sessions() as session:
        return list(await session.scalars(select(Tenant.id).order_by(Tenant.id)))


async def _defer(runtime: Runtime, task: str, tenant_id: uuid.UUID) -> None:
    try:
        await defer(runtime, task, queueing_lock=f"{task}:{tenant_id}", tenant_id=str(tenant_id))
    except AlreadyEnqueued:
        log.debug("%s for tenant %s is already queued", task, tenant_id)


async def schedule_recompute(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """Queue a recompute for the tenant (call after commit); a queued one absorbs this call."""
    await _defer(runtime, RECOMPUTE, tenant_id)


async def schedule_rebuild(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """Queue a facts rebuild (after category rules change, for instance)."""
    await _defer(runtime, REBUILD, tenant_id)


@tasks.task(name="segments_recompute", pass_context=True, retry=3)
async def segments_recompute(context: JobContext, tenant_id: str) -> None:
    runtime = runtime_of(context)
    await recompute(runtime.sessions, uuid.UUID(tenant_id), runtime.clock())


@tasks.task(name="facts_rebuild", pass_context=True, retry=3)
async def facts_rebuild(context: JobContext, tenant_id: str) -> None:
    runtime = runtime_of(context)
    await rebuild(runtime.sessions, uuid.UUID(tenant_id), runtime.clock())


@tasks.periodic(cron="20 3 * * *")
@tasks.task(name="segments_nightly", pass_context=True)
async def segments_nightly(context: JobContext, timestamp: int) -> None:
    """Every night (UTC 03:20, 11:20 in China): recency moves with time even without imports."""
    runtime = runtime_of(context)
    for tenant_id in await tenant_ids(runtime.sessions):
        await schedule_recompute(runtime, tenant_id)
