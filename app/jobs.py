"""The durable job queue: procrastinate on Kezhan's own PostgreSQL.

Domains register tasks on `tasks` (a procrastinate Blueprint) in their own `jobs` modules, listed
in `TASK_MODULES`. Tasks receive the running `Runtime` through the job context, so they open and
own their sessions like any other caller. Jobs are deferred after the transaction that asked for
them commits, and every task is idempotent, so a retried or resumed job gives the state of one run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import procrastinate
from procrastinate import JobContext, PsycopgConnector

if TYPE_CHECKING:
    from app.runtime import Runtime

tasks = procrastinate.Blueprint()

# Every module that registers tasks on `tasks`; each domain adds its own line.
TASK_MODULES: list[str] = [
    "app.services.imports.jobs",
    "app.services.loyalty.jobs",
    "app.services.segments.jobs",
    "app.services.tickets.jobs",
]


_registered: procrastinate.App | None = None


def build_job_app(database_url: str) -> procrastinate.App:
    """A procrastinate App bound to `database_url` (plain `postgresql://`), all tasks loaded.

    Namespacing renames the shared task objects, so it happens once per process; a later app
    (tests build several) takes over the registered tasks, which defer through the app that owns
    them (the periodic deferrer does): build the app only once the database is known to be ready.
    """
    global _registered
    job_app = procrastinate.App(connector=PsycopgConnector(conninfo=database_url))
    if _registered is None:
        for module in TASK_MODULES:
            importlib.import_module(module)
        job_app.add_tasks_from(tasks, namespace="kezhan")
        _registered = job_app
    else:
        job_app.tasks = _registered.tasks
        job_app.periodic_registry = _registered.periodic_registry
        for task in job_app.tasks.values():
            task.blueprint = job_app
    return job_app


async def defer(
    runtime: Runtime, task_name: str, *, queueing_lock: str | None = None, **kwargs: Any
) -> int:
    """Queue `task_name` (e.g. "kezhan:imports.run") on the runtime's queue; returns the job id.

    Raises procrastinate's AlreadyEnqueued when a job with the same queueing lock is waiting.
    """
    job = runtime.jobs.tasks[task_name].configure(queueing_lock=queueing_lock).job
    deferred = await runtime.jobs.job_manager.defer_job_async(job.evolve(task_kwargs=kwargs))
    assert deferred.id is not None
    return deferred.id


def worker_options(runtime: Runtime, **overrides: Any) -> dict[str, Any]:
    """Options for `run_worker_async`: the runtime in the context, stalled workers noticed fast."""
    return {
        "additional_context": {"runtime": runtime},
        "install_signal_handlers": False,
        "update_heartbeat_interval": 5.0,
        "stalled_worker_timeout": 30.0,
        **overrides,
    }


def runtime_of(context: JobContext) -> Runtime:
    runtime: Runtime = context.additional_context["runtime"]
    return runtime


async def run_until_idle(runtime: Runtime) -> None:
    """Run every job queued now, then return (tests use this in place of a background worker).

    Scheduled (periodic) tasks are left out: which of them fall due depends on the wall clock, and
    a test must not pick up a nightly recompute because of the hour it runs at.
    """
    queued_only = procrastinate.App(connector=runtime.jobs.connector)
    queued_only.tasks = runtime.jobs.tasks
    await queued_only.run_worker_async(**worker_options(runtime, wait=False, listen_notify=False))
