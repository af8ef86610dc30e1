"""Tickets through the API: create, read, filter, update with ETags, timeline, staff, categories,
order links, satisfaction, compensation, customer merges, roles and tenant isolation."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.models import LoyaltyEntry
from app.runtime import Runtime
from app.services.tickets.hooks import customers_merged
from tests.conftest import TestClock
from tests.factories import TenantCtx, TenantFactory
from tests.tickets.helpers import insert_order, move, open_ticket


@pytest.fixture
async def tenant(tenants: TenantFactory) -> TenantCtx:
    return await tenants.create()


async def _staff(tenant: TenantCtx, name: str, **fields: Any) -> dict[str, Any]:
    response = await tenant.request("POST", "/api/v1/staff", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_create_and_get_a_ticket(tenant: TenantCtx, runtime: Runtime) -> None:
    customer = await tenant.customer()
    shop = await tenant.shop()
    order_id = await insert_order(
        runtime, tenant, shop["id"], customer["id"], [("SKU-1", "保温杯"), ("SKU-2", "杯套")]
    )
    agent = await _staff(tenant, "小李", team="售后")
    created = await tenant.request(
        "POST",
        "/api/v1/tickets",
        json={
            "customer_id": customer["id"],
            "kind": "after_sale",
            "category": "product_quality",
            "channel": "tmall_chat",
            "priority": "p2",
            "subject": "杯子漏水",
            "description": "用了两天就漏水",
            "external_ref": "DS-20260301-1",
            "order_id": str(order_id),
            "order_item_lines": [1],
            "assignee_id": agent["id"],
            "tags": ["退换", "退换", " 质量 "],
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["location"] == f"/api/v1/tickets/{body['id']}"
    assert created.headers["etag"] == '"1"'
    assert body["status"] == "new"
    assert body["allowed_transitions"] == ["open"]
    assert body["order_item_lines"] == [1]
    assert body["tags"] == ["退换", "质量"]
    assert body["assignee_id"] == agent["id"]
    fetched = await tenant.request("GET", f"/api/v1/tickets/{body['id']}")
    assert fetched.json() == body
    events = (await tenant.request("GET", f"/api/v1/tickets/{body['id']}/events")).json()
    assert [e["kind"] for e in events["items"]] == ["created", "assigned", "linked_order"]
    assert events["items"][2]["data"] == {"order_id": str(order_id), "order_item_lines": [1]}


async def test_validation_errors_point_at_fields(tenant: TenantCtx, runtime: Runtime) -> None:
    customer = await tenant.customer()
    shop = await tenant.shop()
    order_id = await insert_order(runtime, tenant, shop["id"], customer["id"], [("A", "a")])
    base = {"customer_id": customer["id"], "kind": "complaint", "channel": "phone", "subject": "x"}
    cases: list[tuple[dict[str, Any], list[Any]]] = [
        ({"kind": "rant"}, ["body", "kind"]),
        ({"channel": "fax"}, ["body", "channel"]),
        ({"priority": "p0"}, ["body", "priority"]),
        ({"subject": ""}, ["body", "subject"]),
        ({"customer_id": str(uuid.uuid4())}, ["body", "customer_id"]),
        ({"category": "nonsense"}, ["body", "category"]),
        ({"assignee_id": str(uuid.uuid4())}, ["body", "assignee_id"]),
        ({"order_id": str(uuid.uuid4())}, ["body", "order_id"]),
        ({"order_id": str(order_id), "order_item_lines": [7]}, ["body", "order_item_lines"]),
        ({"order_item_lines": [1]}, ["body", "order_item_lines"]),
        ({"unknown_field": 1}, ["body", "unknown_field"]),
    ]
    for change, loc in cases:
        response = await tenant.request("POST", "/api/v1/tickets", json=base | change)
        assert response.status_code == 422, (change, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert loc in [e["loc"] for e in response.json()["errors"]], (change, response.json())


async def test_assigning_an_inactive_staff_member_is_refused(tenant: TenantCtx) -> None:
    customer = await tenant.customer()
    gone = await _staff(tenant, "离职员工", active=False)
    response = await tenant.request(
        "POST",
        "/api/v1/tickets",
        json={
            "customer_id": customer["id"],
            "kind": "inquiry",
            "channel": "wechat",
            "subject": "问价",
            "assignee_id": gone["id"],
        },
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["msg"] == "this staff member is not active"


async def test_stale_if_match_is_412_and_changes_nothing(tenant: TenantCtx) -> None:
    customer = await tenant.customer()
    ticket = await open_ticket(tenant, customer["id"])
    url = f"/api/v1/tickets/{ticket['id']}"
    first = await tenant.request("PATCH", url, json={"subject": "新"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200
    assert first.headers["etag"] == '"2"'
    stale = await tenant.request("PATCH", url, json={"subject": "旧"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["current_etag"] == '"2"'
    stale_move = await tenant.request(
        "POST", f"{url}/transitions", json={"to": "open"}, headers={"If-Match": '"1"'}
    )
    assert stale_move.status_code == 412
    after = (await tenant.request("GET", url)).json()
    assert (after["subject"], after["status"]) == ("新", "new")


async def test_concurrent_updates_with_one_etag_let_exactly_one_win(tenant: TenantCtx) -> None:
    customer = await tenant.customer()
    ticket = await open_ticket(tenant, customer["id"])
    url = f"/api/v1/tickets/{ticket['id']}"
    results = await asyncio.gather(
        *(
            tenant.request("PATCH", url, json={"subject": f"第{i}"}, headers={"If-Match": '"1"'})
            for i in range(5)
        )
    )
    assert sorted(r.status_code for r in results) == [200, 412, 412, 412, 412]
    winner = next(r.json()["subject"] for r in results if r.status_code == 200)
    assert (await tenant.request("GET", url)).json()["subject"] == winner


async def test_update_records_assignment_and_fields_on_the_timeline(tenant: TenantCtx) -> None:
    customer = await tenant.customer()
    ticket = await open_ticket(tenant, customer["id"])
    agent = await _staff(tenant, "阿强")
    url = f"/api/v1/tickets/{ticket['id']}"
    patched = await tenant.request(
        "PATCH",
        url,
        json={"assignee_id": agent["id"], "category": "logistics", "tags": ["加急"]},
    )
    assert patched.status_code == 200, patched.text
    same = await tenant.request("PATCH", url, json={"category": "logistics"})
    assert same.headers["etag"] == patched.headers["etag"]
    events = (await tenant.request("GET", f"{url}/events")).json()["items"]
    assert [e["kind"] for e in events] == ["created", "assigned", "updated"]
    assert events[1]["data"] == {"from": None, "to": agent["id"]}
    assert events[2]["data"] == {"fields": ["category", "tags"]}
    nulls = await tenant.request("PATCH", url, json={"subject": None})
    assert nulls.status_code == 422


async def test_the_timeline_names_the_staff_member_behind_the_key(tenant: TenantCtx) -> None:
    await tenant.key("agent")
    keys = (await tenant.request("GET", "/api/v1/api-keys")).json()
    items = keys["items"] if isinstance(keys, dict) else keys
    agent_key = next(k for k in items if k["role"] == "agent")
    person = await _staff(tenant, "客服小美", api_key_id=agent_key["id"])
    taken = await tenant.request(
        "POST", "/api/v1/staff", json={"name": "冒名", "api_key_id": agent_key["id"]}
    )
    assert taken.status_code == 409
    customer = await tenant.customer()
    ticket = await open_ticket(tenant, customer["id"])
    reply = await tenant.request(
        "POST",
        f"/api/v1/tickets/{ticket['id']}/comments",
        role="agent",
        json={"body": "亲，已为您处理"},
    )
    assert reply.status_code == 201
    assert reply.json()["kind"] == "public_reply"
    assert reply.json()["actor_name"] == "客服小美"
    assert reply.json()["actor_staff_id"] == person["id"]
    events = (await tenant.request("GET", f"/api/v1/tickets/{ticket['id']}/events")).json()
    assert events["items"][0]["actor_name"] == "测试商家 owner"
    assert events["items"][0]["actor_staff_id"] is None


async def test_list_filters_and_pagination(tenant: TenantCtx, runtime: Runtime) -> None:
    alice, bob = await tenant.customer(), await tenant.customer()
    shop = await tenant.shop()
    order_id = await insert_order(runtime, tenant, shop["id"], alice["id"], [("X", "x")])
    agent = await _staff(tenant, "阿明")
    t1 = await open_ticket(tenant, alice["id"], kind="praise", channel="review", priority="p4")
    t2 = await open_ticket(
        tenant, alice["id"], category="logistics", order_id=str(order_id), assignee_id=agent["id"]
    )
    t3 = await open_ticket(tenant, bob["id"], kind="suggestion", priority="p1")
    await move(tenant, t3["id"], "open")

    async def ids(**params: Any) -> list[str]:
        response = await tenant.request("GET", "/api/v1/tickets", params=params)
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["items"]]

    assert await ids() == [t3["id"], t2["id"], t1["id"]]
    assert await ids(customer_id=alice["id"]) == [t2["id"], t1["id"]]
    assert await ids(kind="praise") == [t1["id"]]
    assert await ids(channel="review") == [t1["id"]]
    assert await ids(category="logistics") == [t2["id"]]
    assert await ids(priority="p1") == [t3["id"]]
    assert await ids(status="open") == [t3["id"]]
    assert await ids(assignee_id=agent["id"]) == [t2["id"]]
    assert await ids(order_id=str(order_id)) == [t2["id"]]
    assert (
        await ids(created_after="2000-01-01T00:00:00Z", created_before="2000-01-02T00:00:00Z") == []
    )
    first = (await tenant.request("GET", "/api/v1/tickets", params={"limit": 2})).json()
    rest = (
        await tenant.request(
            "GET", "/api/v1/tickets", params={"limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()
    assert [t["id"] for t in first["items"] + rest["items"]] == [t3["id"], t2["id"], t1["id"]]
    assert rest["next_cursor"] is None
    bad = await tenant.request("GET", "/api/v1/tickets", params={"sla": "late"})
    assert bad.status_code == 422
    bad_cursor = await tenant.request("GET", "/api/v1/tickets", params={"cursor": "garbage"})
    assert bad_cursor.status_code == 422


async def test_linking_an_order_later_and_changing_its_items(
    tenant: TenantCtx, runtime: Runtime
) -> None:
    customer = await tenant.customer()
    shop = await tenant.shop()
    order_id = await insert_order(
        runtime, tenant, shop["id"], customer["id"], [("A", "a"), ("B", "b"), ("C", "c")]
    )
    ticket = await open_ticket(tenant, customer["id"])
    url = f"/api/v1/tickets/{ticket['id']}"
    linked = await tenant.request(
        "PATCH", url, json={"order_id": str(order_id), "order_item_lines": [3, 1]}
    )
    assert linked.json()["order_item_lines"] == [1, 3]
    narrowed = await tenant.request("PATCH", url, json={"order_item_lines": [2]})
    assert narrowed.json()["order_item_lines"] == [2]
    unlinked = await tenant.request("PATCH", url, json={"order_id": None})
    assert (unlinked.json()["order_id"], unlinked.json()["order_item_lines"]) == (None, [])
    kinds = [e["kind"] for e in (await tenant.request("GET", f"{url}/events")).json()["items"]]
    assert kinds == ["created", "linked_order", "linked_order", "linked_order"]


async def test_categories_default_catalogue_and_custom_ones(tenant: TenantCtx) -> None:
    listed = (await tenant.request("GET", "/api/v1/ticket-categories")).json()
    assert [c["code"] for c in listed] == [
        "product_quality",
        "wrong_or_missing_item",
        "logistics",
        "service_attitude",
        "price",
        "description_mismatch",
        "other",
    ]
    added = await tenant.request(
        "POST", "/api/v1/ticket-categories", json={"code": "packaging", "name": "包装破损"}
    )
    assert added.status_code == 201
    again = await tenant.request(
        "POST", "/api/v1/ticket-categories", json={"code": "packaging", "name": "重复"}
    )
    assert again.status_code == 409
    bad = await tenant.request(
        "POST", "/api/v1/ticket-categories", json={"code": "Bad Code", "name": "x"}
    )
    assert bad.status_code == 422
    customer = await tenant.customer()
    await open_ticket(tenant, customer["id"], category="packaging")
    retired = await tenant.request(
        "PATCH", "/api/v1/ticket-categories/price", json={"active": False}
    )
    assert retired.json()["active"] is False
    refused = await tenant.request(
        "POST",
        "/api/v1/tickets",
        json={
            "customer_id": customer["id"],
            "kind": "complaint",
            "channel": "phone",
            "subject": "贵",
            "category": "price",
        },
    )
    assert refused.status_code == 422
    active = [c["code"] for c in (await tenant.request("GET", "/api/v1/ticket-categories")).json()]
    assert "price" not in active
    assert "packaging" in active


async def test_staff_list_update_and_etag(tenant: TenantCtx) -> None:
    a = await _staff(tenant, "甲", team="一组")
    await _staff(tenant, "乙", team="二组")
    url = f"/api/v1/staff/{a['id']}"
    etag = (await tenant.request("GET", url)).headers["etag"]
    updated = await tenant.request("PATCH", url, json={"active": False}, headers={"If-Match": etag})
    assert updated.json()["active"] is False
    stale = await tenant.request("PATCH", url, json={"team": "三组"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    teams = (await tenant.request("GET", "/api/v1/staff", params={"team": "二组"})).json()
    assert [s["name"] for s in teams["items"]] == ["乙"]
    active = (await tenant.request("GET", "/api/v1/staff", params={"active": True})).json()
    assert [s["name"] for s in active["items"]] == ["乙"]
    agent = await tenant.request("POST", "/api/v1/staff", role="agent", json={"name": "x"})
    assert agent.status_code == 403


async def test_csat_once_after_resolution_and_nps_any_time(tenant: TenantCtx) -> None:
    customer = await tenant.customer()
    ticket = await open_ticket(tenant, customer["id"])
    url = f"/api/v1/tickets/{ticket['id']}/survey"
    early = await tenant.request("POST", url, json={"score": 5})
    assert early.status_code == 409
    assert (await tenant.request("GET", url)).status_code == 404
    await move(tenant, ticket["id"], "open")
    await move(tenant, ticket["id"], "resolved")
    out_of_range = await tenant.request("POST", url, json={"score": 6})
    assert out_of_range.status_code == 422
    answered = await tenant.request("POST", url, json={"score": 4, "comment": "还行"})
    assert answered.status_code == 201
    assert (await tenant.request("GET", url)).json()["score"] == 4
    twice = await tenant.request("POST", url, json={"score": 1})
    assert twice.status_code == 409
    events = (await tenant.request("GET", f"/api/v1/tickets/{ticket['id']}/events")).json()
    assert events["items"][-1]["kind"] == "survey_answered"

    nps = await tenant.request(
        "POST",
        "/api/v1/nps-responses",
        json={"customer_id": customer["id"], "score": 9, "channel": "wechat"},
    )
    assert nps.status_code == 201
    about = await tenant.request(
        "POST",
        "/api/v1/nps-responses",
        json={"customer_id": customer["id"], "score": 3, "ticket_id": ticket["id"]},
    )
    assert about.status_code == 201
    other = await tenant.customer()
    wrong = await tenant.request(
        "POST",
        "/api/v1/nps-responses",
        json={"customer_id": other["id"], "score": 3, "ticket_id": ticket["id"]},
    )
    assert wrong.status_code == 422
    too_high = await tenant.request(
        "POST", "/api/v1/nps-responses", json={"customer_id": customer["id"], "score": 11}
    )
    assert too_high.status_code == 422
    listed = (
        await tenant.request("GET", "/api/v1/nps-responses", params={"customer_id": customer["id"]})
    ).json()
    assert [r["score"] for r in listed["items"]] == [3, 9]


async def test_compensation_points_are_paid_once_through_the_loyalty_ledger(
    tenant: TenantCtx, runtime: Runtime
) -> None:
    customer = await tenant.customer()
    ticket = await open_ticket(tenant, customer["id"])
    await move(tenant, ticket["id"], "open")
    resolved = await move(
        tenant,
        ticket["id"],
        "resolved",
        compensation={"points": 300, "note": "物流延误补偿"},
    )
    entry_id = resolved["compensation_entry_id"]
    assert entry_id is not None
    reopened = await move(tenant, ticket["id"], "open")
    assert reopened["compensation_entry_id"] == entry_id
    again = await tenant.request(
        "POST",
        f"/api/v1/tickets/{ticket['id']}/transitions",
        json={
            "to": "resolved",
            "resolution_code": "x",
            "resolution_summary": "y",
            "compensation": {"points": 300},
        },
    )
    assert again.status_code == 409
    await move(tenant, ticket["id"], "resolved")
    async with runtime.sessions() as session:
        entries = (
            await session.execute(
                select(LoyaltyEntry.id, LoyaltyEntry.points).where(
                    LoyaltyEntry.tenant_id == tenant.tenant_id,
                    LoyaltyEntry.customer_id == uuid.UUID(customer["id"]),
                )
            )
        ).all()
    assert [(str(i), p) for i, p in entries] == [(entry_id, 300)]
    kinds = [
        e["kind"]
        for e in (await tenant.request("GET", f"/api/v1/tickets/{ticket['id']}/events")).json()[
            "items"
        ]
    ]
    assert kinds.count("compensation_paid") == 1


async def test_customer_merge_moves_tickets_to_the_survivor(
    tenant: TenantCtx, runtime: Runtime, clock: TestClock
) -> None:
    survivor, merged = await tenant.customer(), await tenant.customer()
    ticket = await open_ticket(tenant, merged["id"])
    kept = await open_ticket(tenant, survivor["id"])
    await tenant.request(
        "POST", "/api/v1/nps-responses", json={"customer_id": merged["id"], "score": 10}
    )
    clock.set(datetime(2026, 5, 1, tzinfo=UTC))
    async with runtime.sessions() as session:
        for _ in range(2):  # idempotent: the second call finds nothing left to move
            await customers_merged(
                session,
                tenant.tenant_id,
                uuid.UUID(survivor["id"]),
                uuid.UUID(merged["id"]),
                clock(),
            )
        await session.commit()
    moved = await tenant.request("GET", f"/api/v1/tickets/{ticket['id']}")
    assert moved.json()["customer_id"] == survivor["id"]
    assert moved.headers["etag"] == '"2"'
    events = (await tenant.request("GET", f"/api/v1/tickets/{ticket['id']}/events")).json()
    last = events["items"][-1]
    assert last["kind"] == "customer_merged"
    assert last["data"] == {"from_customer_id": merged["id"], "to_customer_id": survivor["id"]}
    untouched = await tenant.request("GET", f"/api/v1/tickets/{kept['id']}")
    assert untouched.headers["etag"] == '"1"'
    mine = (
        await tenant.request("GET", "/api/v1/tickets", params={"customer_id": survivor["id"]})
    ).json()
    assert {t["id"] for t in mine["items"]} == {ticket["id"], kept["id"]}
    nps = (
        await tenant.request("GET", "/api/v1/nps-responses", params={"customer_id": survivor["id"]})
    ).json()
    assert [r["score"] for r in nps["items"]] == [10]


async def test_another_tenant_sees_nothing(tenants: TenantFactory) -> None:
    mine, theirs = await tenants.create(), await tenants.create("别家")
    customer = await mine.customer()
    ticket = await open_ticket(mine, customer["id"])
    staff = await _staff(mine, "我的客服")
    url = f"/api/v1/tickets/{ticket['id']}"
    for method, path, body in [
        ("GET", url, None),
        ("PATCH", url, {"subject": "x"}),
        ("POST", f"{url}/transitions", {"to": "open"}),
        ("POST", f"{url}/comments", {"body": "x"}),
        ("GET", f"{url}/events", None),
        ("GET", f"{url}/survey", None),
        ("GET", f"/api/v1/staff/{staff['id']}", None),
    ]:
        response = await theirs.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
    assert (await theirs.request("GET", "/api/v1/tickets")).json()["items"] == []
    foreign = await theirs.request(
        "POST",
        "/api/v1/tickets",
        json={"customer_id": customer["id"], "kind": "inquiry", "channel": "email", "subject": "x"},
    )
    assert foreign.status_code == 422
    assigned = await theirs.request(
        "POST",
        "/api/v1/tickets",
        json={
            "customer_id": (await theirs.customer())["id"],
            "kind": "inquiry",
            "channel": "email",
            "subject": "x",
            "assignee_id": staff["id"],
        },
    )
    assert assigned.status_code == 422
    assert (await theirs.request("GET", "/api/v1/staff")).json()["items"] == []


async def test_roles(tenant: TenantCtx) -> None:
    customer = await tenant.customer()
    ticket = await open_ticket(tenant, customer["id"])
    assert (await tenant.request("GET", "/api/v1/tickets", role="analyst")).status_code == 200
    read_only = await tenant.request(
        "POST", f"/api/v1/tickets/{ticket['id']}/transitions", role="analyst", json={"to": "open"}
    )
    assert read_only.status_code == 403
    importer = await tenant.request("GET", "/api/v1/tickets", role="importer")
    assert importer.status_code == 403
    agent = await tenant.request(
        "POST", f"/api/v1/tickets/{ticket['id']}/transitions", role="agent", json={"to": "open"}
    )
    assert agent.status_code == 200
    settings = await tenant.request(
        "PUT", "/api/v1/ticket-settings", role="agent", json={"reopen_window_days": 1}
    )
    assert settings.status_code == 403
    reports = await tenant.request("GET", "/api/v1/ticket-reports/summary", role="analyst")
    assert reports.status_code == 200
    assert (await tenant.client.get("/api/v1/tickets")).status_code == 401


async def test_created_range_uses_the_injected_clock(tenant: TenantCtx, clock: TestClock) -> None:
    clock.set(datetime(2026, 1, 10, tzinfo=UTC))
    customer = await tenant.customer()
    ticket = await open_ticket(tenant, customer["id"])
    assert datetime.fromisoformat(ticket["created_at"]) == datetime(2026, 1, 10, tzinfo=UTC)
    found = await tenant.request(
        "GET",
        "/api/v1/tickets",
        params={
            "created_after": "2026-01-10T00:00:00Z",
            "created_before": "2026-01-10T00:00:01Z",
        },
    )
    assert [t["id"] for t in found.json()["items"]] == [ticket["id"]]


async def test_the_customer_merge_endpoint_carries_tickets_along(tenant: TenantCtx) -> None:
    survivor, merged = await tenant.customer(), await tenant.customer()
    ticket = await open_ticket(tenant, merged["id"])
    response = await tenant.request(
        "POST",
        f"/api/v1/customers/{survivor['id']}/merge",
        json={"other_customer_id": merged["id"]},
    )
    assert response.status_code == 200, response.text
    moved = (await tenant.request("GET", f"/api/v1/tickets/{ticket['id']}")).json()
    assert moved["customer_id"] == survivor["id"]
