"""Ticket reports: volume and service times by dimension, NPS, most-complained-about products."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import ClockDep, CurrentKey, Session
from app.lean_route import LeanRoute
from app.problems import responses
from app.schemas.tickets import (
    NpsDimension,
    NpsReport,
    ProductReport,
    ReportDimension,
    SummaryReport,
    TicketKind,
)
from app.services.tickets import reports

# Reports use a transaction (not the autocommit read session) so that they can raise work_mem
# for their own sorts only (SET LOCAL).
router = APIRouter(route_class=LeanRoute, prefix="/api/v1/ticket-reports", tags=["ticket reports"])

After = Annotated[datetime | None, Query(description="Inclusive.")]
Before = Annotated[datetime | None, Query(description="Exclusive.")]


@router.get(
    "/summary",
    summary="Tickets, median first response / resolution minutes, SLA breach, reopen and CSAT "
    "by kind, category, channel, priority, staff or period",
    responses=responses(401, 403, 422),
)
async def summary(
    session: Session,
    actor: CurrentKey,
    clock: ClockDep,
    group_by: ReportDimension = ReportDimension.kind,
    created_after: After = None,
    created_before: Before = None,
) -> SummaryReport:
    return await reports.summary(session, actor, group_by, created_after, created_before, clock())


@router.get(
    "/nps",
    summary="NPS overall or by the answer's ticket category, assignee or channel",
    responses=responses(401, 403, 422),
)
async def nps(
    session: Session,
    actor: CurrentKey,
    group_by: NpsDimension = NpsDimension.none,
    recorded_after: After = None,
    recorded_before: Before = None,
) -> NpsReport:
    return await reports.nps(session, actor, group_by, recorded_after, recorded_before)


@router.get(
    "/products",
    summary="The products on the most tickets (complaints by default), through linked items",
    responses=responses(401, 403, 422),
)
async def products(
    session: Session,
    actor: CurrentKey,
    kind: TicketKind | None = TicketKind.complaint,
    created_after: After = None,
    created_before: Before = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> ProductReport:
    return await reports.top_products(session, actor, kind, created_after, created_before, limit)
