"""Database location (embedded pgserver or DATABASE_URL), engine, session factory, read pool."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config import Settings

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "kezhan"
_embedded_servers: dict[Path, Any] = {}
_SERVER_SETTINGS = {"timezone": "UTC", "application_name": "kezhan"}


def start_embedded_postgres(data_dir: Path, database: str = EMBEDDED_DATABASE) -> str:
    """Start (or join) the embedded PostgreSQL in `data_dir/pg` and return a libpq URL to it.

    pgserver shares one server between processes using the same folder and stops it when the last
    of them exits, so `kezhan tenant create` works while `kezhan serve` runs.
    """
    with warnings.catch_warnings():
        # platformdirs, imported by pgserver, warns when XDG_RUNTIME_DIR is unset (containers,
        # CI); pgserver keeps nothing there that matters to us.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        from pgserver.postgres_server import get_server  # lazily: only embedded mode needs it

    pgdata = (data_dir / "pg").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    server = _embedded_servers.get(pgdata)
    if server is None:
        server = get_server(pgdata, cleanup_mode="stop")
        _embedded_servers[pgdata] = server
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
        if "(1 row)" not in exists:
            server.psql(f'CREATE DATABASE "{database}";')
    return str(server.get_uri(database))


def libpq_url(settings: Settings) -> str:
    """The plain `postgresql://` URL of the configured database (starting the embedded one)."""
    if settings.database_url is None:
        return start_embedded_postgres(settings.data_dir)
    url = make_url(settings.database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def sqlalchemy_url(plain_url: str) -> str:
    return (
        make_url(plain_url)
        .set(drivername="postgresql+asyncpg")
        .render_as_string(hide_password=False)
    )


def create_engine(plain_url: str, settings: Settings) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(plain_url),
        pool_size=settings.db_pool_size,
        # No overflow: connections opened past the pool would be closed again on return, and
        # opening one (TLS negotiation, auth) costs more than waiting for a pooled one.
        max_overflow=0,
        pool_pre_ping=False,
        connect_args={"server_settings": _SERVER_SETTINGS},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _json_codecs(connection: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, schema="pg_catalog", encoder=_json_text, decoder=orjson.loads, format="text"
        )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Read-pool connections only run single autocommit SELECTs: no session state to reset."""


async def create_read_pool(plain_url: str, settings: Settings) -> asyncpg.Pool:
    """A plain asyncpg pool for the hottest single-row reads, in autocommit.

    SQLAlchemy's per-call machinery (session, statement cache key, result processing) costs several
    times the query itself on a one-row read, and asyncpg's default reset on release (RESET ALL,
    UNLISTEN, ...) is a second round trip per read; docs/benchmarks.md has the measurements.
    """
    return await asyncpg.create_pool(
        plain_url,
        min_size=settings.db_read_pool_size,
        max_size=settings.db_read_pool_size,
        server_settings=_SERVER_SETTINGS,
        init=_json_codecs,
        reset=_keep_session,
    )


async def driver_of(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under a session, inside the session's transaction."""
    driver = (await (await session.connection()).get_raw_connection()).driver_connection
    assert driver is not None
    connection: asyncpg.Connection = driver
    return connection
