"""Shops through the API."""

from __future__ import annotations

import pytest

from tests.factories import TenantCtx, TenantFactory


@pytest.fixture
async def tenant(tenants: TenantFactory) -> TenantCtx:
    return await tenants.create()


async def test_shop_lifecycle(tenant: TenantCtx) -> None:
    created = await tenant.request(
        "POST",
        "/api/v1/shops",
        json={"platform": "pinduoduo", "name": "拼多多店", "external_id": "p1"},
    )
    assert created.status_code == 201
    shop = created.json()
    url = f"/api/v1/shops/{shop['id']}"
    renamed = await tenant.request(
        "PATCH", url, json={"name": "新名字"}, headers={"If-Match": '"1"'}
    )
    assert renamed.json()["name"] == "新名字"
    stale = await tenant.request("PATCH", url, json={"name": "x"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    listed = (await tenant.request("GET", "/api/v1/shops")).json()
    assert [s["id"] for s in listed["items"]] == [shop["id"]]
    assert (await tenant.request("DELETE", url)).status_code == 204
    assert (await tenant.request("GET", url)).status_code == 404


async def test_external_id_is_unique_per_platform(tenant: TenantCtx) -> None:
    body = {"platform": "tmall", "name": "a", "external_id": "57301"}
    assert (await tenant.request("POST", "/api/v1/shops", json=body)).status_code == 201
    clash = await tenant.request("POST", "/api/v1/shops", json={**body, "name": "b"})
    assert clash.status_code == 409
    other_platform = await tenant.request("POST", "/api/v1/shops", json={**body, "platform": "jd"})
    assert other_platform.status_code == 201


async def test_a_shop_in_use_cannot_be_deleted(tenant: TenantCtx) -> None:
    shop = await tenant.shop("tmall")
    await tenant.customer(
        identities=[{"platform": "tmall", "shop_id": shop["id"], "buyer_key": "n"}]
    )
    response = await tenant.request("DELETE", f"/api/v1/shops/{shop['id']}")
    assert response.status_code == 409


async def test_only_managers_change_shops_and_others_cannot_see_them(
    tenant: TenantCtx, tenants: TenantFactory
) -> None:
    shop = await tenant.shop()
    assert (await tenant.request("GET", "/api/v1/shops", role="importer")).status_code == 200
    denied = await tenant.request(
        "POST", "/api/v1/shops", role="agent", json={"platform": "o2o", "name": "x"}
    )
    assert denied.status_code == 403
    other = await tenants.create()
    assert (await other.request("GET", f"/api/v1/shops/{shop['id']}")).status_code == 404
    assert (await other.request("DELETE", f"/api/v1/shops/{shop['id']}")).status_code == 404


async def test_unknown_platform_is_422(tenant: TenantCtx) -> None:
    response = await tenant.request("POST", "/api/v1/shops", json={"platform": "ebay", "name": "x"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "platform"]
