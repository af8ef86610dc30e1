"""Ticket set-up endpoints: service staff, categories, SLA policies, calendar and settings."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from app.deps import ClockDep, CurrentKey, IfMatch, ReadSession, Session
from app.lean_route import LeanRoute
from app.problems import responses
from app.schemas.common import Cursor, Limit, Page
from app.schemas.tickets import (
    CategoryCreate,
    CategoryOut,
    CategoryUpdate,
    Priority,
    SlaPolicyIn,
    SlaPolicyOut,
    StaffCreate,
    StaffOut,
    StaffUpdate,
    TicketSettingsIn,
    TicketSettingsOut,
)
from app.services.paging import etag
from app.services.tickets import categories, config, staff

staff_router = APIRouter(route_class=LeanRoute, prefix="/api/v1/staff", tags=["ticket set-up"])
category_router = APIRouter(
    route_class=LeanRoute, prefix="/api/v1/ticket-categories", tags=["ticket set-up"]
)
sla_router = APIRouter(route_class=LeanRoute, prefix="/api/v1/sla-policies", tags=["ticket set-up"])
settings_router = APIRouter(
    route_class=LeanRoute, prefix="/api/v1/ticket-settings", tags=["ticket set-up"]
)


@staff_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a service staff member (optionally the person behind an API key)",
    responses=responses(401, 403, 409, 422),
)
async def create_staff(
    session: Session, actor: CurrentKey, clock: ClockDep, body: StaffCreate, response: Response
) -> StaffOut:
    member = await staff.create_staff(session, actor, body, clock())
    response.headers["Location"] = f"/api/v1/staff/{member.id}"
    response.headers["ETag"] = etag(member.version)
    return StaffOut.model_validate(member)


@staff_router.get("", summary="List service staff", responses=responses(401, 403, 422))
async def list_staff(
    session: ReadSession,
    actor: CurrentKey,
    active: bool | None = None,
    team: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[StaffOut]:
    rows, next_cursor = await staff.list_staff(session, actor, active, team, limit, cursor)
    return Page(items=[StaffOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@staff_router.get("/{staff_id}", summary="Get a staff member", responses=responses(401, 403, 404))
async def get_staff(
    session: ReadSession, actor: CurrentKey, staff_id: uuid.UUID, response: Response
) -> StaffOut:
    member = await staff.get_staff(session, actor, staff_id)
    response.headers["ETag"] = etag(member.version)
    return StaffOut.model_validate(member)


@staff_router.patch(
    "/{staff_id}",
    summary="Update a staff member (deactivate instead of deleting)",
    responses=responses(401, 403, 404, 409, 412, 422),
)
async def update_staff(
    session: Session,
    actor: CurrentKey,
    clock: ClockDep,
    staff_id: uuid.UUID,
    body: StaffUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> StaffOut:
    member = await staff.update_staff(session, actor, staff_id, body, if_match, clock())
    response.headers["ETag"] = etag(member.version)
    return StaffOut.model_validate(member)


@category_router.get(
    "",
    summary="The ticket category catalogue (defaults until you change it)",
    responses=responses(401, 403),
)
async def list_categories(
    session: Session, actor: CurrentKey, include_inactive: bool = False
) -> list[CategoryOut]:
    rows = await categories.list_categories(session, actor, include_inactive)
    return [CategoryOut.model_validate(r) for r in rows]


@category_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a category",
    responses=responses(401, 403, 409, 422),
)
async def create_category(session: Session, actor: CurrentKey, body: CategoryCreate) -> CategoryOut:
    return CategoryOut.model_validate(await categories.create_category(session, actor, body))


@category_router.patch(
    "/{code}",
    summary="Rename, reorder or retire a category (its code is permanent)",
    responses=responses(401, 403, 404, 422),
)
async def update_category(
    session: Session, actor: CurrentKey, code: str, body: CategoryUpdate
) -> CategoryOut:
    return CategoryOut.model_validate(await categories.update_category(session, actor, code, body))


@sla_router.get("", summary="SLA targets for each priority", responses=responses(401, 403))
async def list_policies(session: ReadSession, actor: CurrentKey) -> list[SlaPolicyOut]:
    return await config.list_policies(session, actor)


@sla_router.put(
    "/{priority}",
    summary="Set a priority's first-response and resolution targets (for new due times)",
    responses=responses(401, 403, 422),
)
async def put_policy(
    session: Session,
    actor: CurrentKey,
    priority: Annotated[Priority, Path()],
    body: SlaPolicyIn,
) -> SlaPolicyOut:
    return await config.put_policy(session, actor, priority, body)


@settings_router.get(
    "",
    summary="Business calendar, reopen window and at-risk horizon",
    responses=responses(401, 403),
)
async def get_settings(
    session: ReadSession, actor: CurrentKey, response: Response
) -> TicketSettingsOut:
    settings, version = await config.get_settings(session, actor)
    response.headers["ETag"] = etag(version)
    return settings


@settings_router.put(
    "",
    summary="Replace the business calendar and ticket settings; send `If-Match`",
    responses=responses(401, 403, 412, 422),
)
async def put_settings(
    session: Session,
    actor: CurrentKey,
    body: TicketSettingsIn,
    response: Response,
    if_match: IfMatch = None,
) -> TicketSettingsOut:
    settings, version = await config.put_settings(session, actor, body, if_match)
    response.headers["ETag"] = etag(version)
    return settings
