"""Customer profiles through the API: create, read, update with ETags, tags, identities, lists."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.factories import TenantCtx, TenantFactory, unique_mobile


@pytest.fixture
async def tenant(tenants: TenantFactory) -> TenantCtx:
    return await tenants.create()


async def test_create_and_get_a_full_profile(tenant: TenantCtx) -> None:
    shop = await tenant.shop("tmall")
    phone = unique_mobile()
    created = await tenant.request(
        "POST",
        "/api/v1/customers",
        json={
            "display_name": "王小明",
            "gender": "male",
            "birthday": "1990-05-20",
            "province": "浙江省",
            "city": "杭州市",
            "district": "西湖区",
            "phones": [phone, "0571-87654321"],
            "emails": ["Wang@Example.COM"],
            "addresses": [
                {
                    "receiver_name": "王小明",
                    "phone": phone,
                    "province": "浙江省",
                    "city": "杭州市",
                    "street": "文三路 100 号",
                    "is_default": True,
                }
            ],
            "tags": ["vip", "vip", " 回购 "],
            "attributes": {"source": "门店"},
            "identities": [{"platform": "tmall", "shop_id": shop["id"], "buyer_key": "tb123"}],
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["location"] == f"/api/v1/customers/{body['id']}"
    assert created.headers["etag"] == '"1"'
    assert body["phones"] == [phone, "0571-87654321"]
    assert body["emails"] == ["Wang@example.com"]
    assert body["tags"] == ["vip", "回购"]
    assert body["addresses"][0]["street"] == "文三路 100 号"
    assert body["identities"][0]["buyer_key"] == "tb123"
    assert body["personal_data"] == "clear"
    fetched = await tenant.request("GET", f"/api/v1/customers/{body['id']}")
    assert fetched.json() == body


async def test_agents_see_personal_data_masked(tenant: TenantCtx) -> None:
    phone = unique_mobile()
    customer = await tenant.customer(
        phones=[phone],
        emails=["li.na@example.com"],
        addresses=[{"receiver_name": "李娜", "phone": phone, "street": "深南大道 9999 号"}],
    )
    seen = (await tenant.request("GET", f"/api/v1/customers/{customer['id']}", role="agent")).json()
    assert seen["personal_data"] == "masked"
    assert seen["phones"] == [f"{phone[:3]}****{phone[-4:]}"]
    assert seen["emails"] == ["l***@example.com"]
    address = seen["addresses"][0]
    assert address["receiver_name"] == "李*"
    assert address["phone"] == f"{phone[:3]}****{phone[-4:]}"
    assert "9999" not in address["street"]


async def test_patch_with_stale_etag_is_412_and_changes_nothing(tenant: TenantCtx) -> None:
    customer = await tenant.customer(display_name="旧名字")
    url = f"/api/v1/customers/{customer['id']}"
    first = await tenant.request(
        "PATCH", url, json={"display_name": "新名字"}, headers={"If-Match": '"1"'}
    )
    assert first.status_code == 200
    assert first.headers["etag"] == '"2"'
    stale = await tenant.request(
        "PATCH", url, json={"display_name": "覆盖"}, headers={"If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert stale.json()["current_etag"] == '"2"'
    assert (await tenant.request("GET", url)).json()["display_name"] == "新名字"


async def test_concurrent_patches_with_the_same_etag_let_exactly_one_win(tenant: TenantCtx) -> None:
    customer = await tenant.customer()
    url = f"/api/v1/customers/{customer['id']}"
    results = await asyncio.gather(
        *(
            tenant.request(
                "PATCH", url, json={"display_name": f"名{i}"}, headers={"If-Match": '"1"'}
            )
            for i in range(5)
        )
    )
    assert sorted(r.status_code for r in results) == [200, 412, 412, 412, 412]


async def test_patch_replaces_lists_and_keeps_what_is_not_sent(tenant: TenantCtx) -> None:
    customer = await tenant.customer(emails=["a@example.com"], tags=["old"])
    new_phone = unique_mobile()
    patched = await tenant.request(
        "PATCH",
        f"/api/v1/customers/{customer['id']}",
        json={"phones": [new_phone], "tags": ["new"]},
    )
    body = patched.json()
    assert body["phones"] == [new_phone]
    assert body["emails"] == ["a@example.com"]
    assert body["tags"] == ["new"]
    assert body["display_name"] == customer["display_name"]


async def test_tags_add_and_remove(tenant: TenantCtx) -> None:
    customer = await tenant.customer(tags=["a"])
    url = f"/api/v1/customers/{customer['id']}/tags"
    added = await tenant.request("POST", url, json={"tags": ["b", "a", "高价值"]})
    assert added.json()["tags"] == ["a", "b", "高价值"]
    removed = await tenant.request("DELETE", f"{url}/高价值")
    assert removed.json()["tags"] == ["a", "b"]


async def test_identity_lookup_and_uniqueness(tenant: TenantCtx) -> None:
    customer = await tenant.customer(
        identities=[{"platform": "pinduoduo", "buyer_key": "张**|138****1234"}]
    )
    found = await tenant.request(
        "GET",
        "/api/v1/customers/lookup",
        params={"platform": "pinduoduo", "buyer_key": "张**|138****1234"},
    )
    assert found.status_code == 200
    assert found.json()["id"] == customer["id"]
    clash = await tenant.request(
        "POST",
        "/api/v1/customers",
        json={"identities": [{"platform": "pinduoduo", "buyer_key": "张**|138****1234"}]},
    )
    assert clash.status_code == 409
    assert clash.json()["customer_id"] == customer["id"]
    missing = await tenant.request(
        "GET", "/api/v1/customers/lookup", params={"platform": "tmall", "buyer_key": "nobody"}
    )
    assert missing.status_code == 404


async def test_identities_can_be_attached_and_detached(tenant: TenantCtx) -> None:
    customer = await tenant.customer()
    url = f"/api/v1/customers/{customer['id']}/identities"
    added = await tenant.request("POST", url, json={"platform": "offline", "buyer_key": "CARD-001"})
    assert added.status_code == 201
    identity = added.json()["identities"][0]
    removed = await tenant.request("DELETE", f"{url}/{identity['id']}")
    assert removed.json()["identities"] == []
    again = await tenant.request("DELETE", f"{url}/{identity['id']}")
    assert again.status_code == 404


async def test_interactions_form_a_timeline_newest_first(tenant: TenantCtx) -> None:
    customer = await tenant.customer()
    url = f"/api/v1/customers/{customer['id']}/interactions"
    for day, kind in [("2026-01-01", "note"), ("2026-03-01", "call"), ("2026-02-01", "chat")]:
        response = await tenant.request(
            "POST",
            url,
            json={
                "kind": kind,
                "content": f"{kind} on {day}",
                "occurred_at": f"{day}T10:00:00+08:00",
            },
        )
        assert response.status_code == 201
        assert response.json()["actor"] == "测试商家 owner"
    first = (await tenant.request("GET", url, params={"limit": 2})).json()
    assert [i["kind"] for i in first["items"]] == ["call", "chat"]
    rest = (
        await tenant.request("GET", url, params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [i["kind"] for i in rest["items"]] == ["note"]
    assert rest["next_cursor"] is None


async def test_list_filters(tenant: TenantCtx) -> None:
    phone = unique_mobile()
    target = await tenant.customer(
        display_name="欧阳锋",
        phones=[phone],
        tags=["西毒"],
        province="新疆",
        identities=[{"platform": "douyin", "buyer_key": "dy-1"}],
    )
    await tenant.customer(display_name="欧阳克", tags=["少主"], province="新疆")
    await tenant.customer(display_name="黄药师", province="浙江省")

    async def ids(**params: Any) -> list[str]:
        response = await tenant.request("GET", "/api/v1/customers", params=params)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    assert len(await ids(name="欧阳")) == 2
    assert await ids(phone=f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}") == [target["id"]]
    assert await ids(tag="西毒") == [target["id"]]
    assert await ids(platform="douyin", buyer_key="dy-1") == [target["id"]]
    assert len(await ids(province="新疆")) == 2
    assert len(await ids(created_after=target["created_at"])) == 3
    assert await ids(created_before=target["created_at"]) == []
    assert await ids(name="%") == []


async def test_pagination_is_stable_under_inserts(tenant: TenantCtx) -> None:
    for i in range(7):
        await tenant.customer(display_name=f"page{i}")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await tenant.request("GET", "/api/v1/customers", params=params)).json()
        seen += [c["id"] for c in page["items"]]
        await tenant.customer(display_name="inserted while paging")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"phones": ["12345"]}, ["body", "phones", 0]),
        ({"phones": ["13812345678", "138****1234"]}, ["body", "phones", 1]),
        ({"emails": ["not-an-email"]}, ["body", "emails", 0]),
        ({"gender": "robot"}, ["body", "gender"]),
        ({"birthday": "1990-13-01"}, ["body", "birthday"]),
        ({"addresses": [{"phone": "999"}]}, ["body", "addresses", 0, "phone"]),
        ({"tags": [""]}, ["body", "tags", 0]),
        ({"unknown_field": 1}, ["body", "unknown_field"]),
        (
            {"identities": [{"platform": "ebay", "buyer_key": "x"}]},
            ["body", "identities", 0, "platform"],
        ),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    tenant: TenantCtx, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await tenant.request("POST", "/api/v1/customers", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert loc in [e["loc"] for e in response.json()["errors"]]
    listed = (await tenant.request("GET", "/api/v1/customers")).json()
    assert listed["items"] == []


async def test_bad_cursor_is_422(tenant: TenantCtx) -> None:
    response = await tenant.request("GET", "/api/v1/customers", params={"cursor": "garbage!"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "cursor"]


async def test_tenants_never_see_each_other(tenants: TenantFactory) -> None:
    a, b = await tenants.create("A"), await tenants.create("B")
    customer = await a.customer(identities=[{"platform": "tmall", "buyer_key": "shared-nick"}])
    base = f"/api/v1/customers/{customer['id']}"
    for method, url, body in [
        ("GET", base, None),
        ("PATCH", base, {"display_name": "x"}),
        ("POST", f"{base}/tags", {"tags": ["x"]}),
        ("DELETE", f"{base}/tags/x", None),
        ("POST", f"{base}/identities", {"platform": "offline", "buyer_key": "b"}),
        ("POST", f"{base}/interactions", {"kind": "note", "content": "x"}),
        ("GET", f"{base}/interactions", None),
        ("POST", f"{base}/reveal", None),
    ]:
        response = await b.request(method, url, json=body)
        assert response.status_code == 404, (method, url, response.text)
    assert (await b.request("GET", "/api/v1/customers")).json()["items"] == []
    lookup = await b.request(
        "GET", "/api/v1/customers/lookup", params={"platform": "tmall", "buyer_key": "shared-nick"}
    )
    assert lookup.status_code == 404
    # B may use the same identity for its own customer: identities are unique per tenant only.
    own = await b.request(
        "POST",
        "/api/v1/customers",
        json={"identities": [{"platform": "tmall", "buyer_key": "shared-nick"}]},
    )
    assert own.status_code == 201
    assert (await a.request("GET", base)).json()["display_name"] == customer["display_name"]
