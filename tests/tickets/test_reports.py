"""Ticket reports against an independent computation in Python over generated tickets."""

from __future__ import annotations

import random
import statistics
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.models import NpsResponse, Ticket, TicketItem, TicketStaff, TicketSurvey
from app.models.base import new_id
from app.runtime import Runtime
from tests.conftest import TestClock
from tests.factories import TenantCtx, TenantFactory
from tests.tickets.helpers import insert_order

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
SH = ZoneInfo("Asia/Shanghai")
KINDS = ["complaint", "after_sale", "praise", "inquiry"]
CATEGORIES = ["logistics", "product_quality", "price"]
CHANNELS = ["tmall_chat", "pdd_chat", "phone"]
PRODUCTS = [("CUP-1", "保温杯"), ("CUP-2", "马克杯"), (None, "无编码杯垫")]


@dataclass
class World:
    tenant: TenantCtx
    tickets: list[Ticket]
    csat: dict[uuid.UUID, int]
    nps: list[NpsResponse]
    items: dict[uuid.UUID, set[int]]
    lines: dict[int, tuple[str | None, str]]


@pytest.fixture(scope="module")
def rng() -> random.Random:
    return random.Random(20260630)


async def _generate(tenants: TenantFactory, runtime: Runtime, rng: random.Random) -> World:
    tenant = await tenants.create()
    customers = [(await tenant.customer())["id"] for _ in range(4)]
    shop = await tenant.shop()
    order_id = await insert_order(runtime, tenant, shop["id"], customers[0], PRODUCTS)
    await tenant.request("GET", "/api/v1/ticket-categories")  # seeds the default catalogue
    staff = [
        TicketStaff(
            tenant_id=tenant.tenant_id, id=new_id(), name=f"s{i}", team=None, active=True,
            api_key_id=None, version=1, created_at=NOW, updated_at=NOW,
        )
        for i in range(3)
    ]  # fmt: skip
    tickets: list[Ticket] = []
    csat: dict[uuid.UUID, int] = {}
    items: dict[uuid.UUID, set[int]] = {}
    surveys: list[TicketSurvey] = []
    links: list[TicketItem] = []
    for _ in range(120):
        created = NOW - timedelta(minutes=rng.randint(60, 90 * 24 * 60))
        status = rng.choice(["new", "open", "pending", "resolved", "closed"])
        responded = (
            created + timedelta(minutes=rng.randint(1, 600))
            if status != "new" and rng.random() < 0.9
            else None
        )
        resolved = (
            created + timedelta(minutes=rng.randint(30, 5000))
            if status in ("resolved", "closed")
            else None
        )
        running = status in ("new", "open")
        due = created + timedelta(minutes=rng.randint(10, 200_000))
        ticket = Ticket(
            tenant_id=tenant.tenant_id,
            id=new_id(),
            customer_id=uuid.UUID(rng.choice(customers)),
            order_id=None,
            kind=rng.choice(KINDS),
            category=rng.choice(CATEGORIES),
            channel=rng.choice(CHANNELS),
            priority=rng.choice(["p1", "p2", "p3", "p4"]),
            status=status,
            subject="generated",
            assignee_id=rng.choice([*(s.id for s in staff), None]),
            tags=[],
            sla_business_hours=False,
            first_response_minutes=60,
            resolution_minutes=600,
            clock_started_at=created,
            paused_seconds=0,
            paused_at=created if status == "pending" else None,
            first_response_due_at=due,
            resolution_due_at=due,
            sla_due_at=due if running else None,
            first_responded_at=responded,
            first_response_breached=rng.random() < 0.2,
            resolution_breached=rng.random() < 0.2,
            resolved_at=resolved,
            reopen_count=rng.choice([0, 0, 0, 1, 2]) if status != "new" else 0,
            version=1,
            created_at=created,
            updated_at=created,
        )
        tickets.append(ticket)
        if resolved is not None and rng.random() < 0.6:
            csat[ticket.id] = rng.randint(1, 5)
            ticket.csat_score = csat[ticket.id]
            surveys.append(
                TicketSurvey(
                    tenant_id=tenant.tenant_id, ticket_id=ticket.id, score=csat[ticket.id],
                    comment=None, recorded_at=resolved,
                )
            )  # fmt: skip
        if rng.random() < 0.5:
            ticket.order_id = order_id
            chosen = set(rng.sample([1, 2, 3], rng.randint(1, 3)))
            items[ticket.id] = chosen
            links += [
                TicketItem(tenant_id=tenant.tenant_id, ticket_id=ticket.id, order_id=order_id,
                           line_no=n)
                for n in chosen
            ]  # fmt: skip
    nps = []
    for _ in range(60):
        about = rng.choice([*tickets[:30], None])
        nps.append(
            NpsResponse(
                tenant_id=tenant.tenant_id,
                id=new_id(),
                customer_id=about.customer_id if about else uuid.UUID(rng.choice(customers)),
                ticket_id=about.id if about else None,
                score=rng.randint(0, 10),
                comment=None,
                channel=rng.choice([None, "wechat", "phone"]),
                recorded_at=NOW - timedelta(days=rng.randint(0, 30)),
            )
        )
    async with runtime.sessions() as session:
        session.add_all(staff)
        await session.flush()
        session.add_all(tickets)
        await session.flush()
        session.add_all([*surveys, *links, *nps])
        await session.commit()
    lines = {i + 1: p for i, p in enumerate(PRODUCTS)}
    return World(tenant, tickets, csat, nps, items, lines)


@pytest.fixture
async def world(tenants: TenantFactory, runtime: Runtime, rng: random.Random) -> World:
    return await _generate(tenants, runtime, rng)


def _minutes(later: datetime | None, earlier: datetime) -> float | None:
    return None if later is None else (later - earlier).total_seconds() / 60


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


KEYS: dict[str, Callable[[Ticket], str | None]] = {
    "kind": lambda t: t.kind,
    "category": lambda t: t.category,
    "channel": lambda t: t.channel,
    "priority": lambda t: t.priority,
    "staff": lambda t: str(t.assignee_id) if t.assignee_id else None,
    "day": lambda t: t.created_at.astimezone(SH).strftime("%Y-%m-%d"),
    "week": lambda t: "{}-W{:02d}".format(*t.created_at.astimezone(SH).isocalendar()[:2]),
    "month": lambda t: t.created_at.astimezone(SH).strftime("%Y-%m"),
}


def _expected_summary(world: World, dimension: str, tickets: list[Ticket]) -> list[dict[str, Any]]:
    groups: dict[str | None, list[Ticket]] = defaultdict(list)
    for t in tickets:
        groups[KEYS[dimension](t)].append(t)
    rows = []
    for key in sorted(groups, key=lambda k: (k is None, k or "")):
        group = groups[key]
        breached = [
            t.first_response_breached
            or t.resolution_breached
            or (t.sla_due_at is not None and t.sla_due_at <= NOW)
            for t in group
        ]
        ever = [t for t in group if t.resolved_at is not None or t.reopen_count > 0]
        scores = [float(world.csat[t.id]) for t in group if t.id in world.csat]
        rows.append(
            {
                "key": key,
                "tickets": len(group),
                "first_response_median_minutes": _median(
                    [_minutes(t.first_responded_at, t.created_at) for t in group]
                ),
                "resolution_median_minutes": _median(
                    [_minutes(t.resolved_at, t.created_at) for t in group]
                ),
                "sla_breach_rate": sum(breached) / len(group),
                "reopen_rate": _mean([1.0 if t.reopen_count > 0 else 0.0 for t in ever]),
                "csat_average": _mean(scores),
                "csat_responses": len(scores),
            }
        )
    return rows


def _assert_rows_equal(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [r["key"] for r in actual] == [r["key"] for r in expected]
    for got, want in zip(actual, expected, strict=True):
        for name, value in want.items():
            if isinstance(value, float):
                assert got[name] == pytest.approx(value, abs=1e-6), (got["key"], name)
            else:
                assert got[name] == value, (got["key"], name)


@pytest.mark.parametrize("dimension", list(KEYS))
async def test_summary_matches_an_independent_computation(
    world: World, clock: TestClock, dimension: str
) -> None:
    clock.set(NOW)
    response = await world.tenant.request(
        "GET", "/api/v1/ticket-reports/summary", params={"group_by": dimension}
    )
    assert response.status_code == 200, response.text
    _assert_rows_equal(response.json()["rows"], _expected_summary(world, dimension, world.tickets))


async def test_summary_respects_the_created_range(world: World, clock: TestClock) -> None:
    clock.set(NOW)
    after, before = NOW - timedelta(days=40), NOW - timedelta(days=10)
    response = await world.tenant.request(
        "GET",
        "/api/v1/ticket-reports/summary",
        params={
            "group_by": "category",
            "created_after": after.isoformat(),
            "created_before": before.isoformat(),
        },
    )
    inside = [t for t in world.tickets if after <= t.created_at < before]
    assert 0 < len(inside) < len(world.tickets)
    _assert_rows_equal(response.json()["rows"], _expected_summary(world, "category", inside))


@pytest.mark.parametrize("dimension", ["none", "category", "staff", "channel"])
async def test_nps_matches_an_independent_computation(world: World, dimension: str) -> None:
    by_id = {t.id: t for t in world.tickets}

    def key(n: NpsResponse) -> str | None:
        ticket = by_id.get(n.ticket_id) if n.ticket_id else None
        if dimension == "category":
            return ticket.category if ticket else None
        if dimension == "staff":
            return str(ticket.assignee_id) if ticket and ticket.assignee_id else None
        if dimension == "channel":
            return n.channel or (ticket.channel if ticket else None)
        return None

    groups: dict[str | None, list[int]] = defaultdict(list)
    for n in world.nps:
        groups[key(n)].append(n.score)
    expected = []
    for k in sorted(groups, key=lambda k: (k is None, k or "")):
        scores = groups[k]
        promoters = sum(s >= 9 for s in scores)
        detractors = sum(s <= 6 for s in scores)
        expected.append(
            {
                "key": k,
                "responses": len(scores),
                "promoters": promoters,
                "passives": len(scores) - promoters - detractors,
                "detractors": detractors,
                "nps": 100.0 * (promoters - detractors) / len(scores),
            }
        )
    response = await world.tenant.request(
        "GET", "/api/v1/ticket-reports/nps", params={"group_by": dimension}
    )
    assert response.status_code == 200, response.text
    _assert_rows_equal(response.json()["rows"], expected)


async def test_products_with_the_most_complaints(world: World) -> None:
    counts: dict[tuple[str | None, str], int] = defaultdict(int)
    for t in world.tickets:
        if t.kind != "complaint":
            continue
        for line in world.items.get(t.id, set()):
            counts[world.lines[line]] += 1
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0] or kv[0][1]))
    response = await world.tenant.request("GET", "/api/v1/ticket-reports/products")
    assert response.status_code == 200, response.text
    got = [((r["merchant_code"], r["title"]), r["tickets"]) for r in response.json()["rows"]]
    assert got == expected
    praise = await world.tenant.request(
        "GET", "/api/v1/ticket-reports/products", params={"kind": "praise", "limit": 1}
    )
    assert len(praise.json()["rows"]) <= 1


async def test_reports_follow_live_tickets(tenants: TenantFactory, clock: TestClock) -> None:
    tenant = await tenants.create()
    clock.set(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    customer = await tenant.customer()
    created = await tenant.request(
        "POST",
        "/api/v1/tickets",
        json={"customer_id": customer["id"], "kind": "complaint", "channel": "phone",
              "subject": "慢", "priority": "p1"},
    )  # fmt: skip
    ticket_id = created.json()["id"]
    clock.advance(timedelta(minutes=20))
    await tenant.request("POST", f"/api/v1/tickets/{ticket_id}/transitions", json={"to": "open"})
    await tenant.request("POST", f"/api/v1/tickets/{ticket_id}/comments", json={"body": "在查"})
    clock.advance(timedelta(minutes=40))
    resolved = await tenant.request(
        "POST",
        f"/api/v1/tickets/{ticket_id}/transitions",
        json={"to": "resolved", "resolution_code": "x", "resolution_summary": "y"},
    )
    assert resolved.status_code == 200
    await tenant.request("POST", f"/api/v1/tickets/{ticket_id}/survey", json={"score": 5})
    report = (await tenant.request("GET", "/api/v1/ticket-reports/summary")).json()
    assert report["rows"] == [
        {
            "key": "complaint",
            "tickets": 1,
            "first_response_median_minutes": 20.0,
            "resolution_median_minutes": 60.0,
            "sla_breach_rate": 0.0,
            "reopen_rate": 0.0,
            "csat_average": 5.0,
            "csat_responses": 1,
        }
    ]
