"""Identity endpoints: merge suggestions (look-alike buyers across platforms) and merges."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.deps import ClockDep, CurrentKey, ReadSession, Session
from app.lean_route import LeanRoute
from app.middleware import request_id_var
from app.problems import responses
from app.schemas.common import Cursor, Limit, Page
from app.schemas.identities import MergeOut, MergeRequest, MergeSuggestionOut
from app.services import identities

router = APIRouter(route_class=LeanRoute, prefix="/api/v1", tags=["identities"])


@router.get(
    "/merge-suggestions",
    summary="Customers who look like the same person on two platforms, with the evidence",
    responses=responses(401, 403, 422),
)
async def list_merge_suggestions(
    session: ReadSession,
    actor: CurrentKey,
    status: Annotated[Literal["open", "dismissed"] | None, Query()] = "open",
    customer_id: Annotated[uuid.UUID | None, Query(description="Involving this customer.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[MergeSuggestionOut]:
    rows, next_cursor = await identities.list_suggestions(
        session, actor, status, customer_id, limit, cursor
    )
    return Page(items=[MergeSuggestionOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/merge-suggestions/{suggestion_id}/dismiss",
    summary="Dismiss a suggestion: these are different people (it is not suggested again)",
    responses=responses(401, 403, 404),
)
async def dismiss_merge_suggestion(
    session: Session, actor: CurrentKey, clock: ClockDep, suggestion_id: uuid.UUID
) -> MergeSuggestionOut:
    suggestion = await identities.dismiss_suggestion(session, actor, suggestion_id, clock())
    return MergeSuggestionOut.model_validate(suggestion)


@router.post(
    "/customers/{customer_id}/merge",
    summary="Merge another customer into this one (identities, contacts, orders, history...)",
    tags=["customers"],
    responses=responses(401, 403, 404, 422),
)
async def merge_customer(
    session: Session, actor: CurrentKey, clock: ClockDep, customer_id: uuid.UUID, body: MergeRequest
) -> MergeOut:
    result = await identities.merge_customers(
        session, actor, customer_id, body.other_customer_id, clock(), request_id_var.get()
    )
    return MergeOut.model_validate(result)
