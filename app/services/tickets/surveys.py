"""Satisfaction: a CSAT answer per resolved ticket, NPS answers per customer at any time."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.models import NpsResponse, Ticket, TicketSurvey
from app.models.base import new_id
from app.schemas.tickets import NpsIn, SurveyIn, TicketStatus
from app.services.auth import Principal
from app.services.customers import ensure_body_customer
from app.services.paging import cursor_id, encode_cursor
from app.services.tickets.staff import actor_of
from app.services.tickets.tickets import _event

ANSWERABLE = (TicketStatus.resolved.value, TicketStatus.closed.value)


async def record_csat(
    session: AsyncSession,
    principal: Principal,
    ticket_id: uuid.UUID,
    data: SurveyIn,
    now: datetime,
) -> TicketSurvey:
    """One answer per ticket, once it is resolved; a second answer is a conflict."""
    principal.require("tickets:write")
    ticket = await session.get(Ticket, (principal.tenant_id, ticket_id), with_for_update=True)
    if ticket is None:
        raise NotFound("no such ticket")
    if ticket.status not in ANSWERABLE:
        raise Conflict(
            "a satisfaction survey is taken once the ticket is resolved",
            extra={"status": ticket.status},
        )
    if await session.get(TicketSurvey, (principal.tenant_id, ticket_id)) is not None:
        raise Conflict("this ticket's survey was already answered")
    survey = TicketSurvey(
        tenant_id=principal.tenant_id,
        ticket_id=ticket_id,
        score=data.score,
        comment=data.comment,
        recorded_at=now,
    )
    session.add(survey)
    ticket.csat_score = data.score
    actor = await actor_of(session, principal)
    _event(session, ticket, actor, "survey_answered", {"score": data.score}, now)
    await session.flush()
    return survey


async def get_csat(session: AsyncSession, actor: Principal, ticket_id: uuid.UUID) -> TicketSurvey:
    actor.require("tickets:read")
    if await session.get(Ticket, (actor.tenant_id, ticket_id)) is None:
        raise NotFound("no such ticket")
    survey = await session.get(TicketSurvey, (actor.tenant_id, ticket_id))
    if survey is None:
        raise NotFound("this ticket has no survey answer yet")
    return survey


async def record_nps(
    session: AsyncSession, principal: Principal, data: NpsIn, now: datetime
) -> NpsResponse:
    principal.require("tickets:write")
    tenant_id = principal.tenant_id
    await ensure_body_customer(session, tenant_id, data.customer_id)
    if data.ticket_id is not None:
        ticket = await session.get(Ticket, (tenant_id, data.ticket_id))
        if ticket is None or ticket.customer_id != data.customer_id:
            raise ValidationFailed(
                "unknown ticket",
                [FieldError(["body", "ticket_id"], "no such ticket for this customer")],
            )
    response = NpsResponse(
        tenant_id=tenant_id,
        id=new_id(),
        customer_id=data.customer_id,
        ticket_id=data.ticket_id,
        score=data.score,
        comment=data.comment,
        channel=data.channel.value if data.channel else None,
        recorded_at=now,
    )
    session.add(response)
    await session.flush()
    return response


async def list_nps(
    session: AsyncSession,
    actor: Principal,
    customer_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[NpsResponse], str | None]:
    """Newest first."""
    actor.require("tickets:read")
    query = select(NpsResponse).where(NpsResponse.tenant_id == actor.tenant_id)
    if customer_id is not None:
        query = query.where(NpsResponse.customer_id == customer_id)
    if cursor:
        query = query.where(NpsResponse.id < cursor_id(cursor))
    rows = (await session.scalars(query.order_by(NpsResponse.id.desc()).limit(limit + 1))).all()
    page = rows[:limit]
    return page, encode_cursor({"id": str(page[-1].id)}) if len(rows) > limit else None
