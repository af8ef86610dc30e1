"""Ticket endpoints: tickets, the SLA queue, transitions, comments, timeline, CSAT and NPS."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.deps import ClockDep, CurrentKey, IfMatch, ReadSession, Session
from app.lean_route import LeanRoute
from app.problems import responses
from app.schemas.common import Cursor, Limit, Page
from app.schemas.tickets import (
    CommentIn,
    NpsIn,
    NpsOut,
    Priority,
    SlaState,
    SurveyIn,
    SurveyOut,
    TicketChannel,
    TicketCreate,
    TicketEventOut,
    TicketKind,
    TicketOut,
    TicketStatus,
    TicketUpdate,
    TransitionIn,
)
from app.services.paging import etag
from app.services.tickets import surveys, tickets
from app.services.tickets.tickets import TicketFilters, TicketRecord

router = APIRouter(route_class=LeanRoute, prefix="/api/v1/tickets", tags=["tickets"])
nps_router = APIRouter(route_class=LeanRoute, prefix="/api/v1/nps-responses", tags=["tickets"])


def _with_etag(record: TicketRecord, response: Response) -> TicketOut:
    response.headers["ETag"] = etag(record.version)
    return record.ticket


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Open a ticket for a customer (optionally about an order and its items)",
    responses=responses(401, 403, 409, 422),
)
async def create_ticket(
    session: Session, actor: CurrentKey, clock: ClockDep, body: TicketCreate, response: Response
) -> TicketOut:
    record = await tickets.create_ticket(session, actor, body, clock())
    response.headers["Location"] = f"/api/v1/tickets/{record.ticket.id}"
    return _with_etag(record, response)


@router.get(
    "",
    summary="Find tickets (newest first), or the SLA queue (`sla=breached|at_risk`, most urgent "
    "first)",
    responses=responses(401, 403, 422),
)
async def list_tickets(
    session: ReadSession,
    actor: CurrentKey,
    clock: ClockDep,
    status_: Annotated[TicketStatus | None, Query(alias="status")] = None,
    kind: TicketKind | None = None,
    category: Annotated[str | None, Query(max_length=50)] = None,
    priority: Priority | None = None,
    channel: TicketChannel | None = None,
    assignee_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    order_id: uuid.UUID | None = None,
    created_after: Annotated[datetime | None, Query(description="Inclusive.")] = None,
    created_before: Annotated[datetime | None, Query(description="Exclusive.")] = None,
    sla: Annotated[
        SlaState | None,
        Query(
            description="`breached`: a running clock is past due; `at_risk`: one is due within "
            "the tenant's at-risk window. Paused (pending) and finished tickets never match."
        ),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[TicketOut]:
    filters = TicketFilters(
        status=status_,
        kind=kind.value if kind else None,
        category=category,
        priority=priority.value if priority else None,
        channel=channel.value if channel else None,
        assignee_id=assignee_id,
        customer_id=customer_id,
        order_id=order_id,
        created_after=created_after,
        created_before=created_before,
        sla=sla,
    )
    items, next_cursor = await tickets.list_tickets(session, actor, filters, limit, cursor, clock())
    return Page(items=items, next_cursor=next_cursor)


@router.get("/{ticket_id}", summary="Get a ticket", responses=responses(401, 403, 404))
async def get_ticket(
    session: ReadSession,
    actor: CurrentKey,
    clock: ClockDep,
    ticket_id: uuid.UUID,
    response: Response,
) -> TicketOut:
    return _with_etag(await tickets.get_ticket(session, actor, ticket_id, clock()), response)


@router.patch(
    "/{ticket_id}",
    summary="Update a ticket (assignee, priority, category, order link...); send `If-Match`",
    responses=responses(401, 403, 404, 409, 412, 422),
)
async def update_ticket(
    session: Session,
    actor: CurrentKey,
    clock: ClockDep,
    ticket_id: uuid.UUID,
    body: TicketUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> TicketOut:
    record = await tickets.update_ticket(session, actor, ticket_id, body, if_match, clock())
    return _with_etag(record, response)


@router.post(
    "/{ticket_id}/transitions",
    summary="Move a ticket to another status; 409 lists the transitions allowed from here",
    responses=responses(401, 403, 404, 409, 412, 422),
)
async def transition_ticket(
    session: Session,
    actor: CurrentKey,
    clock: ClockDep,
    ticket_id: uuid.UUID,
    body: TransitionIn,
    response: Response,
    if_match: IfMatch = None,
) -> TicketOut:
    record = await tickets.transition(session, actor, ticket_id, body, if_match, clock())
    return _with_etag(record, response)


@router.post(
    "/{ticket_id}/comments",
    status_code=status.HTTP_201_CREATED,
    summary="Reply to the customer (`public`) or leave a note for staff (`internal`)",
    responses=responses(401, 403, 404, 409, 422),
)
async def add_comment(
    session: Session, actor: CurrentKey, clock: ClockDep, ticket_id: uuid.UUID, body: CommentIn
) -> TicketEventOut:
    event = await tickets.add_comment(session, actor, ticket_id, body, clock())
    return TicketEventOut.model_validate(event)


@router.get(
    "/{ticket_id}/events",
    summary="The ticket's timeline, oldest first: who did what and when",
    responses=responses(401, 403, 404, 422),
)
async def list_events(
    session: ReadSession,
    actor: CurrentKey,
    ticket_id: uuid.UUID,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[TicketEventOut]:
    rows, next_cursor = await tickets.list_events(session, actor, ticket_id, limit, cursor)
    return Page(items=[TicketEventOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/{ticket_id}/survey",
    status_code=status.HTTP_201_CREATED,
    summary="Record the customer's satisfaction (CSAT 1-5) with a resolved ticket, once",
    responses=responses(401, 403, 404, 409, 422),
)
async def record_survey(
    session: Session, actor: CurrentKey, clock: ClockDep, ticket_id: uuid.UUID, body: SurveyIn
) -> SurveyOut:
    survey = await surveys.record_csat(session, actor, ticket_id, body, clock())
    return SurveyOut.model_validate(survey)


@router.get(
    "/{ticket_id}/survey",
    summary="The ticket's satisfaction answer",
    responses=responses(401, 403, 404),
)
async def get_survey(session: ReadSession, actor: CurrentKey, ticket_id: uuid.UUID) -> SurveyOut:
    return SurveyOut.model_validate(await surveys.get_csat(session, actor, ticket_id))


@nps_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Record a customer's NPS answer (0-10), optionally about a ticket",
    responses=responses(401, 403, 422),
)
async def record_nps(session: Session, actor: CurrentKey, clock: ClockDep, body: NpsIn) -> NpsOut:
    return NpsOut.model_validate(await surveys.record_nps(session, actor, body, clock()))


@nps_router.get(
    "",
    summary="NPS answers, newest first, optionally for one customer",
    responses=responses(401, 403, 422),
)
async def list_nps(
    session: ReadSession,
    actor: CurrentKey,
    customer_id: uuid.UUID | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[NpsOut]:
    rows, next_cursor = await surveys.list_nps(session, actor, customer_id, limit, cursor)
    return Page(items=[NpsOut.model_validate(r) for r in rows], next_cursor=next_cursor)
