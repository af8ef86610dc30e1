"""FastAPI dependencies as typed `Annotated` aliases: sessions, the caller, the vault, the clock.

All are `async def`: FastAPI runs plain `def` dependencies in a thread pool, which costs more
than the work they do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import Vault
from app.errors import Unauthenticated
from app.runtime import Clock, Runtime
from app.services.auth import Principal


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    return _runtime(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def _session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the handler returns, rolled back on error."""
    async with runtime.sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def _read_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """Autocommit reads: one round trip per query, no BEGIN/ROLLBACK around a lone SELECT."""
    async with runtime.read_sessions() as session:
        yield session


async def _read_pool(request: Request) -> asyncpg.Pool:
    return _runtime(request).read_pool


Session = Annotated[AsyncSession, Depends(_session, scope="function")]
ReadPool = Annotated[asyncpg.Pool, Depends(_read_pool)]
ReadSession = Annotated[AsyncSession, Depends(_read_session, scope="function")]


async def current_key(request: Request) -> Principal:
    """The caller behind `Authorization: Bearer <key>`.

    The header is read here rather than through FastAPI's `HTTPBearer`, a sub-dependency that
    costs a dependency solve on every request; `app.openapi_security` declares the scheme for
    every route that depends on this function.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send an API key as `Authorization: Bearer <key>`")
    return await _runtime(request).keys.verify(token.strip())


CurrentKey = Annotated[Principal, Depends(current_key)]


async def _vault(request: Request) -> Vault:
    return _runtime(request).vault


VaultDep = Annotated[Vault, Depends(_vault)]


async def _clock(request: Request) -> Clock:
    return _runtime(request).clock


ClockDep = Annotated[Clock, Depends(_clock)]

IfMatch = Annotated[
    str | None,
    Header(description="The resource's current `ETag`; a stale one gets 412."),
]
