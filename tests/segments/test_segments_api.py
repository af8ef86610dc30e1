"""Saved segments through the API: CRUD with ETags, members, size history, export, roles and
tenant isolation."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.runtime import Runtime
from tests.conftest import TestClock
from tests.factories import TenantCtx, TenantFactory, unique_mobile
from tests.segments.orders import add_order, recompute

NOW = datetime(2026, 3, 1, tzinfo=UTC)
ZHEJIANG = {"field": "province", "op": "eq", "value": "浙江省"}


@pytest.fixture
async def shop_tenant(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> tuple[TenantCtx, list[dict[str, Any]]]:
    """Five Zhejiang customers spending 1000..5000 fen, and one in Jiangsu."""
    clock.set(NOW)
    tenant = await tenants.create()
    shop = await tenant.shop("tmall")
    people = []
    for i in range(1, 6):
        person = await tenant.customer(display_name=f"浙客{i}", province="浙江省")
        await add_order(
            runtime, tenant.tenant_id, person["id"], shop, NOW - timedelta(days=i), 1000 * i
        )
        people.append(person)
    await tenant.customer(display_name="苏客", province="江苏省")
    await recompute(runtime, tenant.tenant_id)
    return tenant, people


async def test_create_read_update_delete_a_segment(
    shop_tenant: tuple[TenantCtx, list[dict[str, Any]]], clock: TestClock
) -> None:
    tenant, _ = shop_tenant
    created = await tenant.request(
        "POST",
        "/api/v1/segments",
        role="analyst",
        json={"name": "浙江客户", "description": "all of Zhejiang", "filter": ZHEJIANG},
    )
    assert created.status_code == 201, created.text
    segment = created.json()
    assert created.headers["location"] == f"/api/v1/segments/{segment['id']}"
    assert created.headers["etag"] == '"1"'
    assert segment["last_count"] == 5
    assert segment["filter"] == ZHEJIANG

    duplicate = await tenant.request(
        "POST", "/api/v1/segments", json={"name": "浙江客户", "filter": ZHEJIANG}
    )
    assert duplicate.status_code == 409

    listed = (await tenant.request("GET", "/api/v1/segments", role="agent")).json()
    assert [s["id"] for s in listed["items"]] == [segment["id"]]

    url = f"/api/v1/segments/{segment['id']}"
    bigger = {"and": [ZHEJIANG, {"field": "total_spent_fen", "op": "gte", "value": 3000}]}
    stale = await tenant.request("PATCH", url, json={"filter": bigger}, headers={"If-Match": '"7"'})
    assert stale.status_code == 412
    clock.advance(timedelta(hours=1))
    updated = await tenant.request(
        "PATCH", url, json={"filter": bigger}, headers={"If-Match": '"1"'}
    )
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] == '"2"'
    assert updated.json()["last_count"] == 3
    invalid = await tenant.request("PATCH", url, json={"filter": {"and": [{"field": "x"}]}})
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["loc"] == ["body", "filter", "and", 0, "field"]

    sizes = (await tenant.request("GET", f"{url}/sizes")).json()["items"]
    assert [s["member_count"] for s in sizes] == [5, 3]

    agent = await tenant.request("DELETE", url, role="agent")
    assert agent.status_code == 403
    assert (await tenant.request("DELETE", url)).status_code == 204
    assert (await tenant.request("GET", url)).status_code == 404


async def test_members_sort_by_facts_and_page_stably(
    shop_tenant: tuple[TenantCtx, list[dict[str, Any]]],
) -> None:
    tenant, people = shop_tenant
    segment = (
        await tenant.request("POST", "/api/v1/segments", json={"name": "z", "filter": ZHEJIANG})
    ).json()
    url = f"/api/v1/segments/{segment['id']}/members"
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"sort": "total_spent_fen", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await tenant.request("GET", url, params=params)).json()
        seen += [m["total_spent_fen"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [5000, 4000, 3000, 2000, 1000]
    oldest_first = (
        await tenant.request(
            "GET", url, params={"sort": "last_order_at", "descending": "false", "limit": 2}
        )
    ).json()
    assert [m["display_name"] for m in oldest_first["items"]] == ["浙客5", "浙客4"]
    following = (
        await tenant.request(
            "GET",
            url,
            params={
                "sort": "last_order_at",
                "descending": "false",
                "limit": 2,
                "cursor": oldest_first["next_cursor"],
            },
        )
    ).json()
    assert [m["display_name"] for m in following["items"]] == ["浙客3", "浙客2"]
    bad = await tenant.request("GET", url, params={"cursor": "nonsense"})
    assert bad.status_code == 422
    assert people


async def test_export_is_utf8_with_bom_and_masks_personal_data_by_role(
    tenants: TenantFactory, clock: TestClock
) -> None:
    clock.set(NOW)
    tenant = await tenants.create()
    phone = unique_mobile()
    await tenant.customer(display_name="王小明", province="浙江省", phones=[phone], tags=["老客"])
    await tenant.customer(display_name="=HYPERLINK(1)", province="浙江省")
    segment = (
        await tenant.request("POST", "/api/v1/segments", json={"name": "e", "filter": ZHEJIANG})
    ).json()
    url = f"/api/v1/segments/{segment['id']}/export"

    analyst = await tenant.request("GET", url, role="analyst")
    assert analyst.status_code == 200
    assert analyst.headers["content-type"].startswith("text/csv")
    assert "attachment" in analyst.headers["content-disposition"]
    assert analyst.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(analyst.content.decode("utf-8-sig"))))
    by_name = {r["display_name"]: r for r in rows}
    assert by_name["王小明"]["phone"] == f"{phone[:3]}****{phone[-4:]}"
    assert by_name["王小明"]["tags"] == "老客"
    assert by_name["'=HYPERLINK(1)"]["lifecycle_stage"] == "prospect"

    owner = await tenant.request("GET", url)
    rows = list(csv.DictReader(io.StringIO(owner.content.decode("utf-8-sig"))))
    assert {r["display_name"]: r["phone"] for r in rows}["王小明"] == phone

    assert (await tenant.request("GET", url, role="agent")).status_code == 403


async def test_other_tenants_see_nothing(
    shop_tenant: tuple[TenantCtx, list[dict[str, Any]]], tenants: TenantFactory
) -> None:
    tenant, _ = shop_tenant
    segment = (
        await tenant.request("POST", "/api/v1/segments", json={"name": "z", "filter": ZHEJIANG})
    ).json()
    other = await tenants.create()
    await other.customer(display_name="别家", province="浙江省")
    for path in ("", "/members", "/export", "/sizes"):
        response = await other.request("GET", f"/api/v1/segments/{segment['id']}{path}")
        assert response.status_code == 404, path
    preview = await other.request("POST", "/api/v1/segments/preview", json={"filter": ZHEJIANG})
    assert preview.json()["count"] == 1
    assert [i["display_name"] for i in preview.json()["items"]] == ["别家"]
    assert (await other.request("GET", "/api/v1/segments")).json()["items"] == []
    report = (await other.request("GET", "/api/v1/analytics/rfm")).json()
    assert report["buyers"] == 0


async def test_importers_may_not_read_segments(tenants: TenantFactory) -> None:
    tenant = await tenants.create()
    response = await tenant.request(
        "POST", "/api/v1/segments/preview", role="importer", json={"filter": ZHEJIANG}
    )
    assert response.status_code == 403
    assert (
        await tenant.request("GET", "/api/v1/analytics/geo", role="importer")
    ).status_code == 403
