"""Personal-data access: audited reveals and the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import Vault
from app.models import AuditEvent
from app.models.base import new_id, utcnow
from app.schemas.customers import RevealOut
from app.services.auth import Principal
from app.services.customers import get_customer
from app.services.paging import cursor_id, encode_cursor


async def record(
    session: AsyncSession,
    actor: Principal,
    action: str,
    resource_type: str,
    resource_id: uuid.UUID | None,
    fields: Sequence[str] = (),
    request_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        tenant_id=actor.tenant_id,
        id=new_id(),
        api_key_id=actor.key_id,
        role=actor.role.value,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        fields=list(fields),
        request_id=request_id,
        details=details or {},
        at=utcnow(),
    )
    session.add(event)
    await session.flush()
    return event


async def reveal_customer(
    session: AsyncSession,
    vault: Vault,
    actor: Principal,
    customer_id: uuid.UUID,
    fields: Sequence[str],
    reason: str | None,
    request_id: str | None,
) -> RevealOut:
    """The customer's personal data in clear, written to the audit trail in the same transaction."""
    actor.require("customers:reveal")
    profile = (await get_customer(session, vault, actor, customer_id, clear=True)).profile
    await record(
        session,
        actor,
        "reveal",
        "customer",
        customer_id,
        fields,
        request_id,
        {"reason": reason} if reason else None,
    )
    return RevealOut(
        customer_id=customer_id,
        phones=profile.phones if "phones" in fields else None,
        emails=profile.emails if "emails" in fields else None,
        addresses=profile.addresses if "addresses" in fields else None,
    )


async def list_audit_events(
    session: AsyncSession,
    actor: Principal,
    resource_id: uuid.UUID | None,
    action: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[AuditEvent], str | None]:
    actor.require("audit:read")
    query = select(AuditEvent).where(AuditEvent.tenant_id == actor.tenant_id)
    if resource_id is not None:
        query = query.where(AuditEvent.resource_id == resource_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if cursor:
        query = query.where(AuditEvent.id < cursor_id(cursor))
    rows = (await session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1))).all()
    page = rows[:limit]
    return page, encode_cursor({"id": str(page[-1].id)}) if len(rows) > limit else None
