"""Interactions: notes, calls, chats, visits, messages and emails on a customer's timeline."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import FieldError, ValidationFailed
from app.models import Interaction
from app.models.base import new_id
from app.schemas.customers import InteractionCreate
from app.services.auth import Principal
from app.services.customers import ensure_customer
from app.services.paging import cursor_values, encode_cursor


async def add_interaction(
    session: AsyncSession,
    actor: Principal,
    customer_id: uuid.UUID,
    data: InteractionCreate,
    now: datetime,
) -> Interaction:
    actor.require("customers:write")
    await ensure_customer(session, actor.tenant_id, customer_id)
    interaction = Interaction(
        tenant_id=actor.tenant_id,
        id=new_id(),
        customer_id=customer_id,
        kind=data.kind.value,
        channel=data.channel,
        content=data.content,
        actor=data.actor or actor.key_name,
        api_key_id=actor.key_id,
        occurred_at=data.occurred_at or now,
        created_at=now,
    )
    session.add(interaction)
    await session.flush()
    return interaction


async def list_interactions(
    session: AsyncSession,
    actor: Principal,
    customer_id: uuid.UUID,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[Interaction], str | None]:
    """The timeline, most recent first."""
    actor.require("customers:read")
    await ensure_customer(session, actor.tenant_id, customer_id)
    query = select(Interaction).where(
        Interaction.tenant_id == actor.tenant_id, Interaction.customer_id == customer_id
    )
    if cursor:
        at, last_id = cursor_values(cursor, "at", "id")
        try:
            position = (datetime.fromisoformat(at), uuid.UUID(last_id))
        except ValueError as exc:
            raise ValidationFailed(
                "invalid cursor", [FieldError(["query", "cursor"], "not one of ours")]
            ) from exc
        query = query.where(tuple_(Interaction.occurred_at, Interaction.id) < position)
    rows = (
        await session.scalars(
            query.order_by(Interaction.occurred_at.desc(), Interaction.id.desc()).limit(limit + 1)
        )
    ).all()
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = (
        encode_cursor({"at": page[-1].occurred_at.isoformat(), "id": str(page[-1].id)})
        if more
        else None
    )
    return page, next_cursor
