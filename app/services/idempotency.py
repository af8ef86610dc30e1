"""`Idempotency-Key` handling: the first response to a key is stored and replayed on retries.

The key is claimed by inserting it in the request's own transaction: a concurrent retry waits on
the unique index until the first commits (then replays it) or rolls back (then runs itself), so a
retried request never has two effects.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import FieldError, ValidationFailed
from app.models import IdempotencyKey


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: Any


def request_fingerprint(payload: Any) -> bytes:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).digest()


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= 200:
        raise ValidationFailed(
            "invalid Idempotency-Key",
            [FieldError(["header", "Idempotency-Key"], "1 to 200 characters")],
        )


async def claim(
    session: AsyncSession, tenant_id: uuid.UUID, scope: str, key: str, payload: Any
) -> Replay | None:
    """None: this request owns the key and must run. A Replay: return it instead of running."""
    _check_key(key)
    fingerprint = request_fingerprint(payload)
    inserted = await session.scalar(
        insert(IdempotencyKey)
        .values(tenant_id=tenant_id, scope=scope, key=key, request_hash=fingerprint)
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    )
    if inserted is not None:
        return None
    stored = await session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.tenant_id == tenant_id,
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
        )
    )
    assert stored is not None
    if stored.request_hash != fingerprint:
        raise ValidationFailed(
            "this Idempotency-Key was used with a different request body",
            [
                FieldError(
                    ["header", "Idempotency-Key"],
                    "reuse a key only to retry the identical request; use a new key otherwise",
                )
            ],
        )
    assert stored.status_code is not None
    return Replay(stored.status_code, stored.response)


async def remember(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    scope: str,
    key: str,
    status_code: int,
    body: Any,
) -> None:
    """Store the response of a claimed key, in the same transaction as the request's effects."""
    await session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.tenant_id == tenant_id,
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
        )
        .values(status_code=status_code, response=body)
    )
