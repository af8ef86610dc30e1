"""Per-tenant ticket configuration: business calendar, reopen window, SLA policies."""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import FieldError, ValidationFailed
from app.models import TicketSettings, TicketSlaPolicy
from app.schemas.tickets import (
    Priority,
    SlaPolicyIn,
    SlaPolicyOut,
    TicketSettingsIn,
    TicketSettingsOut,
    WorkingWindow,
)
from app.services.auth import Principal
from app.services.paging import check_if_match
from app.services.tickets.sla import WEEKDAYS, Calendar, Interval, Targets

# Business-hours targets are in working minutes (a working day is 9 hours by default).
DEFAULT_POLICIES: dict[Priority, Targets] = {
    Priority.p1: Targets(30, 8 * 60, business_hours=False),
    Priority.p2: Targets(2 * 60, 9 * 60, business_hours=True),
    Priority.p3: Targets(4 * 60, 3 * 9 * 60, business_hours=True),
    Priority.p4: Targets(9 * 60, 5 * 9 * 60, business_hours=True),
}


# --- settings and calendar -----------------------------------------------------------------


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _check_settings(data: TicketSettingsIn) -> None:
    errors: list[FieldError] = []
    try:
        ZoneInfo(data.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(
            FieldError(["body", "timezone"], "not an IANA time zone", input=data.timezone)
        )
    for day, windows in data.working_hours.items():
        if day not in WEEKDAYS:
            errors.append(FieldError(["body", "working_hours", day], "use mon, tue, ... sun"))
            continue
        ordered = sorted(windows, key=lambda w: w.start)
        for i in range(1, len(ordered)):
            if ordered[i].start < ordered[i - 1].end:
                errors.append(FieldError(["body", "working_hours", day], "windows overlap"))
                break
    if errors:
        raise ValidationFailed("invalid ticket settings", errors)


def calendar_of(row: TicketSettings | None) -> Calendar:
    data = settings_out(row)
    hours: dict[int, list[Interval]] = {
        WEEKDAYS.index(day): sorted((_minutes(w.start), _minutes(w.end)) for w in windows)
        for day, windows in data.working_hours.items()
    }
    return Calendar(data.timezone, hours, frozenset(data.holidays), frozenset(data.workdays))


def settings_out(row: TicketSettings | None) -> TicketSettingsOut:
    if row is None:
        return TicketSettingsOut()
    return TicketSettingsOut(
        timezone=row.timezone,
        working_hours={
            day: [WorkingWindow.model_validate(w) for w in windows]
            for day, windows in row.working_hours.items()
        },
        holidays=sorted(row.holidays),
        workdays=sorted(row.workdays),
        reopen_window_days=row.reopen_window_days,
        at_risk_minutes=row.at_risk_minutes,
    )


async def load_settings(session: AsyncSession, tenant_id: uuid.UUID) -> TicketSettings | None:
    return await session.get(TicketSettings, tenant_id)


async def get_settings(session: AsyncSession, actor: Principal) -> tuple[TicketSettingsOut, int]:
    actor.require("tickets:read")
    row = await load_settings(session, actor.tenant_id)
    return settings_out(row), row.version if row else 0


async def put_settings(
    session: AsyncSession, actor: Principal, data: TicketSettingsIn, if_match: str | None
) -> tuple[TicketSettingsOut, int]:
    """Replace the settings. Due times already set keep their value until their clock moves."""
    actor.require("tickets:manage")
    _check_settings(data)
    row = await session.get(TicketSettings, actor.tenant_id, with_for_update=True)
    check_if_match(if_match, row.version if row else 0)
    values = {
        "timezone": data.timezone,
        "working_hours": {
            day: [w.model_dump() for w in windows]
            for day, windows in data.working_hours.items()
            if windows
        },
        "holidays": sorted(set(data.holidays)),
        "workdays": sorted(set(data.workdays)),
        "reopen_window_days": data.reopen_window_days,
        "at_risk_minutes": data.at_risk_minutes,
    }
    if row is None:
        row = TicketSettings(tenant_id=actor.tenant_id, version=1, **values)
        session.add(row)
    else:
        for name, value in values.items():
            setattr(row, name, value)
        row.version += 1
    await session.flush()
    return settings_out(row), row.version


# --- SLA policies --------------------------------------------------------------------------


async def targets_for(session: AsyncSession, tenant_id: uuid.UUID, priority: Priority) -> Targets:
    row = await session.get(TicketSlaPolicy, (tenant_id, priority.value))
    if row is None:
        return DEFAULT_POLICIES[priority]
    return Targets(row.first_response_minutes, row.resolution_minutes, row.business_hours)


def _policy_out(priority: Priority, targets: Targets, is_default: bool) -> SlaPolicyOut:
    return SlaPolicyOut(
        priority=priority,
        first_response_minutes=targets.first_response_minutes,
        resolution_minutes=targets.resolution_minutes,
        business_hours=targets.business_hours,
        is_default=is_default,
    )


async def list_policies(session: AsyncSession, actor: Principal) -> list[SlaPolicyOut]:
    actor.require("tickets:read")
    rows = {
        row.priority: row
        for row in await session.scalars(
            select(TicketSlaPolicy).where(TicketSlaPolicy.tenant_id == actor.tenant_id)
        )
    }
    result: list[SlaPolicyOut] = []
    for priority in Priority:
        row = rows.get(priority.value)
        targets = (
            Targets(row.first_response_minutes, row.resolution_minutes, row.business_hours)
            if row
            else DEFAULT_POLICIES[priority]
        )
        result.append(_policy_out(priority, targets, row is None))
    return result


async def put_policy(
    session: AsyncSession, actor: Principal, priority: Priority, data: SlaPolicyIn
) -> SlaPolicyOut:
    """Set one priority's targets; they apply to tickets created or re-prioritised from now on."""
    actor.require("tickets:manage")
    if data.first_response_minutes > data.resolution_minutes:
        raise ValidationFailed(
            "first response cannot be due after resolution",
            [FieldError(["body", "first_response_minutes"], "at most resolution_minutes")],
        )
    values = data.model_dump()
    await session.execute(
        insert(TicketSlaPolicy)
        .values(tenant_id=actor.tenant_id, priority=priority.value, **values)
        .on_conflict_do_update(index_elements=["tenant_id", "priority"], set_=values)
    )
    return _policy_out(
        priority,
        Targets(data.first_response_minutes, data.resolution_minutes, data.business_hours),
        False,
    )
