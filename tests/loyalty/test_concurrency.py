"""50 simultaneous redemptions on one account never overdraw: in one process (ASGI) and across
two uvicorn server processes sharing the database."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from app.runtime import Runtime
from tests.factories import TenantCtx
from tests.loyalty.conftest import Shop, ledger_state

REDEMPTIONS = 50


async def _fund(ctx: TenantCtx, customer: dict[str, Any], points: int) -> None:
    for chunk in (points // 2, points - points // 2):
        response = await ctx.request(
            "POST",
            f"/api/v1/loyalty/accounts/{customer['id']}/adjustments",
            json={"points": chunk, "reason": "funding"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 201, response.text


async def _redeem_all(
    clients: list[httpx.AsyncClient], ctx: TenantCtx, customer: dict[str, Any]
) -> list[httpx.Response]:
    """Fire every redemption at once, spread over the clients; a few retry their own key."""
    url = f"/api/v1/loyalty/accounts/{customer['id']}/redemptions"
    keys = [f"r-{n}" for n in range(REDEMPTIONS)] + ["r-0", "r-1", "r-2"]

    async def one(n: int, key: str) -> httpx.Response:
        return await clients[n % len(clients)].post(
            url,
            json={"points": 10, "reason": "concurrent"},
            headers={**ctx.headers(), "Idempotency-Key": key},
        )

    return list(await asyncio.gather(*(one(n, key) for n, key in enumerate(keys))))


async def _check(shop: Shop, customer: dict[str, Any], responses: list[httpx.Response]) -> None:
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, [r.text for r in responses if r.status_code >= 500]
    created = {r.json()["id"] for r in responses if r.status_code == 201}
    # 30 funded redemptions of 10 points out of 300; retries of a key return its first entry.
    assert len(created) == 30
    assert all(r.json()["balance"] >= 0 for r in responses if r.status_code == 409)
    account = await shop.ctx.request("GET", f"/api/v1/loyalty/accounts/{customer['id']}")
    assert account.json()["balance"] == 0
    assert await ledger_state(shop.runtime, shop.ctx.tenant_id) == []


async def test_fifty_concurrent_redemptions_never_overdraw(
    shop: Shop, client: httpx.AsyncClient
) -> None:
    customer = await shop.ctx.customer()
    await _fund(shop.ctx, customer, 300)
    responses = await _redeem_all([client], shop.ctx, customer)
    await _check(shop, customer, responses)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _server(database_url: str) -> Iterator[str]:
    """A separate uvicorn process serving the app on the test database."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KEZHAN_ENVIRONMENT": "test",
        "KEZHAN_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "KEZHAN_LOOKUP_KEY": base64.b64encode(os.urandom(32)).decode(),
        "KEZHAN_JOB_WORKER_IN_PROCESS": "false",
        # Small pools: the shared test server has few connections to spare, and a handful of
        # concurrent transactions per process is all the lock contention needs.
        "KEZHAN_DB_POOL_SIZE": "4",
        "KEZHAN_DB_READ_POOL_SIZE": "2",
        "KEZHAN_LOG_LEVEL": "WARNING",
    }
    args = ["-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, *args, "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the uvicorn server did not start")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_fifty_concurrent_redemptions_on_two_server_processes_never_overdraw(
    shop: Shop, runtime: Runtime
) -> None:
    customer = await shop.ctx.customer()
    await _fund(shop.ctx, customer, 300)
    with _server(runtime.database_url) as first, _server(runtime.database_url) as second:
        async with (
            httpx.AsyncClient(base_url=first, timeout=60) as one,
            httpx.AsyncClient(base_url=second, timeout=60) as two,
        ):
            responses = await _redeem_all([one, two], shop.ctx, customer)
    await _check(shop, customer, responses)
