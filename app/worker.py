"""The job worker as its own process (`kezhan worker`): the app's runtime, no HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from app.config import Settings
from app.jobs import worker_options
from app.main import create_app


async def run_worker(settings: Settings, queues: list[str] | None = None) -> None:
    """Run jobs until SIGINT/SIGTERM; a killed worker's jobs are retried by the stalled sweep."""
    settings = settings.model_copy(update={"job_worker_in_process": False})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        worker = asyncio.create_task(
            runtime.jobs.run_worker_async(**worker_options(runtime, queues=queues or None))
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await worker
