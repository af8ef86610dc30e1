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


def build_job_app(database_url: str) -> procrastinate.App:
    """A procrastinate App bound to `database_url` (plain `postgresql://`), all tasks loaded."""
    for module in TASK_MODULES:
        importlib.import_module(module)
    job_app = procrastinate.App(connector=PsycopgConnector(conninfo=database_url))
    job_app.add_tasks_from(tasks, namespace="kezhan")
    return job_app


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
    """Run every job that is due now, then return (tests and `kezhan` commands use this)."""
    await runtime.jobs.run_worker_async(**worker_options(runtime, wait=False, listen_notify=False))
