"""Running a filter: count, a page of members in a chosen order, and a streamed CSV export."""

from __future__ import annotations

import base64
import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    func,
    literal,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import visitors
from sqlalchemy.sql.expression import ColumnClause, TextClause

from app.crypto import Vault
from app.errors import FieldError, ValidationFailed
from app.models import CustomerContact, CustomerRollup
from app.schemas.segments import MemberOut
from app.schemas.segments import MemberSort as SortKey
from app.services.paging import cursor_values, encode_cursor
from app.services.segments.fields import (
    RFM_GROUPS,
    QueryContext,
    c,
    customers,
    f,
    facts,
    s,
    scores,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEVER = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))
"""Where a customer without orders sorts by order times."""
_cc = CustomerContact.__table__.alias("cc")


_SORT_EXPR: dict[SortKey, Any] = {
    SortKey.total_spent_fen: func.coalesce(f.total_spent_fen, 0),
    SortKey.order_count: func.coalesce(f.order_count, 0),
    SortKey.avg_order_value_fen: func.coalesce(f.avg_order_value_fen, 0),
    SortKey.last_order_at: func.coalesce(f.last_order_at, literal(NEVER)),
    SortKey.first_order_at: func.coalesce(f.first_order_at, literal(NEVER)),
}


_FROM = customers.outerjoin(
    facts, and_(f.tenant_id == c.tenant_id, f.customer_id == c.id)
).outerjoin(scores, and_(s.tenant_id == c.tenant_id, s.customer_id == c.id))
_MEMBER_COLUMNS = (
    c.id,
    c.display_name,
    c.province,
    c.city,
    c.tags,
    func.coalesce(f.order_count, 0).label("order_count"),
    func.coalesce(f.total_spent_fen, 0).label("total_spent_fen"),
    func.coalesce(f.avg_order_value_fen, 0).label("avg_order_value_fen"),
    f.last_order_at,
    s.rfm_r,
    s.rfm_f,
    s.rfm_m,
    s.rfm_group,
    func.coalesce(s.lifecycle_stage, "prospect").label("lifecycle_stage"),
)


def _member(row: Any, now: datetime) -> MemberOut:
    last = row.last_order_at
    return MemberOut(
        id=row.id,
        display_name=row.display_name,
        province=row.province,
        city=row.city,
        tags=row.tags,
        order_count=row.order_count,
        total_spent_fen=row.total_spent_fen,
        avg_order_value_fen=row.avg_order_value_fen,
        last_order_at=last,
        days_since_last_order=(now - last).days if last is not None else None,
        rfm_r=row.rfm_r,
        rfm_f=row.rfm_f,
        rfm_m=row.rfm_m,
        rfm_group=row.rfm_group,
        lifecycle_stage=row.lifecycle_stage,
    )


async def prefer_custom_plans(session: AsyncSession) -> None:
    """Plan segment queries for their actual values on this connection.

    asyncpg reuses prepared statements; after five runs PostgreSQL may switch to a generic plan
    that ignores the values, 7x slower for skewed filters (see the performance notes). The setting
    stays on the pooled connection, so it costs one round trip per connection, not per query.
    """
    connection = await session.connection()
    if not connection.info.get("force_custom_plan"):
        await connection.exec_driver_sql("SET plan_cache_mode = force_custom_plan")
        connection.info["force_custom_plan"] = True


def _matching(condition: ColumnElement[bool], ctx: QueryContext) -> Select[Any]:
    return (
        select(*_MEMBER_COLUMNS)
        .select_from(_FROM)
        .where(c.tenant_id == ctx.tenant_id, c.merged_into_id.is_(None), condition)
    )


# The columns `customer_rollups` counts live customers by (app/models/analytics.py): a filter on
# these alone is counted from a few thousand rollup rows instead of a million customers.
_rollups = CustomerRollup.__table__.alias("r")
_ON_ROLLUPS: dict[Any, Any] = {
    c.province: _rollups.c.province,
    c.city: _rollups.c.city,
    s.rfm_r: _rollups.c.rfm_r,
    s.rfm_f: _rollups.c.rfm_f,
    s.rfm_group: _rollups.c.rfm_group,
    s.lifecycle_stage: _rollups.c.stage,  # a customer without scores: 'prospect' in both
}


def _to_rollups(element: Any, **kw: Any) -> Any:
    return _ON_ROLLUPS.get(element)


def on_rollups(condition: ColumnElement[bool]) -> ColumnElement[bool] | None:
    """The condition over `customer_rollups`, when every column it reads is one they count by."""
    elements = list(visitors.iterate(condition))
    if any(isinstance(e, TextClause) for e in elements):
        return None  # SQL text could name any column
    columns = [e for e in elements if isinstance(e, ColumnClause)]
    if not columns or any(column not in _ON_ROLLUPS for column in columns):
        return None
    return visitors.replacement_traverse(condition, {}, _to_rollups)


async def count_members(
    session: AsyncSession, condition: ColumnElement[bool], ctx: QueryContext
) -> int:
    rolled = on_rollups(condition)
    if rolled is not None:
        total = select(func.coalesce(func.sum(_rollups.c.customers), 0)).where(
            _rollups.c.tenant_id == ctx.tenant_id, rolled
        )
        return int(await session.scalar(total) or 0)
    return await count_joined(session, condition, ctx)


async def matching_ids(
    session: AsyncSession, condition: ColumnElement[bool], ctx: QueryContext
) -> list[uuid.UUID]:
    """Every matching customer's id (for a condition already narrowed to a few thousand)."""
    query = (
        select(c.id)
        .select_from(_FROM)
        .where(c.tenant_id == ctx.tenant_id, c.merged_into_id.is_(None), condition)
    )
    return list(await session.scalars(query))


async def count_joined(
    session: AsyncSession, condition: ColumnElement[bool], ctx: QueryContext
) -> int:
    """The count over customers joined with their facts and scores (any filter)."""
    query = (
        select(func.count())
        .select_from(_FROM)
        .where(c.tenant_id == ctx.tenant_id, c.merged_into_id.is_(None), condition)
    )
    return int(await session.scalar(query) or 0)


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed(
        "invalid cursor",
        [
            FieldError(
                ["query", "cursor"], "use the next_cursor of a previous page with the same sort"
            )
        ],
    )


def _cursor_key(sort: SortKey, raw: str) -> Any:
    if sort in (SortKey.last_order_at, SortKey.first_order_at):
        return datetime.fromisoformat(raw)
    return int(raw)


def page_position(sort: SortKey, cursor: str) -> tuple[Any, uuid.UUID]:
    """The sort key (None when sorting by id) and the id of the last member of the page before."""
    if sort is SortKey.newest:
        (raw_id,) = cursor_values(cursor, "id")
        raw_key = None
    else:
        raw_key, raw_id = cursor_values(cursor, "key", "id")
    try:
        return (None if raw_key is None else _cursor_key(sort, raw_key)), uuid.UUID(raw_id)
    except ValueError:
        raise _bad_cursor() from None


async def page_members(
    session: AsyncSession,
    condition: ColumnElement[bool],
    ctx: QueryContext,
    sort: SortKey,
    descending: bool,
    limit: int,
    cursor: str | None,
) -> tuple[list[MemberOut], str | None]:
    """Keyset pages ordered by a fact plus the id, so later pages never shift."""
    query = _matching(condition, ctx)
    if sort is SortKey.newest:
        order: list[Any] = [c.id.desc() if descending else c.id.asc()]
        if cursor:
            _, after = page_position(sort, cursor)
            query = query.where(c.id < after if descending else c.id > after)
        key_expr = None
    else:
        key_expr = _SORT_EXPR[sort].label("sort_key")
        query = query.add_columns(key_expr)
        order = [key_expr.desc(), c.id.desc()] if descending else [key_expr.asc(), c.id.asc()]
        if cursor:
            position = tuple_(*page_position(sort, cursor))
            pair = tuple_(_SORT_EXPR[sort], c.id)
            query = query.where(pair < position if descending else pair > position)
    rows = (await session.execute(query.order_by(*order).limit(limit + 1))).all()
    members = [_member(row, ctx.now) for row in rows[:limit]]
    if len(rows) <= limit:
        return members, None
    last = rows[limit - 1]
    if key_expr is None:
        return members, encode_cursor({"id": str(last.id)})
    key = last.sort_key
    return members, encode_cursor(
        {"key": key.isoformat() if isinstance(key, datetime) else str(key), "id": str(last.id)}
    )


_EXPORT_HEADER = [
    "customer_id",
    "display_name",
    "phone",
    "province",
    "city",
    "tags",
    "order_count",
    "total_spent_fen",
    "avg_order_value_fen",
    "last_order_at",
    "rfm_score",
    "rfm_group",
    "lifecycle_stage",
]
_FIRST_PHONE = (
    select(_cc.c.masked, func.encode(_cc.c.value_enc, "base64").label("enc"))
    .where(_cc.c.tenant_id == c.tenant_id, _cc.c.customer_id == c.id, _cc.c.kind == "phone")
    .order_by(_cc.c.position)
    .limit(1)
    .lateral("phone")
)


def _cell(value: str | None) -> str:
    """Text that Excel would run as a formula is prefixed with a quote (CSV injection)."""
    if not value:
        return ""
    return "'" + value if value[0] in "=+-@\t\r" else value


def _csv_line(values: list[Any]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue().encode("utf-8")


async def export_csv(
    session: AsyncSession,
    vault: Vault,
    condition: ColumnElement[bool],
    ctx: QueryContext,
    clear: bool,
) -> AsyncIterator[bytes]:
    """UTF-8 with a byte-order mark (Excel then reads Chinese correctly); phones masked unless
    `clear`; times in Asia/Shanghai, which is what sellers read their marketplace data in."""
    yield "\ufeff".encode() + _csv_line(_EXPORT_HEADER)
    query = (
        _matching(condition, ctx)
        .add_columns(_FIRST_PHONE.c.masked, _FIRST_PHONE.c.enc.label("phone_enc"))
        .outerjoin(_FIRST_PHONE, literal(True))
        .order_by(c.id)
    )
    result = await session.stream(query.execution_options(yield_per=2000))
    async for partition in result.partitions():
        chunk = bytearray()
        for row in partition:
            phone = row.masked
            if clear and row.phone_enc:
                phone = vault.decrypt(ctx.tenant_id, base64.b64decode(row.phone_enc))
            last = row.last_order_at.astimezone(SHANGHAI).isoformat() if row.last_order_at else ""
            score = f"{row.rfm_r}{row.rfm_f}{row.rfm_m}" if row.rfm_r is not None else ""
            chunk += _csv_line(
                [
                    row.id,
                    _cell(row.display_name),
                    phone or "",
                    _cell(row.province),
                    _cell(row.city),
                    _cell("|".join(row.tags)),
                    row.order_count,
                    row.total_spent_fen,
                    row.avg_order_value_fen,
                    last,
                    score,
                    RFM_GROUPS.get(row.rfm_group, ""),
                    row.lifecycle_stage,
                ]
            )
        yield bytes(chunk)
