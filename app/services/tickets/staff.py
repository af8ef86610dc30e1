"""Service staff: the people tickets are assigned to, and which API key acts as whom."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.models import ApiKey, TicketStaff
from app.models.base import new_id
from app.schemas.tickets import StaffCreate, StaffUpdate
from app.services.auth import Principal
from app.services.paging import check_if_match, cursor_id, encode_cursor


@dataclass(frozen=True)
class Actor:
    """Who a timeline entry is attributed to: the staff member behind the key, else the key."""

    key_id: uuid.UUID | None
    staff_id: uuid.UUID | None
    name: str


async def actor_of(session: AsyncSession, principal: Principal) -> Actor:
    staff = await session.scalar(
        select(TicketStaff).where(
            TicketStaff.tenant_id == principal.tenant_id,
            TicketStaff.api_key_id == principal.key_id,
        )
    )
    if staff is None:
        return Actor(principal.key_id, None, principal.key_name)
    return Actor(principal.key_id, staff.id, staff.name)


async def _check_key(session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
    if await session.get(ApiKey, (tenant_id, key_id)) is None:
        raise ValidationFailed(
            "unknown API key", [FieldError(["body", "api_key_id"], "no such API key")]
        )
    taken = await session.scalar(
        select(TicketStaff.id).where(
            TicketStaff.tenant_id == tenant_id, TicketStaff.api_key_id == key_id
        )
    )
    if taken is not None:
        raise Conflict(
            "this API key already acts as another staff member", extra={"staff_id": str(taken)}
        )


async def create_staff(
    session: AsyncSession, actor: Principal, data: StaffCreate, now: datetime
) -> TicketStaff:
    actor.require("tickets:manage")
    if data.api_key_id is not None:
        await _check_key(session, actor.tenant_id, data.api_key_id)
    staff = TicketStaff(
        tenant_id=actor.tenant_id,
        id=new_id(),
        name=data.name,
        team=data.team,
        active=data.active,
        api_key_id=data.api_key_id,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(staff)
    await session.flush()
    return staff


async def get_staff(session: AsyncSession, actor: Principal, staff_id: uuid.UUID) -> TicketStaff:
    actor.require("tickets:read")
    staff = await session.get(TicketStaff, (actor.tenant_id, staff_id))
    if staff is None:
        raise NotFound("no such staff member")
    return staff


async def list_staff(
    session: AsyncSession,
    actor: Principal,
    active: bool | None,
    team: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[TicketStaff], str | None]:
    actor.require("tickets:read")
    query = select(TicketStaff).where(TicketStaff.tenant_id == actor.tenant_id)
    if active is not None:
        query = query.where(TicketStaff.active == active)
    if team is not None:
        query = query.where(TicketStaff.team == team)
    if cursor:
        query = query.where(TicketStaff.id > cursor_id(cursor))
    rows = (await session.scalars(query.order_by(TicketStaff.id).limit(limit + 1))).all()
    page = rows[:limit]
    return page, encode_cursor({"id": str(page[-1].id)}) if len(rows) > limit else None


async def update_staff(
    session: AsyncSession,
    actor: Principal,
    staff_id: uuid.UUID,
    data: StaffUpdate,
    if_match: str | None,
    now: datetime,
) -> TicketStaff:
    actor.require("tickets:manage")
    staff = await session.get(TicketStaff, (actor.tenant_id, staff_id), with_for_update=True)
    if staff is None:
        raise NotFound("no such staff member")
    check_if_match(if_match, staff.version)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("name", "") is None or changes.get("active", False) is None:
        raise ValidationFailed(
            "name and active cannot be null",
            [FieldError(["body", k], "cannot be null") for k in ("name", "active") if k in changes],
        )
    new_key = changes.get("api_key_id")
    if new_key is not None and new_key != staff.api_key_id:
        await _check_key(session, actor.tenant_id, new_key)
    for name, value in changes.items():
        setattr(staff, name, value)
    staff.version += 1
    staff.updated_at = now
    await session.flush()
    return staff


async def ensure_assignable(
    session: AsyncSession, tenant_id: uuid.UUID, staff_id: uuid.UUID, loc: list[str | int]
) -> None:
    staff = await session.get(TicketStaff, (tenant_id, staff_id))
    if staff is None:
        raise ValidationFailed("unknown assignee", [FieldError(loc, "no such staff member")])
    if not staff.active:
        raise ValidationFailed(
            "inactive assignee", [FieldError(loc, "this staff member is not active")]
        )
