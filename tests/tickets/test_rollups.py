"""The summary report over per-day rollups: same answers as straight from the tickets, before
and after the rebuild job, across ranges, changes, running clocks and a time zone change."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text, update

from app.models import Ticket, TicketRollup, TicketRollupDay, TicketRollupDirty
from app.runtime import Runtime
from app.services.tickets.jobs import REFRESH_TASK
from app.services.tickets.reports import percentile_cont_median
from tests.conftest import RunJobs, TestClock
from tests.factories import TenantFactory
from tests.tickets import test_reports as reference
from tests.tickets.test_reports import NOW, World

SUMMARY = "/api/v1/ticket-reports/summary"


@pytest.fixture(scope="module")
def rng() -> random.Random:
    return random.Random(20261126)


@pytest.fixture
async def world(tenants: TenantFactory, runtime: Runtime, rng: random.Random) -> World:
    return await reference._generate(tenants, runtime, rng)


async def _rebuild(runtime: Runtime, run_jobs: RunJobs) -> None:
    await runtime.jobs.configure_task(REFRESH_TASK).defer_async(timestamp=0)
    await run_jobs()


async def _count(runtime: Runtime, world: World, model: type) -> int:
    async with runtime.sessions() as session:
        query = select(func.count()).select_from(model)
        result = await session.scalar(query.where(model.tenant_id == world.tenant.tenant_id))
        return int(result or 0)


async def _report(world: World, **params: str) -> list[dict[str, object]]:
    response = await world.tenant.request("GET", SUMMARY, params=params)
    assert response.status_code == 200, response.text
    rows: list[dict[str, object]] = response.json()["rows"]
    return rows


@pytest.mark.parametrize("dimension", list(reference.KEYS))
async def test_summary_from_rollups_matches_an_independent_computation(
    world: World, runtime: Runtime, run_jobs: RunJobs, clock: TestClock, dimension: str
) -> None:
    clock.set(NOW)
    before = await _report(world, group_by=dimension)
    assert await _count(runtime, world, TicketRollupDirty) > 0
    await _rebuild(runtime, run_jobs)
    assert await _count(runtime, world, TicketRollupDirty) == 0
    assert await _count(runtime, world, TicketRollupDay) > 0
    after = await _report(world, group_by=dimension)
    expected = reference._expected_summary(world, dimension, world.tickets)
    reference._assert_rows_equal(after, expected)
    assert after == before  # the same doubles from rollups as straight from the tickets


async def test_rollup_medians_are_postgres_percentile_cont_exactly(
    world: World, runtime: Runtime, run_jobs: RunJobs, clock: TestClock
) -> None:
    clock.set(NOW)
    await _rebuild(runtime, run_jobs)
    async with runtime.sessions() as session:
        result = await session.execute(
            text(
                """
                SELECT kind,
                    percentile_cont(0.5) WITHIN GROUP (
                        ORDER BY date_part('epoch', first_responded_at - created_at) / 60),
                    percentile_cont(0.5) WITHIN GROUP (
                        ORDER BY date_part('epoch', resolved_at - created_at) / 60)
                FROM tickets WHERE tenant_id = :t GROUP BY kind
                """
            ),
            {"t": world.tenant.tenant_id},
        )
        postgres = {row[0]: (row[1], row[2]) for row in result}
    rows = await _report(world, group_by="kind")
    assert {
        r["key"]: (r["first_response_median_minutes"], r["resolution_median_minutes"]) for r in rows
    } == postgres


def test_median_interpolates_like_percentile_cont() -> None:
    assert percentile_cont_median([]) is None
    assert percentile_cont_median([[], []]) is None
    assert percentile_cont_median([[3.0]]) == 3.0
    assert percentile_cont_median([[1.0, 4.0], [2.0]]) == 2.0
    assert percentile_cont_median([[1.0, 10.0], [2.0, 2.5]]) == 2.25
    assert percentile_cont_median([[0.1, 0.7], [0.2]]) == 0.2


async def test_range_with_partial_days_mixes_rollups_and_tickets(
    world: World, runtime: Runtime, run_jobs: RunJobs, clock: TestClock
) -> None:
    clock.set(NOW)
    await _rebuild(runtime, run_jobs)
    after = NOW - timedelta(days=40, hours=5, minutes=17)
    before = NOW - timedelta(days=10, hours=3)
    rows = await _report(
        world,
        group_by="category",
        created_after=after.isoformat(),
        created_before=before.isoformat(),
    )
    inside = [t for t in world.tickets if after <= t.created_at < before]
    assert 0 < len(inside) < len(world.tickets)
    reference._assert_rows_equal(rows, reference._expected_summary(world, "category", inside))


async def test_a_changed_ticket_is_read_from_tickets_until_its_day_is_rebuilt(
    world: World, runtime: Runtime, run_jobs: RunJobs, clock: TestClock
) -> None:
    clock.set(NOW)
    await _rebuild(runtime, run_jobs)
    changed = world.tickets[0]
    async with runtime.sessions() as session:
        await session.execute(
            update(Ticket)
            .where(Ticket.tenant_id == changed.tenant_id, Ticket.id == changed.id)
            .values(kind="suggestion", csat_score=None, reopen_count=3)
        )
        await session.commit()
    changed.kind, changed.reopen_count = "suggestion", 3
    world.csat.pop(changed.id, None)
    assert await _count(runtime, world, TicketRollupDirty) == 1
    for dimension in ("kind", "day"):
        expected = reference._expected_summary(world, dimension, world.tickets)
        reference._assert_rows_equal(await _report(world, group_by=dimension), expected)
    await _rebuild(runtime, run_jobs)
    assert await _count(runtime, world, TicketRollupDirty) == 0
    expected = reference._expected_summary(world, "kind", world.tickets)
    reference._assert_rows_equal(await _report(world, group_by="kind"), expected)


async def test_running_clocks_breach_live_on_built_days(
    world: World, runtime: Runtime, run_jobs: RunJobs, clock: TestClock
) -> None:
    clock.set(NOW)
    await _rebuild(runtime, run_jobs)
    later = NOW + timedelta(days=60)
    clock.set(later)
    groups: dict[str, list[bool]] = defaultdict(list)
    for t in world.tickets:
        groups[t.kind].append(
            t.first_response_breached
            or t.resolution_breached
            or (t.sla_due_at is not None and t.sla_due_at <= later)
        )
    rows = await _report(world, group_by="kind")
    assert {r["key"]: r["sla_breach_rate"] for r in rows} == {
        k: pytest.approx(sum(v) / len(v)) for k, v in groups.items()
    }
    moved = [t for t in world.tickets if t.sla_due_at is not None and NOW < t.sla_due_at <= later]
    assert moved  # the generated running clocks do pass their due times in between


async def test_a_time_zone_change_rebuilds_every_day(
    world: World, runtime: Runtime, run_jobs: RunJobs, clock: TestClock
) -> None:
    clock.set(NOW)
    await _rebuild(runtime, run_jobs)
    settings = await world.tenant.request("GET", "/api/v1/ticket-settings")
    body = {**settings.json(), "timezone": "America/New_York"}
    put = await world.tenant.request(
        "PUT",
        "/api/v1/ticket-settings",
        json=body,
        headers={"If-Match": settings.headers["etag"]},
    )
    assert put.status_code == 200, put.text
    ny = ZoneInfo("America/New_York")
    expected_days: dict[str, int] = defaultdict(int)
    for t in world.tickets:
        expected_days[t.created_at.astimezone(ny).strftime("%Y-%m-%d")] += 1
    for _ in range(2):  # days built in Asia/Shanghai are not used; then rebuilt in New York
        rows = await _report(world, group_by="day")
        assert {r["key"]: r["tickets"] for r in rows} == expected_days
        await _rebuild(runtime, run_jobs)
    async with runtime.sessions() as session:
        zones = await session.scalars(
            select(TicketRollupDay.timezone)
            .where(TicketRollupDay.tenant_id == world.tenant.tenant_id)
            .distinct()
        )
        assert list(zones) == ["America/New_York"]


async def test_rollups_are_per_tenant(
    tenants: TenantFactory, world: World, runtime: Runtime, run_jobs: RunJobs, clock: TestClock
) -> None:
    clock.set(datetime(2026, 6, 30, 12, 0, tzinfo=UTC))
    other = await tenants.create()
    await _rebuild(runtime, run_jobs)
    assert await _count(runtime, world, TicketRollup) > 0
    response = await other.request("GET", SUMMARY, params={"group_by": "kind"})
    assert response.json()["rows"] == []
