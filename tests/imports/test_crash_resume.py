"""A worker killed in the middle of an import: the job is retried and ends as if never killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from app.config import Settings
from app.runtime import Runtime
from app.services.imports.jobs import retry_stalled
from tests.conftest import RunJobs
from tests.factories import TenantFactory
from tests.imports.helpers import (
    SETS,
    order_rows,
    sample_files,
    status_counts,
    table_snapshot,
    truth,
    upload,
)


def _worker_env(settings: Settings) -> dict[str, str]:
    assert settings.database_url is not None
    assert settings.encryption_key is not None
    assert settings.lookup_key is not None
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "KEZHAN_ENVIRONMENT": "test",
        "KEZHAN_DATA_DIR": str(settings.data_dir),
        "KEZHAN_ENCRYPTION_KEY": settings.encryption_key,
        "KEZHAN_LOOKUP_KEY": settings.lookup_key,
        "KEZHAN_LOG_LEVEL": "WARNING",
    }


async def _wait_for(
    conn: asyncpg.Connection,
    query: str,
    timeout: float = 120.0,
    worker: subprocess.Popen[bytes] | None = None,
    worker_log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not await conn.fetchval(query):
        if worker is not None and worker.poll() is not None:
            log = worker_log.read_text(errors="replace")[-3000:] if worker_log else ""
            pytest.fail(f"the worker exited ({worker.returncode}) before: {query}\n{log}")
        assert time.monotonic() < deadline, f"timed out waiting for: {query}"
        await asyncio.sleep(0.05)


async def test_worker_killed_mid_load_resumes_to_the_same_state(
    tenants: TenantFactory,
    settings: Settings,
    runtime: Runtime,
    run_jobs: RunJobs,
    tmp_path: Path,
) -> None:
    tenant = await tenants.create()
    shop = await tenant.shop("pinduoduo")
    response = await upload(tenant, sample_files(SETS[0], "pdd"), "pinduoduo", shop["id"])
    assert response.status_code == 202
    import_url = response.headers["location"]

    blocker = await asyncpg.connect(runtime.database_url)
    watcher = await asyncpg.connect(runtime.database_url)
    worker_log = tmp_path / "worker.log"
    with worker_log.open("wb") as log_handle:  # the child keeps its own copy of the handle
        worker = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--queue", "imports"],
            env=_worker_env(settings),
            stdout=subprocess.DEVNULL,
            stderr=log_handle,
        )
    try:
        # Hold the customer facts table: the load writes orders, items and customers, then
        # waits here, inside its one transaction, to refresh facts. That is where we kill it.
        await blocker.execute("BEGIN; LOCK TABLE customer_facts IN EXCLUSIVE MODE")
        await _wait_for(
            watcher,
            "SELECT count(*) FROM pg_locks WHERE NOT granted"
            " AND relation = 'customer_facts'::regclass",
            worker=worker,
            worker_log=worker_log,
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        half_done = (await tenant.request("GET", import_url)).json()
        assert half_done["status"] == "running"
        assert await order_rows(runtime, tenant.tenant_id, shop["id"]) == []
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        await blocker.execute("ROLLBACK")
        await blocker.close()
    # The killed worker's server session notices its client is gone and rolls back.
    await _wait_for(
        watcher,
        "SELECT count(*) = 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND datname = current_database()",
    )
    await watcher.close()

    assert await retry_stalled(runtime, seconds_since_heartbeat=0) == 1
    await run_jobs()
    finished = (await tenant.request("GET", import_url)).json()
    assert finished["status"] == "succeeded"
    assert finished["attempts"] == 2
    want = truth(SETS[0])["platforms"]["pdd"]
    assert finished["counts"]["orders_created"] == want["distinct_orders"]
    rows = await order_rows(runtime, tenant.tenant_id, shop["id"])
    assert status_counts(rows) == want["final_status_counts"]

    # The same files imported without interruption in another tenant end in the same state.
    reference = await tenants.create()
    reference_shop = await reference.shop("pinduoduo")
    clean = await upload(reference, sample_files(SETS[0], "pdd"), "pinduoduo", reference_shop["id"])
    await run_jobs()
    assert (await reference.request("GET", clean.headers["location"])).json()["counts"] == (
        finished["counts"]
    )
    resumed, uninterrupted = (
        await table_snapshot(runtime, tenant.tenant_id),
        await table_snapshot(runtime, reference.tenant_id),
    )
    for name in ("orders", "items", "customers", "facts"):
        assert len(resumed[name]) == len(uninterrupted[name]), name
