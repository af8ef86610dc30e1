"""Ticket jobs: the periodic rebuild of the summary report's per-day rollups."""

from __future__ import annotations

import logging

from procrastinate import JobContext

from app.jobs import runtime_of, tasks
from app.runtime import Runtime
from app.services.tickets import rollups

log = logging.getLogger(__name__)

REFRESH_TASK = "kezhan:ticket_rollups_refresh"


async def refresh_all(runtime: Runtime) -> int:
    """Rebuild the changed days of every tenant with changes, one transaction per tenant."""
    async with runtime.sessions() as session:
        tenants = await rollups.dirty_tenants(session)
    built = 0
    for tenant_id in tenants:
        async with runtime.sessions() as session:
            built += len(await rollups.refresh(session, tenant_id, runtime.clock()))
            await session.commit()
    return built


@tasks.periodic(cron="* * * * *", periodic_id="ticket_rollups_refresh")
@tasks.task(
    name="ticket_rollups_refresh",
    pass_context=True,
    queue="maintenance",
    queueing_lock="ticket_rollups_refresh",
)
async def ticket_rollups_refresh(context: JobContext, timestamp: int) -> None:
    built = await refresh_all(runtime_of(context))
    if built:
        log.info("ticket rollups: %d days rebuilt", built)
