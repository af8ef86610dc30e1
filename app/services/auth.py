"""API keys, roles and what each role may do; key verification with a short-lived cache."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.errors import FieldError, NotFound, PermissionDenied, Unauthenticated, ValidationFailed
from app.models import ApiKey, Tenant
from app.models.base import new_id, utcnow


class Role(StrEnum):
    owner = "owner"
    admin = "admin"
    agent = "agent"
    analyst = "analyst"
    importer = "importer"


ALL = frozenset(Role)
STAFF = frozenset({Role.owner, Role.admin, Role.agent})
READERS = frozenset({Role.owner, Role.admin, Role.agent, Role.analyst})
MANAGERS = frozenset({Role.owner, Role.admin})

PERMISSIONS: dict[str, frozenset[Role]] = {
    "keys:manage": MANAGERS,
    "audit:read": MANAGERS,
    "shops:read": ALL,
    "shops:write": MANAGERS,
    "customers:read": READERS,
    "customers:write": STAFF,
    "customers:merge": MANAGERS,
    "customers:reveal": STAFF,
    "pii:unmasked": MANAGERS,
    "orders:read": READERS,
    "orders:import": frozenset({Role.owner, Role.admin, Role.importer}),
    "imports:read": frozenset({Role.owner, Role.admin, Role.importer, Role.analyst}),
    "loyalty:read": READERS,
    "loyalty:redeem": STAFF,
    "loyalty:adjust": MANAGERS,
    "loyalty:reverse": MANAGERS,
    "loyalty:program": MANAGERS,
    "segments:read": READERS,
    "segments:write": frozenset({Role.owner, Role.admin, Role.analyst}),
    "segments:export": frozenset({Role.owner, Role.admin, Role.analyst}),
    "segments:configure": MANAGERS,
    "analytics:read": READERS,
    "tickets:read": READERS,
    "tickets:write": STAFF,
    "tickets:manage": MANAGERS,
    "tickets:reports": READERS,
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant, the API key and its role."""

    tenant_id: uuid.UUID
    key_id: uuid.UUID
    role: Role
    key_name: str

    def can(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise PermissionDenied(f"the {self.role} role may not do this ({permission})")


_PREFIX = "kz_"
_ID_HEX = 64  # tenant id + key id, 32 hex characters each


def _hash_secret(secret: str) -> bytes:
    # Keys are 256-bit random tokens, so a fast hash is as safe as a slow one and keeps auth cheap.
    return hashlib.sha256(secret.encode()).digest()


def _format_key(tenant_id: uuid.UUID, key_id: uuid.UUID, secret: str) -> str:
    return f"{_PREFIX}{tenant_id.hex}{key_id.hex}_{secret}"


def _parse_key(key: str) -> tuple[uuid.UUID, uuid.UUID, str] | None:
    body = key[len(_PREFIX) :]
    if not key.startswith(_PREFIX) or len(body) < _ID_HEX + 2 or body[_ID_HEX] != "_":
        return None
    try:
        tenant_id, key_id = uuid.UUID(body[:32]), uuid.UUID(body[32:_ID_HEX])
    except ValueError:
        return None
    return tenant_id, key_id, body[_ID_HEX + 1 :]


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str


async def issue_key(
    session: AsyncSession, tenant_id: uuid.UUID, name: str, role: Role
) -> IssuedKey:
    key_id, secret = new_id(), secrets.token_urlsafe(32)
    row = ApiKey(
        tenant_id=tenant_id,
        id=key_id,
        name=name,
        role=role.value,
        secret_hash=_hash_secret(secret),
        hint=secret[-4:],
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return IssuedKey(row, _format_key(tenant_id, key_id, secret))


async def create_tenant(session: AsyncSession, name: str) -> tuple[Tenant, IssuedKey]:
    """A new tenant with its first owner key."""
    tenant = Tenant(id=new_id(), name=name, created_at=utcnow())
    session.add(tenant)
    await session.flush()
    return tenant, await issue_key(session, tenant.id, f"{name} owner", Role.owner)


def _check_grant(actor: Principal, role: Role) -> None:
    if role is Role.owner and actor.role is not Role.owner:
        raise PermissionDenied("only an owner key may create or revoke owner keys")


async def create_key(session: AsyncSession, actor: Principal, name: str, role: Role) -> IssuedKey:
    actor.require("keys:manage")
    _check_grant(actor, role)
    return await issue_key(session, actor.tenant_id, name, role)


async def list_keys(session: AsyncSession, actor: Principal) -> list[ApiKey]:
    actor.require("keys:manage")
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.tenant_id == actor.tenant_id).order_by(ApiKey.id)
    )
    return list(rows)


async def revoke_key(session: AsyncSession, actor: Principal, key_id: uuid.UUID) -> ApiKey:
    actor.require("keys:manage")
    key = await session.get(ApiKey, (actor.tenant_id, key_id))
    if key is None:
        raise NotFound("no such API key")
    _check_grant(actor, Role(key.role))
    if key.id == actor.key_id:
        raise ValidationFailed(
            "a key cannot revoke itself",
            [FieldError(["path", "key_id"], "this is the calling key")],
        )
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
    return key


class KeyVerifier:
    """Checks bearer keys against the database, trusting a verified key for a few seconds.

    The cache keeps the hot read path at one database round trip; a revoked key stops working
    at once in the process that revoked it and within `ttl` seconds everywhere else. When a
    key's entry expires, the requests that find it expired at the same moment share one look-up
    instead of each sending its own (under load, every in-flight request of a busy key used to
    miss together once per `ttl`, and their look-ups queued together for the pool).
    """

    def __init__(self, engine: AsyncEngine, ttl: float) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._pending: dict[str, asyncio.Task[Principal]] = {}
        self._forgotten = 0  # bumped by `forget`: a look-up begun before it is not cached

    def forget(self, key_id: uuid.UUID) -> None:
        self._forgotten += 1
        for token, (_, principal) in list(self._cache.items()):
            if principal.key_id == key_id:
                del self._cache[token]

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._pending.get(token)
        if pending is None:
            pending = asyncio.create_task(self._lookup_and_cache(token, self._forgotten))
            self._pending[token] = pending
            pending.add_done_callback(lambda _: self._pending.pop(token, None))
        # Shielded: a caller that goes away (client disconnect) does not cancel the others'.
        return await asyncio.shield(pending)

    async def _lookup_and_cache(self, token: str, forgotten: int) -> Principal:
        principal = await self._lookup(token)
        if forgotten == self._forgotten:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = (time.monotonic() + self._ttl, principal)
        return principal

    async def _lookup(self, token: str) -> Principal:
        parsed = _parse_key(token)
        if parsed is None:
            raise Unauthenticated("malformed API key")
        tenant_id, key_id, secret = parsed
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(ApiKey.role, ApiKey.name, ApiKey.secret_hash, ApiKey.revoked_at).where(
                        ApiKey.tenant_id == tenant_id, ApiKey.id == key_id
                    )
                )
            ).first()
        if row is None or not hmac.compare_digest(row.secret_hash, _hash_secret(secret)):
            raise Unauthenticated("unknown API key")
        if row.revoked_at is not None:
            raise Unauthenticated("this API key was revoked")
        return Principal(tenant_id, key_id, Role(row.role), row.name)


async def any_tenant(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(exists().where(Tenant.id.is_not(None)))))
