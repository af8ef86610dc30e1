"""Import jobs on the durable queue, and the periodic sweep that resumes jobs whose worker died."""

from __future__ import annotations

import logging
import uuid

from procrastinate import JobContext

from app.jobs import defer, runtime_of, tasks
from app.runtime import Runtime
from app.services.imports import pipeline

log = logging.getLogger(__name__)

# A worker that sent no heartbeat for this long is dead: its jobs are given to another worker.
STALLED_AFTER_SECONDS = 60.0


@tasks.task(name="import_orders", pass_context=True, queue="imports")
async def import_orders(context: JobContext, tenant_id: str, import_id: str) -> None:
    runtime = runtime_of(context)
    try:
        await pipeline.run_import(runtime, uuid.UUID(tenant_id), uuid.UUID(import_id))
    except Exception as exc:
        log.exception("import %s failed", import_id)
        await pipeline.fail_import(
            runtime, uuid.UUID(tenant_id), uuid.UUID(import_id), type(exc).__name__
        )
        raise


async def defer_import(runtime: Runtime, tenant_id: uuid.UUID, import_id: uuid.UUID) -> None:
    """Queue the job for a committed import; one queued job per import at most."""
    await defer(
        runtime,
        pipeline.IMPORT_TASK,
        queueing_lock=f"import:{import_id}",
        tenant_id=str(tenant_id),
        import_id=str(import_id),
    )


async def retry_stalled(runtime: Runtime, seconds_since_heartbeat: float) -> int:
    """Give the jobs of dead workers back to the queue; the jobs are idempotent."""
    manager = runtime.jobs.job_manager
    stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=seconds_since_heartbeat))
    for job in stalled:
        log.warning("retrying job %s (%s): its worker stopped", job.id, job.task_name)
        await manager.retry_job(job)
    return len(stalled)


@tasks.periodic(cron="* * * * *", periodic_id="retry_stalled_jobs")
@tasks.task(name="retry_stalled_jobs", pass_context=True, queue="maintenance")
async def retry_stalled_jobs(context: JobContext, timestamp: int) -> None:
    await retry_stalled(runtime_of(context), STALLED_AFTER_SECONDS)
