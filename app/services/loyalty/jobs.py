"""Scheduled loyalty work: post pending points, expire lots, recompute tiers, birthday bonuses.

Each pass walks every tenant in small batches, one transaction per batch, and is idempotent
(entries carry unique keys and rows are re-checked under the account lock), so a retried or
overlapping run gives the state of a single run.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from procrastinate import JobContext
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs import runtime_of, tasks
from app.models import Tenant
from app.runtime import Runtime
from app.services.loyalty import bonuses, earning, lots, tiers
from app.services.loyalty.program import current_program

Batch = Callable[[AsyncSession, uuid.UUID], Awaitable[int]]


async def _tenants(runtime: Runtime) -> list[uuid.UUID]:
    async with runtime.read_sessions() as session:
        return list(await session.scalars(select(Tenant.id).order_by(Tenant.id)))


async def _until_done(runtime: Runtime, batch: Batch) -> int:
    done = 0
    for tenant_id in await _tenants(runtime):
        while True:
            async with runtime.sessions() as session:
                count = await batch(session, tenant_id)
                await session.commit()
            done += count
            if count == 0:
                break
    return done


async def post_pending(runtime: Runtime) -> int:
    return await _until_done(
        runtime, lambda session, tenant: earning.post_due(session, tenant, runtime.clock())
    )


async def expire_lots(runtime: Runtime) -> int:
    return await _until_done(
        runtime, lambda session, tenant: lots.expire_due(session, tenant, runtime.clock())
    )


async def recompute_tiers(runtime: Runtime) -> None:
    for tenant_id in await _tenants(runtime):
        after: uuid.UUID | None = None
        while True:
            async with runtime.sessions() as session:
                now = runtime.clock()
                program = await current_program(session, tenant_id, now)
                after = await tiers.recompute_tenant(session, tenant_id, program, now, after)
                await session.commit()
            if after is None:
                break


async def birthday_bonuses(runtime: Runtime) -> None:
    for tenant_id in await _tenants(runtime):
        async with runtime.sessions() as session:
            await bonuses.birthday_bonuses(session, tenant_id, runtime.clock())
            await session.commit()


@tasks.periodic(cron="*/10 * * * *")
@tasks.task(name="loyalty.post_pending", pass_context=True)
async def post_pending_task(context: JobContext, timestamp: int) -> None:
    await post_pending(runtime_of(context))


@tasks.periodic(cron="5 * * * *")
@tasks.task(name="loyalty.expire_lots", pass_context=True)
async def expire_lots_task(context: JobContext, timestamp: int) -> None:
    await expire_lots(runtime_of(context))


@tasks.periodic(cron="30 19 * * *")  # 03:30 in Asia/Shanghai
@tasks.task(name="loyalty.recompute_tiers", pass_context=True)
async def recompute_tiers_task(context: JobContext, timestamp: int) -> None:
    await recompute_tiers(runtime_of(context))


@tasks.periodic(cron="10 16 * * *")  # 00:10 in Asia/Shanghai
@tasks.task(name="loyalty.birthday_bonuses", pass_context=True)
async def birthday_bonuses_task(context: JobContext, timestamp: int) -> None:
    await birthday_bonuses(runtime_of(context))
