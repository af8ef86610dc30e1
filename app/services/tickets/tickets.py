"""Tickets: create, read, list (with the SLA queue), update, transitions, comments, timeline."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.models import Order, OrderItem, Ticket, TicketEvent, TicketItem, TicketSettings
from app.models.base import new_id
from app.schemas.tickets import (
    CommentIn,
    Compensation,
    Priority,
    SlaState,
    TicketCreate,
    TicketOut,
    TicketSla,
    TicketStatus,
    TicketUpdate,
    TransitionIn,
    Visibility,
)
from app.services.auth import Principal
from app.services.customers import ensure_body_customer
from app.services.loyalty import hooks as loyalty_hooks
from app.services.paging import check_if_match, cursor_id, cursor_values, encode_cursor
from app.services.tickets import categories, config, sla, states
from app.services.tickets.staff import Actor, actor_of, ensure_assignable

S = TicketStatus


@dataclass(frozen=True)
class TicketRecord:
    ticket: TicketOut
    version: int


@dataclass(frozen=True)
class TicketFilters:
    status: TicketStatus | None = None
    kind: str | None = None
    category: str | None = None
    priority: str | None = None
    channel: str | None = None
    assignee_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    order_id: uuid.UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sla: SlaState | None = None


# --- clocks --------------------------------------------------------------------------------


def _running(ticket: Ticket) -> bool:
    return ticket.paused_at is None and ticket.status in (S.new, S.open)


def _recompute_clocks(ticket: Ticket, calendar: sla.Calendar) -> None:
    """Due times from the ticket's targets, clock start and paused time; then the queue key."""
    targets = sla.Targets(
        ticket.first_response_minutes, ticket.resolution_minutes, ticket.sla_business_hours
    )
    due = sla.dues(
        ticket.created_at, ticket.clock_started_at, ticket.paused_seconds, targets, calendar
    )
    if ticket.first_responded_at is None:
        ticket.first_response_due_at = due.first_response_due_at
    ticket.resolution_due_at = due.resolution_due_at
    _requeue(ticket)


def _requeue(ticket: Ticket) -> None:
    if not _running(ticket):
        ticket.sla_due_at = None
    elif ticket.first_responded_at is None:
        ticket.sla_due_at = min(ticket.first_response_due_at, ticket.resolution_due_at)
    else:
        ticket.sla_due_at = ticket.resolution_due_at


def _settle_breaches(ticket: Ticket, now: datetime) -> None:
    """Record a clock that ran out while it was running (before it pauses or stops)."""
    if not _running(ticket):
        return
    if ticket.first_responded_at is None and ticket.first_response_due_at < now:
        ticket.first_response_breached = True
    if ticket.resolution_due_at < now:
        ticket.resolution_breached = True


def _sla_out(ticket: Ticket, now: datetime) -> TicketSla:
    running = _running(ticket)
    return TicketSla(
        business_hours=ticket.sla_business_hours,
        first_response_due_at=ticket.first_response_due_at,
        resolution_due_at=ticket.resolution_due_at,
        first_responded_at=ticket.first_responded_at,
        first_response_breached=ticket.first_response_breached
        or (running and ticket.first_responded_at is None and ticket.first_response_due_at < now),
        resolution_breached=ticket.resolution_breached
        or (running and ticket.resolution_due_at < now),
        paused=ticket.paused_at is not None,
        paused_seconds=ticket.paused_seconds,
        next_due_at=ticket.sla_due_at,
    )


# --- reading -------------------------------------------------------------------------------


def _reopen_allowed(ticket: Ticket, settings: TicketSettings | None, now: datetime) -> bool:
    if ticket.resolved_at is None:
        return False
    days = config.settings_out(settings).reopen_window_days
    return now <= ticket.resolved_at + timedelta(days=days)


def _out(
    ticket: Ticket, lines: list[int], settings: TicketSettings | None, now: datetime
) -> TicketOut:
    status = S(ticket.status)
    has_compensation = (
        ticket.compensation_points or ticket.compensation_fen or ticket.compensation_note
    )
    return TicketOut(
        id=ticket.id,
        customer_id=ticket.customer_id,
        order_id=ticket.order_id,
        order_item_lines=lines,
        kind=ticket.kind,
        category=ticket.category,
        channel=ticket.channel,
        priority=ticket.priority,
        status=status,
        allowed_transitions=states.allowed(status, _reopen_allowed(ticket, settings, now)),
        subject=ticket.subject,
        description=ticket.description,
        external_ref=ticket.external_ref,
        assignee_id=ticket.assignee_id,
        tags=ticket.tags,
        sla=_sla_out(ticket, now),
        resolution_code=ticket.resolution_code,
        resolution_summary=ticket.resolution_summary,
        compensation=Compensation(
            points=ticket.compensation_points,
            amount_fen=ticket.compensation_fen,
            note=ticket.compensation_note,
        )
        if has_compensation
        else None,
        compensation_entry_id=ticket.compensation_entry_id,
        resolved_at=ticket.resolved_at,
        closed_at=ticket.closed_at,
        reopen_count=ticket.reopen_count,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
    )


async def _lines(
    session: AsyncSession, tenant_id: uuid.UUID, ticket_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[int]]:
    result: dict[uuid.UUID, list[int]] = {i: [] for i in ticket_ids}
    if not ticket_ids:
        return result
    rows = await session.execute(
        select(TicketItem.ticket_id, TicketItem.line_no)
        .where(TicketItem.tenant_id == tenant_id, TicketItem.ticket_id.in_(ticket_ids))
        .order_by(TicketItem.ticket_id, TicketItem.line_no)
    )
    for ticket_id, line_no in rows:
        result[ticket_id].append(line_no)
    return result


async def _record(session: AsyncSession, ticket: Ticket, now: datetime) -> TicketRecord:
    lines = await _lines(session, ticket.tenant_id, [ticket.id])
    settings = await config.load_settings(session, ticket.tenant_id)
    return TicketRecord(_out(ticket, lines[ticket.id], settings, now), ticket.version)


async def _find(
    session: AsyncSession, tenant_id: uuid.UUID, ticket_id: uuid.UUID, lock: bool = False
) -> Ticket:
    ticket = await session.get(Ticket, (tenant_id, ticket_id), with_for_update=lock)
    if ticket is None:
        raise NotFound("no such ticket")
    return ticket


async def get_ticket(
    session: AsyncSession, actor: Principal, ticket_id: uuid.UUID, now: datetime
) -> TicketRecord:
    actor.require("tickets:read")
    return await _record(session, await _find(session, actor.tenant_id, ticket_id), now)


def _conditions(tenant_id: uuid.UUID, f: TicketFilters) -> list[Any]:
    t = Ticket
    pairs: list[tuple[Any, Any]] = [
        (t.status, f.status.value if f.status else None),
        (t.kind, f.kind),
        (t.category, f.category),
        (t.priority, f.priority),
        (t.channel, f.channel),
        (t.assignee_id, f.assignee_id),
        (t.customer_id, f.customer_id),
        (t.order_id, f.order_id),
    ]
    conditions: list[Any] = [t.tenant_id == tenant_id]
    conditions += [column == value for column, value in pairs if value is not None]
    if f.created_after:
        conditions.append(t.created_at >= f.created_after)
    if f.created_before:
        conditions.append(t.created_at < f.created_before)
    return conditions


async def list_tickets(
    session: AsyncSession,
    actor: Principal,
    filters: TicketFilters,
    limit: int,
    cursor: str | None,
    now: datetime,
) -> tuple[list[TicketOut], str | None]:
    """Newest first; with `sla`, the most urgent deadline first (a range scan on one index)."""
    actor.require("tickets:read")
    settings = await config.load_settings(session, actor.tenant_id)
    query = select(Ticket).where(*_conditions(actor.tenant_id, filters))
    if filters.sla is None:
        if cursor:
            query = query.where(Ticket.id < cursor_id(cursor))
        query = query.order_by(Ticket.id.desc())
    else:
        horizon = now + timedelta(minutes=config.settings_out(settings).at_risk_minutes)
        if filters.sla is SlaState.breached:
            query = query.where(Ticket.sla_due_at <= now)
        else:
            query = query.where(Ticket.sla_due_at > now, Ticket.sla_due_at <= horizon)
        if cursor:
            query = query.where(_after_due(cursor))
        query = query.order_by(Ticket.sla_due_at, Ticket.id)
    rows = (await session.scalars(query.limit(limit + 1))).all()
    page = rows[:limit]
    lines = await _lines(session, actor.tenant_id, [t.id for t in page])
    items = [_out(t, lines[t.id], settings, now) for t in page]
    if len(rows) <= limit:
        return items, None
    last = page[-1]
    key = {"id": str(last.id)}
    if filters.sla is not None:
        assert last.sla_due_at is not None
        key["due"] = last.sla_due_at.isoformat()
    return items, encode_cursor(key)


def _after_due(cursor: str) -> Any:
    due, last_id = cursor_values(cursor, "due", "id")
    try:
        position = (datetime.fromisoformat(due), uuid.UUID(last_id))
    except ValueError as exc:
        raise ValidationFailed(
            "invalid cursor", [FieldError(["query", "cursor"], "use a next_cursor of ours")]
        ) from exc
    return tuple_(Ticket.sla_due_at, Ticket.id) > position


# --- writing -------------------------------------------------------------------------------


def _event(
    session: AsyncSession,
    ticket: Ticket,
    actor: Actor,
    kind: str,
    data: dict[str, Any],
    now: datetime,
) -> TicketEvent:
    event = TicketEvent(
        tenant_id=ticket.tenant_id,
        id=new_id(),
        ticket_id=ticket.id,
        kind=kind,
        actor_key_id=actor.key_id,
        actor_staff_id=actor.staff_id,
        actor_name=actor.name,
        data=data,
        at=now,
    )
    session.add(event)
    return event


async def _check_order(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    order_id: uuid.UUID | None,
    lines: Sequence[int],
) -> list[int]:
    wanted = sorted(set(lines))
    if order_id is None:
        if wanted:
            raise ValidationFailed(
                "order items need an order",
                [FieldError(["body", "order_item_lines"], "set order_id as well")],
            )
        return []
    if await session.get(Order, (tenant_id, order_id)) is None:
        raise ValidationFailed("unknown order", [FieldError(["body", "order_id"], "no such order")])
    if wanted:
        found = set(
            await session.scalars(
                select(OrderItem.line_no).where(
                    OrderItem.tenant_id == tenant_id,
                    OrderItem.order_id == order_id,
                    OrderItem.line_no.in_(wanted),
                )
            )
        )
        missing = [n for n in wanted if n not in found]
        if missing:
            raise ValidationFailed(
                "unknown order items",
                [
                    FieldError(
                        ["body", "order_item_lines"], "the order has no such lines", input=missing
                    )
                ],
            )
    return wanted


async def _link_items(
    session: AsyncSession, ticket: Ticket, order_id: uuid.UUID | None, lines: list[int]
) -> None:
    await session.execute(
        delete(TicketItem).where(
            TicketItem.tenant_id == ticket.tenant_id, TicketItem.ticket_id == ticket.id
        )
    )
    if order_id is not None:
        session.add_all(
            TicketItem(
                tenant_id=ticket.tenant_id, ticket_id=ticket.id, order_id=order_id, line_no=n
            )
            for n in lines
        )


def _clean_tags(tags: Sequence[str]) -> list[str]:
    cleaned: list[str] = []
    for i, tag in enumerate(tags):
        value = tag.strip()
        if not value or len(value) > 50:
            raise ValidationFailed(
                "invalid tag", [FieldError(["body", "tags", i], "1 to 50 characters", input=tag)]
            )
        if value not in cleaned:
            cleaned.append(value)
    return cleaned


async def create_ticket(
    session: AsyncSession, principal: Principal, data: TicketCreate, now: datetime
) -> TicketRecord:
    principal.require("tickets:write")
    tenant_id = principal.tenant_id
    await ensure_body_customer(session, tenant_id, data.customer_id)
    await categories.ensure_usable(session, tenant_id, data.category, ["body", "category"])
    if data.assignee_id is not None:
        await ensure_assignable(session, tenant_id, data.assignee_id, ["body", "assignee_id"])
    lines = await _check_order(session, tenant_id, data.order_id, data.order_item_lines)
    targets = await config.targets_for(session, tenant_id, data.priority)
    calendar = config.calendar_of(await config.load_settings(session, tenant_id))
    ticket = Ticket(
        tenant_id=tenant_id,
        id=new_id(),
        customer_id=data.customer_id,
        order_id=data.order_id,
        kind=data.kind.value,
        category=data.category,
        channel=data.channel.value,
        priority=data.priority.value,
        status=S.new.value,
        subject=data.subject,
        description=data.description,
        external_ref=data.external_ref,
        assignee_id=data.assignee_id,
        tags=_clean_tags(data.tags),
        sla_business_hours=targets.business_hours,
        first_response_minutes=targets.first_response_minutes,
        resolution_minutes=targets.resolution_minutes,
        clock_started_at=now,
        paused_seconds=0,
        first_response_breached=False,
        resolution_breached=False,
        reopen_count=0,
        version=1,
        created_at=now,
        updated_at=now,
    )
    _recompute_clocks(ticket, calendar)
    session.add(ticket)
    await session.flush()
    await _link_items(session, ticket, data.order_id, lines)
    actor = await actor_of(session, principal)
    _event(session, ticket, actor, "created", {"status": S.new.value}, now)
    if data.assignee_id is not None:
        _event(session, ticket, actor, "assigned", {"from": None, "to": str(data.assignee_id)}, now)
    if data.order_id is not None:
        _event(session, ticket, actor, "linked_order", _order_data(data.order_id, lines), now)
    await session.flush()
    return await _record(session, ticket, now)


def _order_data(order_id: uuid.UUID | None, lines: list[int]) -> dict[str, Any]:
    return {"order_id": str(order_id) if order_id else None, "order_item_lines": lines}


def _refuse_if_closed(ticket: Ticket) -> None:
    if ticket.status == S.closed:
        raise Conflict(
            "a closed ticket is final: open a new ticket instead",
            extra={"status": S.closed.value, "allowed_transitions": []},
        )


def _touch(ticket: Ticket, now: datetime) -> None:
    ticket.version += 1
    ticket.updated_at = now


async def update_ticket(
    session: AsyncSession,
    principal: Principal,
    ticket_id: uuid.UUID,
    data: TicketUpdate,
    if_match: str | None,
    now: datetime,
) -> TicketRecord:
    principal.require("tickets:write")
    tenant_id = principal.tenant_id
    ticket = await _find(session, tenant_id, ticket_id, lock=True)
    check_if_match(if_match, ticket.version)
    _refuse_if_closed(ticket)
    changes = data.model_dump(exclude_unset=True)
    required = ("kind", "category", "channel", "priority", "subject", "tags")
    nulls = [name for name in required if name in changes and changes[name] is None]
    if nulls:
        raise ValidationFailed(
            "these fields cannot be null",
            [FieldError(["body", n], "cannot be null") for n in nulls],
        )
    actor = await actor_of(session, principal)
    events: list[tuple[str, dict[str, Any]]] = []
    if "category" in changes and changes["category"] != ticket.category:
        await categories.ensure_usable(
            session, tenant_id, changes["category"], ["body", "category"]
        )
    if "assignee_id" in changes and changes["assignee_id"] != ticket.assignee_id:
        new = changes["assignee_id"]
        if new is not None:
            await ensure_assignable(session, tenant_id, new, ["body", "assignee_id"])
        events.append(("assigned", {"from": _str(ticket.assignee_id), "to": _str(new)}))
        ticket.assignee_id = new
    order_id = changes.pop("order_id", ticket.order_id)
    lines_given = changes.pop("order_item_lines", None)
    if "order_id" in data.model_fields_set or lines_given is not None:
        current = (await _lines(session, tenant_id, [ticket.id]))[ticket.id]
        wanted = await _check_order(
            session,
            tenant_id,
            order_id,
            lines_given
            if lines_given is not None
            else (current if order_id == ticket.order_id else []),
        )
        if order_id != ticket.order_id or wanted != current:
            await _link_items(session, ticket, order_id, wanted)
            ticket.order_id = order_id
            events.append(("linked_order", _order_data(order_id, wanted)))
    if "priority" in changes and changes["priority"] != ticket.priority:
        events.append(("priority_changed", {"from": ticket.priority, "to": changes["priority"]}))
        await _reprioritise(session, ticket, Priority(changes["priority"]), now)
    plain: list[str] = []
    for name in ("kind", "category", "channel", "subject", "description", "external_ref", "tags"):
        if name not in changes:
            continue
        value = changes[name]
        if name == "tags":
            value = _clean_tags(value)
        elif hasattr(value, "value"):
            value = value.value
        if getattr(ticket, name) != value:
            setattr(ticket, name, value)
            plain.append(name)
    if plain:
        events.append(("updated", {"fields": plain}))
    if events:
        _touch(ticket, now)
        for kind, payload in events:
            _event(session, ticket, actor, kind, payload, now)
    await session.flush()
    return await _record(session, ticket, now)


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


async def _reprioritise(
    session: AsyncSession, ticket: Ticket, priority: Priority, now: datetime
) -> None:
    """New targets apply from the ticket's start: a clock already past its new due is breached."""
    settings = await config.load_settings(session, ticket.tenant_id)
    targets = await config.targets_for(session, ticket.tenant_id, priority)
    ticket.priority = priority.value
    ticket.first_response_minutes = targets.first_response_minutes
    ticket.resolution_minutes = targets.resolution_minutes
    ticket.sla_business_hours = targets.business_hours
    _recompute_clocks(ticket, config.calendar_of(settings))


async def transition(
    session: AsyncSession,
    principal: Principal,
    ticket_id: uuid.UUID,
    data: TransitionIn,
    if_match: str | None,
    now: datetime,
) -> TicketRecord:
    principal.require("tickets:write")
    tenant_id = principal.tenant_id
    ticket = await _find(session, tenant_id, ticket_id, lock=True)
    check_if_match(if_match, ticket.version)
    settings = await config.load_settings(session, tenant_id)
    current, target = S(ticket.status), data.to
    states.check(current, target, _reopen_allowed(ticket, settings, now))
    calendar = config.calendar_of(settings)
    event: dict[str, Any] = {"from": current.value, "to": target.value}
    if target is S.resolved:
        _require_resolution(data)
    _settle_breaches(ticket, now)
    if current is S.pending:
        assert ticket.paused_at is not None
        ticket.paused_seconds += sla.paused_for(
            ticket.paused_at, now, ticket.sla_business_hours, calendar
        )
        ticket.paused_at = None
        event["paused_seconds"] = ticket.paused_seconds
    if target is S.pending:
        ticket.paused_at = now
    elif target is S.resolved:
        _resolve(ticket, data, now)
        event["resolution_code"] = ticket.resolution_code
    elif current is S.resolved and target is S.open:
        ticket.reopen_count += 1
        ticket.clock_started_at = now
        ticket.paused_seconds = 0
        ticket.resolved_at = None
        ticket.resolution_code = None
        ticket.resolution_summary = None
    elif target is S.closed:
        ticket.closed_at = now
    ticket.status = target.value
    if data.note:
        event["note"] = data.note
    if current is S.pending or (current is S.resolved and target is S.open):
        _recompute_clocks(ticket, calendar)  # a clock restarts: paused time or a new start
    else:
        _requeue(ticket)
    _touch(ticket, now)
    actor = await actor_of(session, principal)
    _event(session, ticket, actor, "status_changed", event, now)
    if target is S.resolved and ticket.compensation_points and not ticket.compensation_entry_id:
        await _pay_compensation(session, ticket, actor, now)
    await session.flush()
    return await _record(session, ticket, now)


async def _pay_compensation(
    session: AsyncSession, ticket: Ticket, actor: Actor, now: datetime
) -> None:
    """Credit the compensation points through the loyalty ledger, once per ticket: the ledger's
    idempotency key makes a retried or re-resolved ticket return the first entry."""
    assert ticket.compensation_points is not None
    entry_id = await loyalty_hooks.grant_points(
        session,
        ticket.tenant_id,
        ticket.customer_id,
        ticket.compensation_points,
        kind="bonus",
        source_type="ticket",
        source_id=ticket.id,
        reason=ticket.compensation_note or f"ticket compensation ({ticket.resolution_code})",
        idempotency_key=f"ticket:{ticket.id}:compensation",
        actor=actor.name,
        now=now,
    )
    ticket.compensation_entry_id = entry_id
    _event(
        session,
        ticket,
        actor,
        "compensation_paid",
        {"points": ticket.compensation_points, "entry_id": str(entry_id)},
        now,
    )


def _require_resolution(data: TransitionIn) -> None:
    missing = [f for f in ("resolution_code", "resolution_summary") if not getattr(data, f)]
    if missing:
        raise ValidationFailed(
            "resolving needs a resolution code and summary",
            [FieldError(["body", f], "required when resolving") for f in missing],
        )


def _resolve(ticket: Ticket, data: TransitionIn, now: datetime) -> None:
    if ticket.first_responded_at is None:
        # The resolution reaches the customer: it is the first response when none came before.
        ticket.first_responded_at = now
    ticket.resolved_at = now
    ticket.resolution_code = data.resolution_code
    ticket.resolution_summary = data.resolution_summary
    if data.compensation is not None:
        if ticket.compensation_entry_id is not None:
            raise Conflict(
                "compensation for this ticket was already paid; it is paid once per ticket",
                extra={"compensation_entry_id": str(ticket.compensation_entry_id)},
            )
        ticket.compensation_points = data.compensation.points
        ticket.compensation_fen = data.compensation.amount_fen
        ticket.compensation_note = data.compensation.note


async def add_comment(
    session: AsyncSession,
    principal: Principal,
    ticket_id: uuid.UUID,
    data: CommentIn,
    now: datetime,
) -> TicketEvent:
    """A public reply to the customer (meets the first-response clock) or an internal note."""
    principal.require("tickets:write")
    ticket = await _find(session, principal.tenant_id, ticket_id, lock=True)
    _refuse_if_closed(ticket)
    public = data.visibility is Visibility.public
    if public and ticket.first_responded_at is None:
        _settle_breaches(ticket, now)
        ticket.first_responded_at = now
        _requeue(ticket)
        _touch(ticket, now)
    kind = "public_reply" if public else "internal_note"
    event = _event(
        session, ticket, await actor_of(session, principal), kind, {"body": data.body}, now
    )
    await session.flush()
    return event


async def list_events(
    session: AsyncSession,
    actor: Principal,
    ticket_id: uuid.UUID,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[TicketEvent], str | None]:
    """The timeline, oldest first."""
    actor.require("tickets:read")
    await _find(session, actor.tenant_id, ticket_id)
    query = select(TicketEvent).where(
        TicketEvent.tenant_id == actor.tenant_id, TicketEvent.ticket_id == ticket_id
    )
    if cursor:
        query = query.where(TicketEvent.id > cursor_id(cursor))
    rows = (await session.scalars(query.order_by(TicketEvent.id).limit(limit + 1))).all()
    page = rows[:limit]
    return page, encode_cursor({"id": str(page[-1].id)}) if len(rows) > limit else None
