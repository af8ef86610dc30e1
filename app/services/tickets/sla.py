"""SLA clock arithmetic: business-hours calendars (working hours, holidays, make-up workdays).

A clock measures "SLA seconds": wall-clock seconds for 24x7 policies, working seconds for
business-hours ones. Due times are start + target + time spent paused, all in the clock's own
seconds, so a pause, a priority change or a reopen is one recomputation, never a scan.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Make-up workdays (调休) are worked like an ordinary Monday.
MAKE_UP_WEEKDAY = 0
# A target cannot need more than this many calendar days to elapse (keeps a bad calendar finite).
MAX_DAYS = 3 * 366

Interval = tuple[int, int]  # minutes since local midnight, [start, end)


@dataclass(frozen=True)
class Calendar:
    """Working hours per weekday (Monday = 0) in a time zone, with holidays and extra workdays."""

    timezone: str = "Asia/Shanghai"
    hours: Mapping[int, Sequence[Interval]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def intervals(self, day: date) -> Sequence[Interval]:
        if day in self.holidays:
            return ()
        if day in self.workdays:
            return self.hours.get(MAKE_UP_WEEKDAY, ())
        return self.hours.get(day.weekday(), ())

    def has_hours(self) -> bool:
        return any(self.hours.get(d) for d in range(7)) or bool(
            self.workdays and self.hours.get(MAKE_UP_WEEKDAY)
        )


def _windows(calendar: Calendar, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The calendar's working windows (UTC) from the local day containing `start` onwards."""
    zone = calendar.zone
    day = start.astimezone(zone).date()
    for offset in range(MAX_DAYS + 1):
        current = day + timedelta(days=offset)
        for begin, end in calendar.intervals(current):
            yield _at(current, begin, zone), _at(current, end, zone)


def _at(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    local = datetime.combine(day, time(0), tzinfo=zone) + timedelta(minutes=minutes)
    return local.astimezone(UTC)


def add(start: datetime, seconds: int, calendar: Calendar | None) -> datetime:
    """The moment `seconds` of clock time after `start` (24x7 when there is no calendar)."""
    if calendar is None or not calendar.has_hours():
        return start + timedelta(seconds=seconds)
    remaining = timedelta(seconds=max(seconds, 0))
    for begin, end in _windows(calendar, start):
        if end <= start:
            continue
        begin = max(begin, start)
        if begin + remaining <= end:
            return begin + remaining
        remaining -= end - begin
    raise ValueError("the business calendar has too few working hours to reach this target")


def elapsed(start: datetime, end: datetime, calendar: Calendar | None) -> int:
    """Clock seconds between `start` and `end` (0 when end is not after start)."""
    if end <= start:
        return 0
    if calendar is None or not calendar.has_hours():
        return int((end - start).total_seconds())
    total = timedelta()
    for begin, finish in _windows(calendar, start):
        if begin >= end:
            break
        overlap = min(finish, end) - max(begin, start)
        if overlap > timedelta():
            total += overlap
    return int(total.total_seconds())


@dataclass(frozen=True)
class Targets:
    first_response_minutes: int
    resolution_minutes: int
    business_hours: bool


@dataclass(frozen=True)
class Dues:
    first_response_due_at: datetime
    resolution_due_at: datetime


def dues(
    created_at: datetime,
    clock_started_at: datetime,
    paused_seconds: int,
    targets: Targets,
    calendar: Calendar,
) -> Dues:
    """Due times for a ticket's clocks: the time spent paused is added back to each target."""
    used = calendar if targets.business_hours else None
    return Dues(
        first_response_due_at=add(
            created_at, targets.first_response_minutes * 60 + paused_seconds, used
        ),
        resolution_due_at=add(
            clock_started_at, targets.resolution_minutes * 60 + paused_seconds, used
        ),
    )


def paused_for(
    paused_at: datetime, resumed_at: datetime, business_hours: bool, calendar: Calendar
) -> int:
    return elapsed(paused_at, resumed_at, calendar if business_hours else None)
