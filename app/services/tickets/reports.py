"""Ticket reports in SQL: volume, median response and resolution times, SLA breach and reopen
rates, CSAT and NPS by dimension, and the products customers complain about most."""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import chain
from typing import Any

from sqlalchemy import (
    Date,
    Float,
    all_,
    and_,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import NpsResponse, OrderItem, Ticket, TicketItem
from app.schemas.tickets import (
    NpsDimension,
    NpsReport,
    NpsRow,
    ProductReport,
    ProductRow,
    ReportDimension,
    SummaryReport,
    SummaryRow,
    TicketKind,
)
from app.services.auth import Principal
from app.services.tickets import config
from app.services.tickets.rollups import unpack

D = ReportDimension
REPORT_WORK_MEM = "128MB"
_PERIOD_FORMAT = {D.day: "YYYY-MM-DD", D.week: 'IYYY-"W"IW', D.month: "YYYY-MM"}


def _minutes(later: Any, earlier: Any) -> Any:
    # date_part gives double precision; extract() gives numeric, several times slower to sort.
    return func.date_part("epoch", later - earlier) / 60


def _key(dimension: ReportDimension, timezone: str) -> Any:
    if dimension in _PERIOD_FORMAT:
        local = func.timezone(timezone, Ticket.created_at)
        return func.to_char(func.date_trunc(dimension.value, local), _PERIOD_FORMAT[dimension])
    if dimension is D.staff:
        return cast(Ticket.assignee_id, Ticket.subject.type)
    column: Any = getattr(Ticket, dimension.value)
    return column


def _created(after: datetime | None, before: datetime | None) -> list[Any]:
    conditions: list[Any] = []
    if after is not None:
        conditions.append(Ticket.created_at >= after)
    if before is not None:
        conditions.append(Ticket.created_at < before)
    return conditions


async def summary(
    session: AsyncSession,
    actor: Principal,
    group_by: ReportDimension,
    created_after: datetime | None,
    created_before: datetime | None,
    now: datetime,
) -> SummaryReport:
    """One row per group of tickets created in the range; breaches count clocks still running.

    Built days in the range come from `ticket_rollups` (counts added, sorted minutes merged);
    every other day and the partial days at the range's ends come from `tickets`. Medians are
    exact: every value is merged, and `percentile_cont`'s interpolation is repeated in Python.
    """
    actor.require("tickets:reports")
    settings = config.settings_out(await config.load_settings(session, actor.tenant_id))
    await _sort_in_memory(session)
    timezone = settings.timezone
    days = await _built_days(session, actor.tenant_id, timezone, created_after, created_before)
    groups: dict[str | None, _Group] = defaultdict(_Group)
    if days:
        await _add_rollups(session, actor.tenant_id, group_by, days, groups)
        await _add_live_breaches(session, actor.tenant_id, group_by, timezone, days, now, groups)
    await _add_tickets(
        session, actor, group_by, timezone, (created_after, created_before), days, now, groups
    )
    return SummaryReport(
        group_by=group_by,
        created_after=created_after,
        created_before=created_before,
        rows=[groups[key].row(key) for key in await _ordered(session, group_by, list(groups))],
    )


@dataclass
class _Group:
    """A group's additive parts, and its minutes as sorted runs to merge."""

    tickets: int = 0
    breached: int = 0
    reopened: int = 0
    ever_resolved: int = 0
    csat_sum: int = 0
    csat_count: int = 0
    first_response: list[Sequence[float]] = field(default_factory=list)
    resolution: list[Sequence[float]] = field(default_factory=list)

    def add(self, row: Any, first_response: Sequence[float], resolution: Sequence[float]) -> None:
        self.tickets += row.tickets
        self.breached += row.breached
        self.reopened += row.reopened
        self.ever_resolved += row.ever_resolved
        self.csat_sum += row.csat_sum
        self.csat_count += row.csat_count
        self.first_response.append(first_response)
        self.resolution.append(resolution)

    def row(self, key: str | None) -> SummaryRow:
        return SummaryRow(
            key=key,
            tickets=self.tickets,
            first_response_median_minutes=percentile_cont_median(self.first_response),
            resolution_median_minutes=percentile_cont_median(self.resolution),
            sla_breach_rate=self.breached / self.tickets if self.tickets else None,
            reopen_rate=self.reopened / self.ever_resolved if self.ever_resolved else None,
            csat_average=self.csat_sum / self.csat_count if self.csat_count else None,
            csat_responses=self.csat_count,
        )


def percentile_cont_median(runs: Sequence[Sequence[float]]) -> float | None:
    """`percentile_cont(0.5)` over the union of the runs, with PostgreSQL's arithmetic
    (`lo + (hi - lo) * fraction`, float8_lerp), so the result is the same double."""
    values = list(chain.from_iterable(runs))
    if not values:
        return None
    values.sort()  # timsort merges the already sorted runs
    position = 0.5 * (len(values) - 1)
    first = math.floor(position)
    second = math.ceil(position)
    if second == first:
        return values[first]
    return values[first] + (values[second] - values[first]) * (position - first)


@dataclass(frozen=True)
class _Day:
    day: date
    starts: datetime
    ends: datetime


async def _built_days(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    timezone: str,
    after: datetime | None,
    before: datetime | None,
) -> list[_Day]:
    """Whole local days inside the range that are built in this time zone and unchanged since."""
    result = await session.execute(_BUILT_DAYS, {"t": tenant_id, "tz": timezone})
    return [
        _Day(r.day, r.starts, r.ends)
        for r in result
        if (after is None or r.starts >= after) and (before is None or r.ends <= before)
    ]


_BUILT_DAYS = text(
    """
    SELECT d.day, d.day::timestamp AT TIME ZONE :tz AS starts,
           (d.day + 1)::timestamp AT TIME ZONE :tz AS ends
    FROM ticket_rollup_days d
    WHERE d.tenant_id = :t AND d.timezone = :tz
      AND NOT EXISTS (
          SELECT 1 FROM ticket_rollup_dirty x
          WHERE x.tenant_id = d.tenant_id
            AND x.hour > (d.day::timestamp AT TIME ZONE :tz) - interval '1 hour'
            AND x.hour < (d.day + 1)::timestamp AT TIME ZONE :tz)
    ORDER BY d.day
    """
)

_ROLLUPS = text(
    """
    SELECT key, day, tickets, breached, reopened, ever_resolved, csat_sum, csat_count,
           first_response_minutes AS first_response, resolution_minutes AS resolution
    FROM ticket_rollups WHERE tenant_id = :t AND dimension = :dimension AND day = ANY(:days)
    """
).bindparams(bindparam("days", type_=ARRAY(Date)))


def _period_key(dimension: ReportDimension, day: date) -> str:
    if dimension is D.week:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if dimension is D.month:
        return day.strftime("%Y-%m")
    return day.isoformat()


async def _add_rollups(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    dimension: ReportDimension,
    days: list[_Day],
    groups: dict[str | None, _Group],
) -> None:
    periodic = dimension in _PERIOD_FORMAT
    stored = "all" if periodic else dimension.value
    result = await session.execute(
        _ROLLUPS, {"t": tenant_id, "dimension": stored, "days": [d.day for d in days]}
    )
    for row in result:
        key = _period_key(dimension, row.day) if periodic else (row.key or None)
        groups[key].add(row, unpack(row.first_response), unpack(row.resolution))


def _local_day(timezone: str) -> Any:
    return cast(func.timezone(timezone, Ticket.created_at), Date)


async def _add_live_breaches(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    dimension: ReportDimension,
    timezone: str,
    days: list[_Day],
    now: datetime,
    groups: dict[str | None, _Group],
) -> None:
    """Running clocks past due on built days (the rollups count stored breach flags only):
    an index-only range scan on `ix_tickets_running_unflagged`."""
    key = _key(dimension, timezone).label("key")
    query = (
        select(key, func.count().label("n"))
        .where(
            Ticket.tenant_id == tenant_id,
            Ticket.sla_due_at <= now,
            ~Ticket.first_response_breached,
            ~Ticket.resolution_breached,
            or_(*(_local_day(timezone).between(first, last) for first, last in _runs(days))),
        )
        .group_by(key)
    )
    for row in await session.execute(query):
        groups[row.key].breached += row.n


def _runs(days: list[_Day]) -> list[tuple[date, date]]:
    """Consecutive built days as (first, last) pairs: a few range tests instead of one
    comparison per built day for every running ticket."""
    runs: list[tuple[date, date]] = []
    for d in days:
        if runs and runs[-1][1] + timedelta(days=1) == d.day:
            runs[-1] = (runs[-1][0], d.day)
        else:
            runs.append((d.day, d.day))
    return runs


def _gaps(
    days: list[_Day], after: datetime | None, before: datetime | None
) -> list[tuple[datetime | None, datetime | None]]:
    """The parts of [after, before) outside the built days."""
    gaps: list[tuple[datetime | None, datetime | None]] = []
    low = after
    for day in days:
        if low is None or day.starts > low:
            gaps.append((low, day.starts))
        low = day.ends
    if before is None or low is None or low < before:
        gaps.append((low, before))
    return gaps


async def _add_tickets(
    session: AsyncSession,
    actor: Principal,
    dimension: ReportDimension,
    timezone: str,
    created: tuple[datetime | None, datetime | None],
    days: list[_Day],
    now: datetime,
    groups: dict[str | None, _Group],
) -> None:
    """Tickets outside the built days, aggregated the same way in SQL."""
    gaps = _gaps(days, *created)
    if not gaps:
        return
    conditions: list[Any] = [Ticket.tenant_id == actor.tenant_id, *_created(*created)]
    if days:
        # Each gap is widened by a day and the built days are excluded by their date, so a day
        # whose local midnight moves (DST) is counted once either way.
        slack = timedelta(days=1)
        spans = [
            and_(
                true(),
                *([Ticket.created_at >= low - slack] if low is not None else []),
                *([Ticket.created_at < high + slack] if high is not None else []),
            )
            for low, high in gaps
        ]
        conditions.append(or_(*spans))
        built = bindparam("built", [d.day for d in days], ARRAY(Date))
        conditions.append(_local_day(timezone) != all_(built))
    key = _key(dimension, timezone).label("key")
    first = _minutes(Ticket.first_responded_at, Ticket.created_at)
    resolution = _minutes(Ticket.resolved_at, Ticket.created_at)
    breached = or_(
        Ticket.first_response_breached, Ticket.resolution_breached, Ticket.sla_due_at <= now
    )
    query = (
        select(
            key,
            func.count().label("tickets"),
            func.count().filter(breached).label("breached"),
            func.count().filter(Ticket.reopen_count > 0).label("reopened"),
            func.count()
            .filter(or_(Ticket.resolved_at.is_not(None), Ticket.reopen_count > 0))
            .label("ever_resolved"),
            func.coalesce(func.sum(Ticket.csat_score), 0).label("csat_sum"),
            func.count(Ticket.csat_score).label("csat_count"),
            _sorted_values(first).label("first_response"),
            _sorted_values(resolution).label("resolution"),
        )
        .where(*conditions)
        .group_by(key)
    )
    for row in await session.execute(query):
        groups[row.key].add(row, row.first_response or [], row.resolution or [])


def _sorted_values(value: Any) -> Any:
    return func.array_agg(aggregate_order_by(value, value), type_=ARRAY(Float)).filter(
        value.is_not(None)
    )


async def _ordered(
    session: AsyncSession, dimension: ReportDimension, keys: list[str | None]
) -> list[str | None]:
    """The keys in the database's order for the key's type (NULL last), as before."""
    present = [k for k in keys if k is not None]
    if dimension in _PERIOD_FORMAT:
        ordered: list[str | None] = [*sorted(present)]  # ASCII digits and '-W'
    else:
        column = literal_column("k", Ticket.subject.type)
        query = select(column).select_from(
            func.unnest(bindparam("keys", present, ARRAY(Ticket.subject.type))).alias("k")
        )
        ordered = [*(await session.scalars(query.order_by(column))).all()]
    return ordered + ([None] if None in keys else [])


async def _sort_in_memory(session: AsyncSession) -> None:
    """Medians sort every group's rows: give this transaction room to do it without temp files."""
    await session.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


async def nps(
    session: AsyncSession,
    actor: Principal,
    group_by: NpsDimension,
    recorded_after: datetime | None,
    recorded_before: datetime | None,
) -> NpsReport:
    """NPS by the linked ticket's category or assignee, or by channel (the answer's own, else
    its ticket's); answers without a ticket fall in the `null` group for those."""
    actor.require("tickets:reports")
    await _sort_in_memory(session)
    n = NpsResponse
    keys: dict[NpsDimension, Any] = {
        NpsDimension.none: literal(None, Ticket.subject.type),
        NpsDimension.category: Ticket.category,
        NpsDimension.staff: cast(Ticket.assignee_id, Ticket.subject.type),
        NpsDimension.channel: func.coalesce(n.channel, Ticket.channel),
    }
    key = keys[group_by].label("key")
    conditions: list[Any] = [n.tenant_id == actor.tenant_id]
    if recorded_after is not None:
        conditions.append(n.recorded_at >= recorded_after)
    if recorded_before is not None:
        conditions.append(n.recorded_at < recorded_before)
    query = (
        select(
            key,
            func.count().label("responses"),
            func.count().filter(n.score >= 9).label("promoters"),
            func.count().filter(n.score.between(7, 8)).label("passives"),
            func.count().filter(n.score <= 6).label("detractors"),
        )
        .select_from(n)
        .outerjoin(Ticket, and_(Ticket.tenant_id == n.tenant_id, Ticket.id == n.ticket_id))
        .where(*conditions)
        .group_by(key)
        .order_by(key)
    )
    rows = (await session.execute(query)).all()
    return NpsReport(
        group_by=group_by,
        rows=[
            NpsRow(
                key=r.key,
                responses=r.responses,
                promoters=r.promoters,
                passives=r.passives,
                detractors=r.detractors,
                nps=100.0 * (r.promoters - r.detractors) / r.responses if r.responses else None,
            )
            for r in rows
        ],
    )


async def top_products(
    session: AsyncSession,
    actor: Principal,
    kind: TicketKind | None,
    created_after: datetime | None,
    created_before: datetime | None,
    limit: int,
) -> ProductReport:
    """Products (by merchant code, else title) on the most tickets, through linked order items."""
    actor.require("tickets:reports")
    product = func.coalesce(OrderItem.merchant_code, OrderItem.title)
    conditions: list[Any] = [Ticket.tenant_id == actor.tenant_id]
    conditions += _created(created_after, created_before)
    if kind is not None:
        conditions.append(Ticket.kind == kind.value)
    query = (
        select(
            OrderItem.merchant_code,
            func.min(OrderItem.title).label("title"),
            func.count(func.distinct(Ticket.id)).label("tickets"),
        )
        .select_from(Ticket)
        .join(
            TicketItem,
            and_(TicketItem.tenant_id == Ticket.tenant_id, TicketItem.ticket_id == Ticket.id),
        )
        .join(
            OrderItem,
            and_(
                OrderItem.tenant_id == TicketItem.tenant_id,
                OrderItem.order_id == TicketItem.order_id,
                OrderItem.line_no == TicketItem.line_no,
            ),
        )
        .where(*conditions, product.is_not(None))
        .group_by(product, OrderItem.merchant_code)
        .order_by(func.count(func.distinct(Ticket.id)).desc(), product)
        .limit(limit)
    )
    rows = (await session.execute(query)).all()
    return ProductReport(
        kind=kind,
        rows=[
            ProductRow(merchant_code=r.merchant_code, title=r.title, tickets=r.tickets)
            for r in rows
        ],
    )
