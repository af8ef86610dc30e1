"""Saved segments: create, read, update, delete, preview, members, export and size history."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.crypto import Vault
from app.errors import NotFound
from app.models import Segment, SegmentEvaluation
from app.models.base import new_id
from app.schemas.segments import MemberOut
from app.schemas.segments import MemberSort as SortKey
from app.services.auth import Principal
from app.services.paging import check_if_match, cursor_id, encode_cursor
from app.services.segments import query
from app.services.segments.compiler import compile_filter
from app.services.segments.fields import QueryContext, c
from app.services.segments.member_frames import MemberFrames
from app.services.segments.rules import category_patterns


@dataclass(frozen=True)
class Preview:
    count: int
    items: list[MemberOut]
    next_cursor: str | None
    from_memory: bool
    """Counted from the tenant's in-memory frame rather than in SQL (same answer)."""


async def _compile(
    session: AsyncSession, tree: Any, tenant_id: uuid.UUID, now: datetime, loc: tuple[str, ...]
) -> tuple[ColumnElement[bool], QueryContext]:
    """The condition and its context; category rules are read only if the filter names one."""
    rules = {}
    if '"category"' in json.dumps(tree, ensure_ascii=False):
        rules = await category_patterns(session, tenant_id)
    ctx = QueryContext(tenant_id, now, rules)
    return compile_filter(tree, ctx, loc), ctx


async def _count_and_page(
    session: AsyncSession,
    frames: MemberFrames | None,
    tree: Any,
    condition: ColumnElement[bool],
    ctx: QueryContext,
    sort: SortKey,
    descending: bool,
    limit: int,
    cursor: str | None,
    counted: bool = True,
) -> tuple[int, list[MemberOut], str | None, bool]:
    """The count and a page, from the tenant's in-memory frame when it is current and holds
    the filter's fields or narrows it down (member_frames.py), else from SQL; the same answer
    either way. Without `counted`, SQL skips the count (0 is returned)."""
    await query.prefer_custom_plans(session)
    answer = None
    if frames is not None:
        answer = await frames.answer(session, tree, ctx, sort, descending, limit, cursor)
    if answer is not None:
        total, ids = answer
        if not ids:
            return total, [], None, True
        condition = c.id.in_(ids)
    else:
        total = await query.count_members(session, condition, ctx) if counted else 0
    items, next_cursor = await query.page_members(
        session, condition, ctx, sort, descending, limit, cursor
    )
    return total, items, next_cursor, answer is not None


async def preview(
    session: AsyncSession,
    actor: Principal,
    tree: Any,
    now: datetime,
    limit: int,
    cursor: str | None,
    sort: SortKey = SortKey.newest,
    descending: bool = True,
    frames: MemberFrames | None = None,
) -> Preview:
    """How many customers match and the first page of them, without saving anything."""
    actor.require("segments:read")
    condition, ctx = await _compile(session, tree, actor.tenant_id, now, ("body", "filter"))
    total, items, next_cursor, from_memory = await _count_and_page(
        session, frames, tree, condition, ctx, sort, descending, limit, cursor
    )
    return Preview(total, items, next_cursor, from_memory)


async def _load(session: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID) -> Segment:
    segment = await session.get(Segment, (tenant_id, segment_id))
    if segment is None:
        raise NotFound("no such segment")
    return segment


async def record_evaluation(
    session: AsyncSession, segment: Segment, count: int, at: datetime
) -> None:
    segment.last_count, segment.last_evaluated_at = count, at
    await session.merge(
        SegmentEvaluation(
            tenant_id=segment.tenant_id, segment_id=segment.id, evaluated_at=at, member_count=count
        )
    )
    await session.flush()


async def evaluate(session: AsyncSession, segment: Segment, now: datetime) -> int:
    """Count the members now and record the count in the segment's size history."""
    condition, ctx = await _compile(
        session, segment.filter, segment.tenant_id, now, ("segment", "filter")
    )
    await query.prefer_custom_plans(session)
    count = await query.count_members(session, condition, ctx)
    await record_evaluation(session, segment, count, now)
    return count


async def create_segment(
    session: AsyncSession,
    actor: Principal,
    name: str,
    description: str | None,
    tree: Any,
    now: datetime,
) -> Segment:
    actor.require("segments:write")
    condition, ctx = await _compile(session, tree, actor.tenant_id, now, ("body", "filter"))
    segment = Segment(
        tenant_id=actor.tenant_id,
        id=new_id(),
        name=name,
        description=description,
        filter=tree,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(segment)
    await session.flush()
    await query.prefer_custom_plans(session)
    await record_evaluation(
        session, segment, await query.count_members(session, condition, ctx), now
    )
    return segment


async def get_segment(session: AsyncSession, actor: Principal, segment_id: uuid.UUID) -> Segment:
    actor.require("segments:read")
    return await _load(session, actor.tenant_id, segment_id)


async def list_segments(
    session: AsyncSession, actor: Principal, limit: int, cursor: str | None
) -> tuple[list[Segment], str | None]:
    actor.require("segments:read")
    statement = select(Segment).where(Segment.tenant_id == actor.tenant_id)
    if cursor:
        statement = statement.where(Segment.id < cursor_id(cursor))
    rows = list(await session.scalars(statement.order_by(Segment.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor({"id": str(rows[-1].id)}) if more else None


async def update_segment(
    session: AsyncSession,
    actor: Principal,
    segment_id: uuid.UUID,
    changes: dict[str, Any],
    if_match: str | None,
    now: datetime,
) -> Segment:
    """Apply `changes` (name, description, filter); a new filter is counted at once."""
    actor.require("segments:write")
    segment = await _load(session, actor.tenant_id, segment_id)
    check_if_match(if_match, segment.version)
    if "filter" in changes:
        await _compile(session, changes["filter"], actor.tenant_id, now, ("body", "filter"))
    for key, value in changes.items():
        setattr(segment, key, value)
    segment.version += 1
    segment.updated_at = now
    await session.flush()
    if "filter" in changes:
        await evaluate(session, segment, now)
    return segment


async def delete_segment(session: AsyncSession, actor: Principal, segment_id: uuid.UUID) -> None:
    actor.require("segments:write")
    await session.delete(await _load(session, actor.tenant_id, segment_id))
    await session.flush()


async def members(
    session: AsyncSession,
    actor: Principal,
    segment_id: uuid.UUID,
    now: datetime,
    sort: SortKey,
    descending: bool,
    limit: int,
    cursor: str | None,
    frames: MemberFrames | None = None,
) -> tuple[list[MemberOut], str | None]:
    """A page of the segment's members; the first page also records the segment's size."""
    actor.require("segments:read")
    segment = await _load(session, actor.tenant_id, segment_id)
    condition, ctx = await _compile(
        session, segment.filter, actor.tenant_id, now, ("segment", "filter")
    )
    first_page = cursor is None
    total, items, next_cursor, _ = await _count_and_page(
        session, frames, segment.filter, condition, ctx, sort, descending, limit, cursor, first_page
    )
    if first_page:
        await record_evaluation(session, segment, total, now)
    return items, next_cursor


async def size_history(
    session: AsyncSession, actor: Principal, segment_id: uuid.UUID, limit: int
) -> list[SegmentEvaluation]:
    actor.require("segments:read")
    await _load(session, actor.tenant_id, segment_id)
    rows = await session.scalars(
        select(SegmentEvaluation)
        .where(
            SegmentEvaluation.tenant_id == actor.tenant_id,
            SegmentEvaluation.segment_id == segment_id,
        )
        .order_by(SegmentEvaluation.evaluated_at.desc())
        .limit(limit)
    )
    return list(reversed(list(rows)))


async def open_export(
    session: AsyncSession, actor: Principal, segment_id: uuid.UUID, now: datetime
) -> Segment:
    """Check the caller may export this segment, and that its filter still compiles, before
    any byte of the file is sent (an error after that could only cut the file short)."""
    actor.require("segments:export")
    segment = await _load(session, actor.tenant_id, segment_id)
    await _compile(session, segment.filter, actor.tenant_id, now, ("segment", "filter"))
    return segment


async def export_segment(
    sessions: async_sessionmaker[AsyncSession],
    vault: Vault,
    actor: Principal,
    segment: Segment,
    now: datetime,
) -> AsyncIterator[bytes]:
    """The CSV rows, read with a server-side cursor on a session of its own: the response
    streams after the request's session has closed."""
    async with sessions() as session:
        condition, ctx = await _compile(
            session, segment.filter, actor.tenant_id, now, ("segment", "filter")
        )
        await query.prefer_custom_plans(session)
        async for chunk in query.export_csv(
            session, vault, condition, ctx, actor.can("pii:unmasked")
        ):
            yield chunk


async def evaluate_all(session: AsyncSession, tenant_id: uuid.UUID, now: datetime) -> int:
    """Count every saved segment of the tenant (the recompute job's last step)."""
    segments = list(await session.scalars(select(Segment).where(Segment.tenant_id == tenant_id)))
    for segment in segments:
        await evaluate(session, segment, now)
    return len(segments)
