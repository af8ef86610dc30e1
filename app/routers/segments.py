"""Segment endpoints: the filter language's fields, previews, saved segments, members, export,
lifecycle thresholds and product category rules."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Response, status
from fastapi.responses import StreamingResponse

from app.deps import ClockDep, CurrentKey, IfMatch, ReadSession, RuntimeDep, Session, VaultDep
from app.lean_route import LeanRoute
from app.models import Segment
from app.problems import responses
from app.schemas.common import Cursor, Limit, Page
from app.schemas.segments import (
    CategoryRuleIn,
    CategoryRuleOut,
    FieldOut,
    FieldsOut,
    MemberOut,
    MemberSort,
    PreviewIn,
    PreviewOut,
    SegmentCreate,
    SegmentOut,
    SegmentUpdate,
    SizeHistoryOut,
    SizePoint,
    ThresholdsIn,
    ThresholdsOut,
)
from app.services.paging import etag
from app.services.segments import compiler, jobs, rules, saved
from app.services.segments.fields import FIELDS
from app.services.segments.rules import Thresholds

router = APIRouter(route_class=LeanRoute, prefix="/api/v1/segments", tags=["segments"])

Sort = Annotated[MemberSort, Query(description="Order members by this fact (then by id).")]
Descending = Annotated[bool, Query(description="Largest / latest first.")]


def _segment(segment: Segment, response: Response) -> SegmentOut:
    response.headers["ETag"] = etag(segment.version)
    return SegmentOut.model_validate(segment)


@router.get("/fields", summary="Every filterable field with its type and operators")
async def list_fields(actor: CurrentKey) -> FieldsOut:
    actor.require("segments:read")
    return FieldsOut(
        fields=[
            FieldOut(
                name=f.name,
                type=f.type.value,
                group=f.group,
                description=f.description,
                operators=list(f.operators),
                choices=list(f.choices) if f.choices else None,
            )
            for f in FIELDS.values()
        ],
        ordered=list(compiler.ORDERED_KEYS),
        limits={
            "max_depth": compiler.MAX_DEPTH,
            "max_nodes": compiler.MAX_NODES,
            "max_list": compiler.MAX_LIST,
            "max_string": compiler.MAX_STRING,
        },
    )


@router.post(
    "/preview",
    summary="Count the customers a filter matches and return the first page",
    responses=responses(401, 403, 422),
)
async def preview(
    session: ReadSession,
    runtime: RuntimeDep,
    actor: CurrentKey,
    clock: ClockDep,
    body: PreviewIn,
    response: Response,
    limit: Limit = 50,
    cursor: Cursor = None,
    sort: Sort = MemberSort.newest,
    descending: Descending = True,
) -> PreviewOut:
    result = await saved.preview(
        session, actor, body.filter, clock(), limit, cursor, sort, descending, runtime.member_frames
    )
    # Where the count came from, for anyone timing previews (browser devtools show it).
    source = "memory" if result.from_memory else "database"
    response.headers["Server-Timing"] = f'count;desc="{source}"'
    return PreviewOut(
        count=result.count,
        items=result.items,
        next_cursor=result.next_cursor,
    )


@router.get("/settings", summary="Lifecycle thresholds (N, K, X, Y)", responses=responses(401, 403))
async def get_settings(
    session: ReadSession, actor: CurrentKey, response: Response
) -> ThresholdsOut:
    values = await rules.get_thresholds(session, actor)
    response.headers["ETag"] = etag(values.version)
    return ThresholdsOut(
        new_days=values.new_days,
        loyal_orders=values.loyal_orders,
        at_risk_days=values.at_risk_days,
        churned_days=values.churned_days,
    )


@router.put(
    "/settings",
    summary="Replace the lifecycle thresholds; stages move on the recompute this queues",
    responses=responses(401, 403, 412, 422),
)
async def put_settings(
    session: Session,
    runtime: RuntimeDep,
    actor: CurrentKey,
    body: ThresholdsIn,
    response: Response,
    background: BackgroundTasks,
    if_match: IfMatch = None,
) -> ThresholdsOut:
    values = await rules.set_thresholds(
        session,
        actor,
        Thresholds(body.new_days, body.loyal_orders, body.at_risk_days, body.churned_days),
        if_match,
    )
    background.add_task(jobs.schedule_recompute, runtime, actor.tenant_id)
    response.headers["ETag"] = etag(values.version)
    return ThresholdsOut.model_validate(body)


@router.get(
    "/category-rules",
    summary="How products map to the tenant's categories",
    responses=responses(401, 403),
)
async def list_category_rules(session: ReadSession, actor: CurrentKey) -> list[CategoryRuleOut]:
    return [
        CategoryRuleOut.model_validate(r) for r in await rules.list_category_rules(session, actor)
    ]


@router.post(
    "/category-rules",
    status_code=status.HTTP_201_CREATED,
    summary="Add a category rule (merchant-code prefix or title keyword); facts are rebuilt",
    responses=responses(401, 403, 409, 422),
)
async def add_category_rule(
    session: Session,
    runtime: RuntimeDep,
    actor: CurrentKey,
    body: CategoryRuleIn,
    background: BackgroundTasks,
) -> CategoryRuleOut:
    rule = await rules.add_category_rule(
        session, actor, body.category, body.match.value, body.pattern
    )
    background.add_task(jobs.schedule_rebuild, runtime, actor.tenant_id)
    return CategoryRuleOut.model_validate(rule)


@router.delete(
    "/category-rules/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a category rule; facts are rebuilt",
    responses=responses(401, 403, 404),
)
async def delete_category_rule(
    session: Session,
    runtime: RuntimeDep,
    actor: CurrentKey,
    rule_id: uuid.UUID,
    background: BackgroundTasks,
) -> None:
    await rules.delete_category_rule(session, actor, rule_id)
    background.add_task(jobs.schedule_rebuild, runtime, actor.tenant_id)


@router.post(
    "/recompute",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a rebuild of every customer's facts, RFM scores and lifecycle stages",
    responses=responses(401, 403),
)
async def recompute(runtime: RuntimeDep, actor: CurrentKey) -> dict[str, str]:
    actor.require("segments:configure")
    await jobs.schedule_rebuild(runtime, actor.tenant_id)
    return {"status": "queued"}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Save a segment (its size is counted and recorded at once)",
    responses=responses(401, 403, 409, 422),
)
async def create_segment(
    session: Session, actor: CurrentKey, clock: ClockDep, body: SegmentCreate, response: Response
) -> SegmentOut:
    segment = await saved.create_segment(
        session, actor, body.name, body.description, body.filter, clock()
    )
    response.headers["Location"] = f"/api/v1/segments/{segment.id}"
    return _segment(segment, response)


@router.get("", summary="Saved segments, newest first", responses=responses(401, 403, 422))
async def list_segments(
    session: ReadSession, actor: CurrentKey, limit: Limit = 50, cursor: Cursor = None
) -> Page[SegmentOut]:
    rows, next_cursor = await saved.list_segments(session, actor, limit, cursor)
    return Page(items=[SegmentOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{segment_id}", summary="Get a segment", responses=responses(401, 403, 404))
async def get_segment(
    session: ReadSession, actor: CurrentKey, segment_id: uuid.UUID, response: Response
) -> SegmentOut:
    return _segment(await saved.get_segment(session, actor, segment_id), response)


@router.patch(
    "/{segment_id}",
    summary="Update a segment's name, description or filter; send `If-Match`",
    responses=responses(401, 403, 404, 409, 412, 422),
)
async def update_segment(
    session: Session,
    actor: CurrentKey,
    clock: ClockDep,
    segment_id: uuid.UUID,
    body: SegmentUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> SegmentOut:
    changes = body.model_dump(exclude_unset=True)
    segment = await saved.update_segment(session, actor, segment_id, changes, if_match, clock())
    return _segment(segment, response)


@router.delete(
    "/{segment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a segment and its size history",
    responses=responses(401, 403, 404),
)
async def delete_segment(session: Session, actor: CurrentKey, segment_id: uuid.UUID) -> None:
    await saved.delete_segment(session, actor, segment_id)


@router.get(
    "/{segment_id}/members",
    summary="The segment's customers now, sortable by facts (the first page records its size)",
    responses=responses(401, 403, 404, 422),
)
async def list_members(
    session: Session,
    runtime: RuntimeDep,
    actor: CurrentKey,
    clock: ClockDep,
    segment_id: uuid.UUID,
    limit: Limit = 50,
    cursor: Cursor = None,
    sort: Sort = MemberSort.newest,
    descending: Descending = True,
) -> Page[MemberOut]:
    items, next_cursor = await saved.members(
        session, actor, segment_id, clock(), sort, descending, limit, cursor, runtime.member_frames
    )
    return Page(items=items, next_cursor=next_cursor)


@router.get(
    "/{segment_id}/sizes",
    summary="The segment's size at each evaluation, oldest first (for a chart)",
    responses=responses(401, 403, 404, 422),
)
async def size_history(
    session: ReadSession, actor: CurrentKey, segment_id: uuid.UUID, limit: Limit = 100
) -> SizeHistoryOut:
    rows = await saved.size_history(session, actor, segment_id, limit)
    return SizeHistoryOut(items=[SizePoint.model_validate(r) for r in rows])


@router.get(
    "/{segment_id}/export",
    summary="Stream the members as CSV (UTF-8 with BOM; personal data masked unless allowed)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "The CSV file."},
        **responses(401, 403, 404),
    },
)
async def export_segment(
    session: ReadSession,
    runtime: RuntimeDep,
    vault: VaultDep,
    actor: CurrentKey,
    clock: ClockDep,
    segment_id: uuid.UUID,
) -> StreamingResponse:
    now = clock()
    segment = await saved.open_export(session, actor, segment_id, now)
    return StreamingResponse(
        saved.export_segment(runtime.sessions, vault, actor, segment, now),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="segment-{segment.id}.csv"'},
    )
