"""Loyalty endpoints: accounts and entries, redemptions and adjustments, reversals, program
settings, tiers, expiring points and the monthly report."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from app.deps import ClockDep, CurrentKey, IfMatch, ReadSession, Session
from app.lean_route import LeanRoute
from app.problems import responses
from app.schemas.common import Cursor, Limit, Page
from app.schemas.loyalty import (
    AccountOut,
    AdjustmentIn,
    EntryOut,
    ExpiringLot,
    MonthReport,
    PointsIn,
    ProgramIn,
    ProgramOut,
    ReferralIn,
    ReverseIn,
    ScheduledProgram,
    TierOut,
)
from app.services.loyalty import accounts, program, reports
from app.services.paging import etag

router = APIRouter(route_class=LeanRoute, prefix="/api/v1/loyalty", tags=["loyalty"])

IdempotencyKeyHeader = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        description="Required. A retry with the same key and body returns the first result; "
        "the same key with another body is 422.",
        examples=["redeem-7f3c2a"],
    ),
]
WithinDays = Annotated[int, Query(ge=1, le=366, description="Expiring before now + this.")]

_ENTRY_EXAMPLE = {
    "id": "01937b9e-7f4e-7a3c-9c1d-2b8e4f6a1c00",
    "customer_id": "01937b9e-1111-7a3c-9c1d-2b8e4f6a1c00",
    "kind": "redeem",
    "points": -200,
    "balance_after": 350,
    "shortfall": 0,
    "source_type": "redemption",
    "source_id": None,
    "related_entry_id": None,
    "actor": "门店收银",
    "reason": "兑换 20 元优惠券",
    "created_at": "2026-11-26T03:00:00+00:00",
}


def _created(example: dict[str, object]) -> dict[int | str, dict[str, object]]:
    return {201: {"content": {"application/json": {"example": example}}}}


@router.get(
    "/accounts/{customer_id}",
    summary="A customer's points: balance, pending, tier, next tier and points expiring soon",
    responses=responses(401, 403, 404),
)
async def get_account(
    session: ReadSession, actor: CurrentKey, clock: ClockDep, customer_id: uuid.UUID
) -> AccountOut:
    return await accounts.get_account(session, actor, customer_id, clock())


@router.get(
    "/accounts/{customer_id}/entries",
    summary="The account's ledger entries, newest first",
    responses=responses(401, 403, 404, 422),
)
async def list_entries(
    session: ReadSession,
    actor: CurrentKey,
    customer_id: uuid.UUID,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[EntryOut]:
    rows, next_cursor = await accounts.list_entries(session, actor, customer_id, limit, cursor)
    return Page(items=[EntryOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/accounts/{customer_id}/expiring",
    summary="The customer's lots that expire soon, soonest first",
    responses=responses(401, 403, 404, 422),
)
async def list_account_expiring(
    session: ReadSession,
    actor: CurrentKey,
    clock: ClockDep,
    customer_id: uuid.UUID,
    within_days: WithinDays = 30,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ExpiringLot]:
    items, next_cursor = await accounts.list_expiring(
        session, actor, within_days, customer_id, limit, cursor, clock()
    )
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/accounts/{customer_id}/redemptions",
    status_code=status.HTTP_201_CREATED,
    summary="Redeem points (oldest first); 409 with `balance` when there are not enough",
    responses={**responses(401, 403, 404, 409, 422), **_created(_ENTRY_EXAMPLE)},
)
async def redeem(
    session: Session,
    actor: CurrentKey,
    clock: ClockDep,
    customer_id: uuid.UUID,
    body: PointsIn,
    idempotency_key: IdempotencyKeyHeader,
) -> EntryOut:
    return await accounts.redeem(session, actor, customer_id, body, idempotency_key, clock())


@router.post(
    "/accounts/{customer_id}/adjustments",
    status_code=status.HTTP_201_CREATED,
    summary="Credit or debit points by hand, with a reason",
    responses={
        **responses(401, 403, 404, 409, 422),
        **_created(
            _ENTRY_EXAMPLE
            | {"kind": "adjust", "points": 500, "source_type": "admin", "reason": "补发积分"}
        ),
    },
)
async def adjust(
    session: Session,
    actor: CurrentKey,
    clock: ClockDep,
    customer_id: uuid.UUID,
    body: AdjustmentIn,
    idempotency_key: IdempotencyKeyHeader,
) -> EntryOut:
    return await accounts.adjust(session, actor, customer_id, body, idempotency_key, clock())


@router.post(
    "/entries/{entry_id}/reverse",
    status_code=status.HTTP_201_CREATED,
    summary="Reverse an entry (once; asking again returns the first reversal with 200)",
    responses={
        **responses(401, 403, 404, 409, 422),
        200: {"description": "Already reversed: the existing reversal"},
    },
)
async def reverse_entry(
    session: Session,
    actor: CurrentKey,
    clock: ClockDep,
    entry_id: uuid.UUID,
    body: ReverseIn,
    response: Response,
) -> EntryOut:
    entry, created = await accounts.reverse_entry(session, actor, entry_id, body.reason, clock())
    if not created:
        response.status_code = status.HTTP_200_OK
    return entry


@router.post(
    "/referrals",
    status_code=status.HTTP_201_CREATED,
    summary="Pay the referral bonus to the referrer (once per referred customer)",
    responses=responses(401, 403, 404, 409, 422),
)
async def refer(session: Session, actor: CurrentKey, clock: ClockDep, body: ReferralIn) -> EntryOut:
    return await accounts.refer(session, actor, body, clock())


@router.get(
    "/expiring",
    summary="Points expiring soon across all customers, soonest first (for reminders)",
    responses=responses(401, 403, 422),
)
async def list_expiring(
    session: ReadSession,
    actor: CurrentKey,
    clock: ClockDep,
    within_days: WithinDays = 30,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ExpiringLot]:
    items, next_cursor = await accounts.list_expiring(
        session, actor, within_days, None, limit, cursor, clock()
    )
    return Page(items=items, next_cursor=next_cursor)


def _program_out(current: program.Program, scheduled: list[program.Program]) -> ProgramOut:
    return ProgramOut(
        **current.settings.model_dump(),
        version=current.version,
        effective_from=current.effective_from,
        scheduled=[
            ScheduledProgram(version=p.version, effective_from=p.effective_from) for p in scheduled
        ],
    )


@router.get(
    "/program",
    summary="The program in force (and versions scheduled later); `ETag` for `PUT`",
    responses=responses(401, 403),
)
async def get_program(
    session: ReadSession, actor: CurrentKey, clock: ClockDep, response: Response
) -> ProgramOut:
    current, scheduled, latest = await program.get_program(session, actor, clock())
    response.headers["ETag"] = etag(latest)
    return _program_out(current, scheduled)


@router.put(
    "/program",
    summary="Save a new program version, effective now or later; past entries never change",
    responses=responses(401, 403, 409, 412, 422),
)
async def put_program(
    session: Session,
    actor: CurrentKey,
    clock: ClockDep,
    body: ProgramIn,
    response: Response,
    if_match: IfMatch = None,
) -> ProgramOut:
    now = clock()
    saved = await program.put_program(session, actor, body, if_match, now)
    response.headers["ETag"] = etag(saved.version)
    current = await program.current_program(session, actor.tenant_id, now)
    return _program_out(current, await program.scheduled_programs(session, actor.tenant_id, now))


@router.get(
    "/tiers",
    summary="The tiers in force, with their thresholds, multipliers, benefits and member counts",
    responses=responses(401, 403),
)
async def list_tiers(session: ReadSession, actor: CurrentKey, clock: ClockDep) -> list[TierOut]:
    return await accounts.list_tiers(session, actor, clock())


@router.get(
    "/reports/monthly",
    summary="Points issued, redeemed, expired, reversed and outstanding liability per month",
    responses=responses(401, 403, 422),
)
async def monthly_report(
    session: ReadSession,
    actor: CurrentKey,
    since: Annotated[
        str | None, Query(pattern=r"^\d{4}-\d{2}$", description="First month, YYYY-MM.")
    ] = None,
    until: Annotated[
        str | None, Query(pattern=r"^\d{4}-\d{2}$", description="Last month, YYYY-MM.")
    ] = None,
) -> list[MonthReport]:
    return await reports.monthly(session, actor, since, until)
