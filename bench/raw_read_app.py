"""Baseline for the customer read benchmark: a bare ASGI app sending the same profile query.

No framework, no authentication, no decryption or masking, no validation: one asyncpg pool, the
exact SQL Kezhan sends for `GET /api/v1/customers/{id}`, and the row dumped as JSON.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import asyncpg
import orjson

from app.services.customers import profile_statement

_pool: asyncpg.Pool | None = None


async def _lifespan(receive: Any, send: Any) -> None:
    global _pool
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=10, max_size=10)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            assert _pool is not None
            await _pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    assert _pool is not None
    customer_id = uuid.UUID(scope["path"].rsplit("/", 1)[1])
    sql, args = profile_statement(uuid.UUID(os.environ["BENCH_TENANT"]), customer_id)
    row = await _pool.fetchrow(sql, *args)
    body = orjson.dumps(dict(row) if row else {}, default=str)
    await send(
        {
            "type": "http.response.start",
            "status": 200 if row else 404,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
