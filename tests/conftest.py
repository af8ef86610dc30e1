"""Test fixtures: a fresh migrated PostgreSQL database per run, the app, a client, a clock.

With DATABASE_URL set, a new database is created on that server; otherwise an embedded
PostgreSQL (pgserver) is started in a temporary folder. Tests never share a tenant, so they do
not depend on each other's data or order.
"""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import start_embedded_postgres
from app.jobs import run_until_idle
from app.main import create_app
from app.migrate import upgrade
from app.runtime import Runtime
from tests.factories import TenantFactory


class TestClock:
    """Real time unless a test pins it; `advance` moves a pinned clock."""

    __test__ = False  # a fixture, not a test class

    def __init__(self) -> None:
        self.pinned: datetime | None = None

    def __call__(self) -> datetime:
        return self.pinned or datetime.now(UTC)

    def set(self, when: datetime) -> None:
        self.pinned = when

    def advance(self, delta: timedelta) -> None:
        self.pinned = self() + delta

    def reset(self) -> None:
        self.pinned = None


def _server_url() -> tuple[str, Path | None]:
    external = os.environ.get("DATABASE_URL")
    if external:
        return make_url(external).set(drivername="postgresql").render_as_string(False), None
    folder = Path(tempfile.mkdtemp(prefix="kezhan-test-"))
    return start_embedded_postgres(folder, database="postgres"), folder


async def _create_database(server_url: str, name: str) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(server_url).set(database=name).render_as_string(False)


async def _drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def server_url() -> str:
    return _server_url()[0]


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    name = f"kezhan_test_{uuid.uuid4().hex[:12]}"
    url = asyncio.run(_create_database(server_url, name))
    upgrade(url)
    yield url
    asyncio.run(_drop_database(server_url, name))


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        encryption_key=base64.b64encode(os.urandom(32)).decode(),
        lookup_key=base64.b64encode(os.urandom(32)).decode(),
        api_key_cache_seconds=0.0,
        db_pool_size=5,
        log_level="WARNING",
        job_worker_in_process=False,
    )


@pytest.fixture(scope="session")
def test_clock() -> TestClock:
    return TestClock()


@pytest.fixture
def clock(test_clock: TestClock) -> Iterator[TestClock]:
    yield test_clock
    test_clock.reset()


@pytest.fixture(scope="session")
async def app(settings: Settings, test_clock: TestClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=test_clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
def runtime(app: FastAPI) -> Runtime:
    result: Runtime = app.state.runtime
    return result


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kezhan.test") as c:
        yield c


@pytest.fixture
def tenants(client: httpx.AsyncClient, runtime: Runtime) -> TenantFactory:
    return TenantFactory(client, runtime)


RunJobs = Callable[[], Awaitable[None]]


@pytest.fixture
def run_jobs(runtime: Runtime) -> RunJobs:
    """Run every queued job to completion, as the worker would (tests run no background worker)."""

    async def run() -> None:
        await run_until_idle(runtime)

    return run
