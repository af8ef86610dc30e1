"""The ticket state machine through the API: every legal and illegal transition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.schemas.tickets import TicketStatus
from app.services.tickets.states import TRANSITIONS
from tests.conftest import TestClock
from tests.factories import TenantCtx, TenantFactory
from tests.tickets.helpers import move, open_ticket

# How to reach each status from `new`.
PATHS: dict[str, list[str]] = {
    "new": [],
    "open": ["open"],
    "pending": ["open", "pending"],
    "resolved": ["open", "resolved"],
    "closed": ["open", "resolved", "closed"],
}
LEGAL = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
ALL_PAIRS = [(a, b) for a in PATHS for b in PATHS]


@pytest.fixture
async def tenant(tenants: TenantFactory) -> TenantCtx:
    return await tenants.create()


async def _ticket_in(tenant: TenantCtx, status: str) -> dict[str, Any]:
    customer = await tenant.customer()
    ticket = await open_ticket(tenant, customer["id"])
    for step in PATHS[status]:
        ticket = await move(tenant, ticket["id"], step)
    assert ticket["status"] == status
    return ticket


def test_the_state_machine_is_the_issue_s() -> None:
    assert {
        ("new", "open"),
        ("open", "pending"),
        ("pending", "open"),
        ("open", "resolved"),
        ("resolved", "open"),
        ("resolved", "closed"),
    } == LEGAL


@pytest.mark.parametrize(("current", "target"), sorted(LEGAL))
async def test_legal_transition_succeeds(tenant: TenantCtx, current: str, target: str) -> None:
    ticket = await _ticket_in(tenant, current)
    assert target in ticket["allowed_transitions"]
    moved = await move(tenant, ticket["id"], target)
    assert moved["status"] == target
    events = (await tenant.request("GET", f"/api/v1/tickets/{ticket['id']}/events")).json()
    last = events["items"][-1]
    assert last["kind"] == "status_changed"
    assert (last["data"]["from"], last["data"]["to"]) == (current, target)


@pytest.mark.parametrize(("current", "target"), [p for p in ALL_PAIRS if p not in LEGAL])
async def test_illegal_transition_is_409_with_the_allowed_ones(
    tenant: TenantCtx, current: str, target: str
) -> None:
    ticket = await _ticket_in(tenant, current)
    body: dict[str, Any] = {"to": target}
    if target == "resolved":
        body |= {"resolution_code": "x", "resolution_summary": "y"}
    response = await tenant.request(
        "POST", f"/api/v1/tickets/{ticket['id']}/transitions", json=body
    )
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["type"].endswith("/invalid-transition")
    assert problem["status"] == current
    assert problem["allowed_transitions"] == [t.value for t in TRANSITIONS[TicketStatus(current)]]
    after = (await tenant.request("GET", f"/api/v1/tickets/{ticket['id']}")).json()
    assert after["status"] == current
    assert after["updated_at"] == ticket["updated_at"]


async def test_resolving_needs_code_and_summary(tenant: TenantCtx) -> None:
    ticket = await _ticket_in(tenant, "open")
    response = await tenant.request(
        "POST", f"/api/v1/tickets/{ticket['id']}/transitions", json={"to": "resolved"}
    )
    assert response.status_code == 422
    locs = [e["loc"] for e in response.json()["errors"]]
    assert locs == [["body", "resolution_code"], ["body", "resolution_summary"]]


async def test_resolution_records_compensation(tenant: TenantCtx) -> None:
    ticket = await _ticket_in(tenant, "open")
    resolved = await move(
        tenant,
        ticket["id"],
        "resolved",
        resolution_code="refund",
        resolution_summary="退款 5 元",
        compensation={"points": 200, "amount_fen": 500, "note": "物流延误"},
    )
    assert resolved["resolution_code"] == "refund"
    assert resolved["compensation"] == {"points": 200, "amount_fen": 500, "note": "物流延误"}


async def test_reopen_only_inside_the_window(tenant: TenantCtx, clock: TestClock) -> None:
    clock.set(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))
    await tenant.request("PUT", "/api/v1/ticket-settings", json={"reopen_window_days": 3})
    early = await _ticket_in(tenant, "resolved")
    late = await _ticket_in(tenant, "resolved")
    clock.advance(timedelta(days=2))
    reopened = await move(tenant, early["id"], "open")
    assert reopened["reopen_count"] == 1
    assert reopened["resolution_code"] is None
    assert reopened["resolved_at"] is None
    clock.advance(timedelta(days=2))
    expired = (await tenant.request("GET", f"/api/v1/tickets/{late['id']}")).json()
    assert expired["allowed_transitions"] == ["closed"]
    refused = await tenant.request(
        "POST", f"/api/v1/tickets/{late['id']}/transitions", json={"to": "open"}
    )
    assert refused.status_code == 409
    assert "reopen window" in refused.json()["detail"]
    assert refused.json()["allowed_transitions"] == ["closed"]
    assert (await move(tenant, late["id"], "closed"))["closed_at"] is not None


async def test_a_closed_ticket_takes_no_more_changes(tenant: TenantCtx) -> None:
    ticket = await _ticket_in(tenant, "closed")
    url = f"/api/v1/tickets/{ticket['id']}"
    assert ticket["allowed_transitions"] == []
    patched = await tenant.request("PATCH", url, json={"subject": "改"})
    assert patched.status_code == 409
    comment = await tenant.request("POST", f"{url}/comments", json={"body": "hi"})
    assert comment.status_code == 409
