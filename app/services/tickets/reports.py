"""Ticket reports in SQL: volume, median response and resolution times, SLA breach and reopen
rates, CSAT and NPS by dimension, and the products customers complain about most."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, and_, cast, func, literal, or_, select, text
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

D = ReportDimension
REPORT_WORK_MEM = "128MB"
_PERIOD_FORMAT = {D.day: "YYYY-MM-DD", D.week: 'IYYY-"W"IW', D.month: "YYYY-MM"}


def _minutes(later: Any, earlier: Any) -> Any:
    # date_part gives double precision; extract() gives numeric, several times slower to sort.
    return func.date_part("epoch", later - earlier) / 60


def _median(value: Any) -> Any:
    return func.percentile_cont(0.5).within_group(value)


def _key(dimension: ReportDimension, timezone: str) -> Any:
    if dimension in _PERIOD_FORMAT:
        local = func.timezone(timezone, Ticket.created_at)
        return func.to_char(func.date_trunc(dimension.value, local), _PERIOD_FORMAT[dimension])
    if dimension is D.staff:
        return cast(Ticket.assignee_id, Ticket.subject.type)
    column: Any = getattr(Ticket, dimension.value)
    return column


def _rate(condition: Any, population: Any = None) -> Any:
    """Share of the population (all rows by default) meeting the condition; NULL if none."""
    hits = func.count().filter(and_(condition, population) if population is not None else condition)
    total = func.count().filter(population) if population is not None else func.count()
    return cast(hits, Float) / func.nullif(total, 0)


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
    """One row per group of tickets created in the range; breaches count clocks still running."""
    actor.require("tickets:reports")
    settings = config.settings_out(await config.load_settings(session, actor.tenant_id))
    await _sort_in_memory(session)
    key = _key(group_by, settings.timezone).label("key")
    breached = or_(
        Ticket.first_response_breached, Ticket.resolution_breached, Ticket.sla_due_at <= now
    )
    ever_resolved = or_(Ticket.resolved_at.is_not(None), Ticket.reopen_count > 0)
    query = (
        select(
            key,
            func.count().label("tickets"),
            _median(_minutes(Ticket.first_responded_at, Ticket.created_at)).label("first"),
            _median(_minutes(Ticket.resolved_at, Ticket.created_at)).label("resolution"),
            _rate(breached).label("breach"),
            _rate(Ticket.reopen_count > 0, ever_resolved).label("reopen"),
            func.avg(cast(Ticket.csat_score, Float)).label("csat"),
            func.count(Ticket.csat_score).label("csat_n"),
        )
        .where(Ticket.tenant_id == actor.tenant_id, *_created(created_after, created_before))
        .group_by(key)
        .order_by(key)
    )
    rows = (await session.execute(query)).all()
    return SummaryReport(
        group_by=group_by,
        created_after=created_after,
        created_before=created_before,
        rows=[
            SummaryRow(
                key=r.key,
                tickets=r.tickets,
                first_response_median_minutes=_float(r.first),
                resolution_median_minutes=_float(r.resolution),
                sla_breach_rate=_float(r.breach),
                reopen_rate=_float(r.reopen),
                csat_average=_float(r.csat),
                csat_responses=r.csat_n,
            )
            for r in rows
        ],
    )


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
