"""SLA clocks: business-hours arithmetic, due times through the API, pauses, and the queue."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.services.tickets.sla import Calendar, add, elapsed
from tests.conftest import TestClock
from tests.factories import TenantCtx, TenantFactory
from tests.tickets.helpers import move, open_ticket

SH = ZoneInfo("Asia/Shanghai")
HOURS = {d: [(9 * 60, 12 * 60), (13 * 60, 18 * 60)] for d in range(5)}
CAL = Calendar(
    "Asia/Shanghai",
    HOURS,
    holidays=frozenset({date(2026, 10, 1), date(2026, 10, 2)}),
    workdays=frozenset({date(2026, 10, 10)}),
)


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)  # type: ignore[misc]


# --- calendar arithmetic -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        (sh(2026, 3, 2, 10, 0), 1, sh(2026, 3, 2, 11, 0)),  # inside a window
        (sh(2026, 3, 2, 11, 30), 1, sh(2026, 3, 2, 13, 30)),  # across lunch
        (sh(2026, 3, 6, 17, 0), 2, sh(2026, 3, 9, 10, 0)),  # Friday evening -> Monday
        (sh(2026, 3, 7, 15, 0), 1, sh(2026, 3, 9, 10, 0)),  # opened on a Saturday
        (sh(2026, 3, 2, 7, 0), 8, sh(2026, 3, 2, 18, 0)),  # before opening: a full day
        (sh(2026, 9, 30, 17, 0), 2, sh(2026, 10, 5, 10, 0)),  # over the National Day holiday
        (sh(2026, 10, 9, 17, 0), 2, sh(2026, 10, 10, 10, 0)),  # make-up Saturday is worked
    ],
)
def test_business_hours_are_added_across_breaks_weekends_and_holidays(
    start: datetime, hours: int, due: datetime
) -> None:
    assert add(start, hours * 3600, CAL) == due
    assert elapsed(start, due, CAL) == hours * 3600


def test_without_a_calendar_the_clock_is_wall_time() -> None:
    start = sh(2026, 3, 6, 17, 0)
    assert add(start, 7200, None) == start + timedelta(hours=2)
    assert elapsed(start, start + timedelta(days=2), None) == 2 * 86400


def test_elapsed_counts_only_working_time() -> None:
    assert elapsed(sh(2026, 3, 6, 17, 0), sh(2026, 3, 9, 9, 30), CAL) == 90 * 60
    assert elapsed(sh(2026, 3, 7, 0, 0), sh(2026, 3, 8, 23, 0), CAL) == 0


# --- through the API -----------------------------------------------------------------------


@pytest.fixture
async def tenant(tenants: TenantFactory) -> TenantCtx:
    t = await tenants.create()
    settings = {
        "timezone": "Asia/Shanghai",
        "working_hours": {
            d: [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "18:00"}]
            for d in ("mon", "tue", "wed", "thu", "fri")
        },
        "holidays": ["2026-10-01", "2026-10-02"],
        "workdays": ["2026-10-10"],
        "at_risk_minutes": 60,
    }
    response = await t.request("PUT", "/api/v1/ticket-settings", json=settings)
    assert response.status_code == 200, response.text
    for priority, first, resolution, business in [
        ("p2", 120, 16 * 60, True),
        ("p1", 30, 240, False),
    ]:
        put = await t.request(
            "PUT",
            f"/api/v1/sla-policies/{priority}",
            json={
                "first_response_minutes": first,
                "resolution_minutes": resolution,
                "business_hours": business,
            },
        )
        assert put.status_code == 200, put.text
    return t


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_due_times_follow_the_business_calendar(tenant: TenantCtx, clock: TestClock) -> None:
    clock.set(sh(2026, 9, 30, 17, 0))
    customer = await tenant.customer()
    ticket = await open_ticket(tenant, customer["id"], priority="p2")
    sla = ticket["sla"]
    assert sla["business_hours"] is True
    assert _at(sla["first_response_due_at"]) == sh(2026, 10, 5, 10, 0)
    # 16 working hours: 1 on Sep 30, none on the holidays or the weekend, 8 on Oct 5, 7 on Oct 6.
    assert _at(sla["resolution_due_at"]) == sh(2026, 10, 6, 17, 0)
    assert _at(sla["next_due_at"]) == sh(2026, 10, 5, 10, 0)


async def test_a_p1_policy_runs_around_the_clock(tenant: TenantCtx, clock: TestClock) -> None:
    clock.set(sh(2026, 3, 7, 23, 0))
    customer = await tenant.customer()
    ticket = await open_ticket(tenant, customer["id"], priority="p1")
    assert _at(ticket["sla"]["first_response_due_at"]) == sh(2026, 3, 7, 23, 30)
    assert _at(ticket["sla"]["resolution_due_at"]) == sh(2026, 3, 8, 3, 0)


async def test_pending_pauses_the_clock_and_resuming_extends_due_times(
    tenant: TenantCtx, clock: TestClock
) -> None:
    clock.set(sh(2026, 3, 2, 9, 0))  # Monday
    customer = await tenant.customer()
    ticket = await open_ticket(tenant, customer["id"], priority="p2")
    url = f"/api/v1/tickets/{ticket['id']}"
    await move(tenant, ticket["id"], "open")
    reply = await tenant.request("POST", f"{url}/comments", json={"body": "您好"})
    assert reply.status_code == 201
    assert _at(ticket["sla"]["resolution_due_at"]) == sh(2026, 3, 3, 18, 0)
    clock.set(sh(2026, 3, 2, 11, 0))
    pending = await move(tenant, ticket["id"], "pending")
    assert pending["sla"]["paused"] is True
    assert pending["sla"]["next_due_at"] is None
    # The customer answers three working hours later (11:00-12:00, 13:00-15:00).
    clock.set(sh(2026, 3, 2, 15, 0))
    resumed = await move(tenant, ticket["id"], "open")
    assert resumed["sla"]["paused"] is False
    assert resumed["sla"]["paused_seconds"] == 3 * 3600
    assert _at(resumed["sla"]["resolution_due_at"]) == sh(2026, 3, 4, 12, 0)
    assert _at(resumed["sla"]["next_due_at"]) == sh(2026, 3, 4, 12, 0)


async def test_first_public_reply_meets_the_first_response_clock(
    tenant: TenantCtx, clock: TestClock
) -> None:
    clock.set(sh(2026, 3, 2, 9, 0))
    customer = await tenant.customer()
    on_time = await open_ticket(tenant, customer["id"], priority="p2")
    late = await open_ticket(tenant, customer["id"], priority="p2")
    clock.set(sh(2026, 3, 2, 10, 0))
    note = await tenant.request(
        "POST",
        f"/api/v1/tickets/{on_time['id']}/comments",
        json={"body": "内部备注", "visibility": "internal"},
    )
    assert note.json()["kind"] == "internal_note"
    still = (await tenant.request("GET", f"/api/v1/tickets/{on_time['id']}")).json()
    assert still["sla"]["first_responded_at"] is None
    await tenant.request(
        "POST", f"/api/v1/tickets/{on_time['id']}/comments", json={"body": "您好，在处理"}
    )
    clock.set(sh(2026, 3, 2, 11, 30))
    await tenant.request("POST", f"/api/v1/tickets/{late['id']}/comments", json={"body": "抱歉"})
    first = (await tenant.request("GET", f"/api/v1/tickets/{on_time['id']}")).json()["sla"]
    second = (await tenant.request("GET", f"/api/v1/tickets/{late['id']}")).json()["sla"]
    assert _at(first["first_responded_at"]) == sh(2026, 3, 2, 10, 0)
    assert first["first_response_breached"] is False
    assert second["first_response_breached"] is True
    assert _at(first["next_due_at"]) == _at(first["resolution_due_at"])


async def test_the_sla_queue_lists_breached_and_at_risk_tickets_most_urgent_first(
    tenant: TenantCtx, clock: TestClock
) -> None:
    clock.set(sh(2026, 3, 2, 9, 0))
    customer = await tenant.customer()
    urgent = await open_ticket(tenant, customer["id"], priority="p1")  # first response 09:30
    normal = await open_ticket(tenant, customer["id"], priority="p2")  # first response 11:00
    paused = await open_ticket(tenant, customer["id"], priority="p1")
    await move(tenant, paused["id"], "open")
    await move(tenant, paused["id"], "pending")
    done = await open_ticket(tenant, customer["id"], priority="p1")
    await move(tenant, done["id"], "open")
    await move(tenant, done["id"], "resolved")

    async def queue(state: str) -> list[str]:
        response = await tenant.request("GET", "/api/v1/tickets", params={"sla": state})
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["items"]]

    clock.set(sh(2026, 3, 2, 9, 0))
    assert await queue("at_risk") == [urgent["id"]]
    assert await queue("breached") == []
    clock.set(sh(2026, 3, 2, 10, 15))
    assert await queue("breached") == [urgent["id"]]
    assert await queue("at_risk") == [normal["id"]]
    clock.set(sh(2026, 3, 2, 11, 1))
    assert await queue("breached") == [urgent["id"], normal["id"]]
    listed = (await tenant.request("GET", f"/api/v1/tickets/{urgent['id']}")).json()
    assert listed["sla"]["first_response_breached"] is True
    page = (
        await tenant.request("GET", "/api/v1/tickets", params={"sla": "breached", "limit": 1})
    ).json()
    rest = (
        await tenant.request(
            "GET",
            "/api/v1/tickets",
            params={"sla": "breached", "limit": 1, "cursor": page["next_cursor"]},
        )
    ).json()
    assert [t["id"] for t in page["items"] + rest["items"]] == [urgent["id"], normal["id"]]
    assert rest["next_cursor"] is None


async def test_a_breach_before_a_pause_stays_recorded(tenant: TenantCtx, clock: TestClock) -> None:
    clock.set(sh(2026, 3, 2, 9, 0))
    customer = await tenant.customer()
    ticket = await open_ticket(tenant, customer["id"], priority="p1")
    await move(tenant, ticket["id"], "open")
    clock.set(sh(2026, 3, 2, 9, 45))
    pending = await move(tenant, ticket["id"], "pending")
    assert pending["sla"]["first_response_breached"] is True
    assert pending["sla"]["resolution_breached"] is False


async def test_raising_priority_recomputes_due_times(tenant: TenantCtx, clock: TestClock) -> None:
    clock.set(sh(2026, 3, 2, 9, 0))
    customer = await tenant.customer()
    ticket = await open_ticket(tenant, customer["id"], priority="p2")
    clock.set(sh(2026, 3, 2, 9, 10))
    raised = await tenant.request(
        "PATCH", f"/api/v1/tickets/{ticket['id']}", json={"priority": "p1"}
    )
    body = raised.json()
    assert body["priority"] == "p1"
    assert body["sla"]["business_hours"] is False
    assert _at(body["sla"]["first_response_due_at"]) == sh(2026, 3, 2, 9, 30)
    events = (await tenant.request("GET", f"/api/v1/tickets/{ticket['id']}/events")).json()
    assert events["items"][-1]["kind"] == "priority_changed"
    assert events["items"][-1]["data"] == {"from": "p2", "to": "p1"}


async def test_reopening_restarts_the_resolution_clock(tenant: TenantCtx, clock: TestClock) -> None:
    clock.set(sh(2026, 3, 2, 9, 0))
    customer = await tenant.customer()
    ticket = await open_ticket(tenant, customer["id"], priority="p1")
    await move(tenant, ticket["id"], "open")
    await move(tenant, ticket["id"], "resolved")
    clock.set(sh(2026, 3, 3, 9, 0))
    reopened = await move(tenant, ticket["id"], "open")
    assert _at(reopened["sla"]["resolution_due_at"]) == sh(2026, 3, 3, 13, 0)
    assert reopened["sla"]["next_due_at"] == reopened["sla"]["resolution_due_at"]


async def test_settings_validation_and_etag(tenant: TenantCtx) -> None:
    current = await tenant.request("GET", "/api/v1/ticket-settings")
    tag = current.headers["etag"]
    bad = await tenant.request(
        "PUT",
        "/api/v1/ticket-settings",
        json={
            "timezone": "Mars/Olympus",
            "working_hours": {
                "mon": [{"start": "09:00", "end": "12:00"}, {"start": "11:00", "end": "14:00"}],
                "funday": [],
            },
        },
    )
    assert bad.status_code == 422
    locs = {tuple(e["loc"]) for e in bad.json()["errors"]}
    assert locs == {
        ("body", "timezone"),
        ("body", "working_hours", "mon"),
        ("body", "working_hours", "funday"),
    }
    backwards = await tenant.request(
        "PUT",
        "/api/v1/ticket-settings",
        json={"working_hours": {"mon": [{"start": "18:00", "end": "09:00"}]}},
    )
    assert backwards.status_code == 422
    ok = await tenant.request(
        "PUT", "/api/v1/ticket-settings", json={"reopen_window_days": 14}, headers={"If-Match": tag}
    )
    assert ok.status_code == 200
    stale = await tenant.request(
        "PUT", "/api/v1/ticket-settings", json={"reopen_window_days": 1}, headers={"If-Match": tag}
    )
    assert stale.status_code == 412


async def test_sla_policies_list_defaults_and_validate(tenants: TenantFactory) -> None:
    fresh = await tenants.create()
    policies = (await fresh.request("GET", "/api/v1/sla-policies")).json()
    assert [p["priority"] for p in policies] == ["p1", "p2", "p3", "p4"]
    assert all(p["is_default"] for p in policies)
    bad = await fresh.request(
        "PUT",
        "/api/v1/sla-policies/p3",
        json={"first_response_minutes": 600, "resolution_minutes": 60, "business_hours": True},
    )
    assert bad.status_code == 422
    unknown = await fresh.request(
        "PUT",
        "/api/v1/sla-policies/p9",
        json={"first_response_minutes": 6, "resolution_minutes": 60, "business_hours": True},
    )
    assert unknown.status_code == 422
    agent = await fresh.request(
        "PUT",
        "/api/v1/sla-policies/p3",
        role="agent",
        json={"first_response_minutes": 6, "resolution_minutes": 60, "business_hours": True},
    )
    assert agent.status_code == 403
