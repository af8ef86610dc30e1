"""JSON order batches and the orders API: upsert path, forward-only status, masking, isolation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import RunJobs
from tests.factories import TenantCtx, TenantFactory, unique_mobile
from tests.imports.helpers import SETS, import_files, sample_files


@pytest.fixture
async def tenant(tenants: TenantFactory) -> TenantCtx:
    return await tenants.create()


def _order(order_no: str, status: str = "paid", **fields: Any) -> dict[str, Any]:
    return {
        "order_no": order_no,
        "status": status,
        "buyer_key": "MEMBER-1",
        "receiver_name": "王小明",
        "receiver_phone": "13812345678",
        "receiver_address": "文三路 100 号",
        "province": "浙江省",
        "city": "杭州市",
        "paid_fen": 12800,
        "ordered_at": "2024-06-30T10:15:00+08:00",
        "paid_at": "2024-06-30T10:15:30+08:00",
        "items": [{"title": "咖啡豆", "quantity": 2, "unit_price_fen": 6400, "paid_fen": 12800}],
        **fields,
    }


async def _batch(
    tenant: TenantCtx, shop_id: str, orders: list[dict[str, Any]], **kwargs: Any
) -> dict[str, Any]:
    response = await tenant.request(
        "POST", "/api/v1/orders/batch", json={"shop_id": shop_id, "orders": orders}, **kwargs
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_batch_creates_orders_customers_and_items(tenant: TenantCtx) -> None:
    shop = await tenant.shop("offline")
    phone = unique_mobile()
    result = await _batch(
        tenant,
        shop["id"],
        [_order("A-1", receiver_phone=phone), _order("A-2", buyer_key=None, receiver_phone=None)],
    )
    counts = result["counts"]
    assert counts["orders_created"] == 2
    assert counts["customers_created"] == 1
    assert counts["anonymous"] == 1
    assert counts["items"] == 2
    listed = (await tenant.request("GET", "/api/v1/orders", params={"shop_id": shop["id"]})).json()
    by_no = {o["order_no"]: o for o in listed["items"]}
    assert by_no["A-2"]["customer_id"] is None
    order = (await tenant.request("GET", f"/api/v1/orders/{by_no['A-1']['id']}")).json()
    assert order["receiver_phone"] == phone
    assert order["items"][0]["title"] == "咖啡豆"
    customer = (await tenant.request("GET", f"/api/v1/customers/{order['customer_id']}")).json()
    assert customer["phones"] == [phone]
    assert customer["identities"][0]["buyer_key"] == "MEMBER-1"


async def test_same_batch_twice_changes_nothing(tenant: TenantCtx) -> None:
    shop = await tenant.shop("offline")
    orders = [_order("B-1"), _order("B-2", status="completed")]
    await _batch(tenant, shop["id"], orders)
    before = (await tenant.request("GET", "/api/v1/orders", params={"shop_id": shop["id"]})).json()
    again = await _batch(tenant, shop["id"], orders)
    assert again["counts"]["orders_unchanged"] == 2
    assert again["counts"]["orders_created"] == again["counts"]["orders_updated"] == 0
    assert again["counts"]["items_written"] == 0
    after = (await tenant.request("GET", "/api/v1/orders", params={"shop_id": shop["id"]})).json()
    assert after == before


async def test_a_later_snapshot_edits_adds_and_drops_lines_and_one_without_lines_keeps_them(
    tenant: TenantCtx,
) -> None:
    shop = await tenant.shop("offline")

    def line(title: str, fen: int) -> dict[str, Any]:
        return {"title": title, "quantity": 1, "unit_price_fen": fen, "paid_fen": fen}

    async def lines() -> list[tuple[str, int]]:
        listed = await tenant.request("GET", "/api/v1/orders", params={"shop_id": shop["id"]})
        order_id = listed.json()["items"][0]["id"]
        order = (await tenant.request("GET", f"/api/v1/orders/{order_id}")).json()
        return [(i["title"], i["paid_fen"]) for i in order["items"]]

    three = [line("豆", 100), line("杯", 200), line("壶", 300)]
    await _batch(tenant, shop["id"], [_order("E-1", items=three)])
    edited = await _batch(
        tenant, shop["id"], [_order("E-1", items=[line("豆", 100), line("杯", 250)])]
    )
    assert edited["counts"]["items_written"] == 1  # the changed line; the third is dropped
    assert await lines() == [("豆", 100), ("杯", 250)]
    grown = await _batch(tenant, shop["id"], [_order("E-1", items=[*three, line("勺", 50)])])
    assert grown["counts"]["items_written"] == 3
    assert await lines() == [("豆", 100), ("杯", 200), ("壶", 300), ("勺", 50)]
    await _batch(tenant, shop["id"], [_order("E-1", items=[])])
    assert len(await lines()) == 4  # a snapshot without lines says nothing about them


async def test_status_moves_forward_only(tenant: TenantCtx) -> None:
    shop = await tenant.shop("offline")
    await _batch(tenant, shop["id"], [_order("C-1", status="completed")])
    stale = await _batch(tenant, shop["id"], [_order("C-1", status="paid")])
    assert stale["counts"]["orders_stale"] == 1
    refund = await _batch(tenant, shop["id"], [_order("C-1", status="refunded", refund_fen=12800)])
    assert refund["counts"]["orders_updated"] == 1
    listed = (await tenant.request("GET", "/api/v1/orders", params={"shop_id": shop["id"]})).json()
    assert [(o["status"], o["refund_fen"]) for o in listed["items"]] == [("refunded", 12800)]


async def test_withdrawn_refund_request_returns_to_previous_status(tenant: TenantCtx) -> None:
    shop = await tenant.shop("offline")
    await _batch(tenant, shop["id"], [_order("D-1", status="shipped")])
    await _batch(tenant, shop["id"], [_order("D-1", status="refunding")])
    back = await _batch(tenant, shop["id"], [_order("D-1", status="shipped")])
    assert back["counts"]["orders_updated"] == 1
    listed = (await tenant.request("GET", "/api/v1/orders", params={"status": "shipped"})).json()
    assert [o["order_no"] for o in listed["items"]] == ["D-1"]


async def test_batch_idempotency_key_replays_and_refuses_other_body(tenant: TenantCtx) -> None:
    shop = await tenant.shop("offline")
    headers = {"Idempotency-Key": "batch-1"}
    first = await _batch(tenant, shop["id"], [_order("E-1")], headers=headers)
    replay = await _batch(tenant, shop["id"], [_order("E-1")], headers=headers)
    assert replay == first
    other = await tenant.request(
        "POST",
        "/api/v1/orders/batch",
        json={"shop_id": shop["id"], "orders": [_order("E-2")]},
        headers=headers,
    )
    assert other.status_code == 422


async def test_batch_validation_errors_name_the_field(tenant: TenantCtx) -> None:
    shop = await tenant.shop("offline")
    twice = await tenant.request(
        "POST",
        "/api/v1/orders/batch",
        json={"shop_id": shop["id"], "orders": [_order("F-1"), _order("F-1")]},
    )
    assert twice.status_code == 422
    assert twice.json()["errors"][0]["loc"] == ["body", "orders", 1, "order_no"]
    negative = await tenant.request(
        "POST",
        "/api/v1/orders/batch",
        json={"shop_id": shop["id"], "orders": [_order("F-2", paid_fen=-1)]},
    )
    assert negative.status_code == 422
    too_many = await tenant.request(
        "POST",
        "/api/v1/orders/batch",
        json={"shop_id": shop["id"], "orders": [_order(f"G-{i}") for i in range(1001)]},
    )
    assert too_many.status_code == 422
    empty = (await tenant.request("GET", "/api/v1/orders", params={"shop_id": shop["id"]})).json()
    assert empty["items"] == []


async def test_roles_and_masking(tenant: TenantCtx) -> None:
    shop = await tenant.shop("offline")
    await _batch(tenant, shop["id"], [_order("H-1")])
    agent_view = (await tenant.request("GET", "/api/v1/orders", role="agent")).json()["items"][0]
    assert agent_view["personal_data"] == "masked"
    assert agent_view["receiver_name"] == "王**"
    assert agent_view["receiver_phone"] == "138****5678"
    assert "100" not in agent_view["receiver_address"]
    denied = await tenant.request(
        "POST",
        "/api/v1/orders/batch",
        role="agent",
        json={"shop_id": shop["id"], "orders": [_order("H-2")]},
    )
    assert denied.status_code == 403
    allowed = await tenant.request(
        "POST",
        "/api/v1/orders/batch",
        role="importer",
        json={"shop_id": shop["id"], "orders": [_order("H-3")]},
    )
    assert allowed.status_code == 200


async def test_orders_of_another_tenant_are_not_found(
    tenant: TenantCtx, tenants: TenantFactory
) -> None:
    shop = await tenant.shop("offline")
    await _batch(tenant, shop["id"], [_order("I-1")])
    order = (await tenant.request("GET", "/api/v1/orders")).json()["items"][0]
    other = await tenants.create()
    assert (await other.request("GET", f"/api/v1/orders/{order['id']}")).status_code == 404
    assert (
        await other.request("GET", f"/api/v1/customers/{order['customer_id']}/orders")
    ).status_code == 404
    assert (await other.request("GET", "/api/v1/orders")).json()["items"] == []
    foreign_shop = await other.request(
        "POST", "/api/v1/orders/batch", json={"shop_id": shop["id"], "orders": [_order("I-2")]}
    )
    assert foreign_shop.status_code == 422


async def test_customer_orders_and_cursor_pages(tenant: TenantCtx) -> None:
    shop = await tenant.shop("offline")
    await _batch(tenant, shop["id"], [_order(f"J-{i}") for i in range(5)])
    first = (await tenant.request("GET", "/api/v1/orders", params={"limit": 3})).json()
    customer_id = first["items"][0]["customer_id"]
    second = (
        await tenant.request(
            "GET", "/api/v1/orders", params={"limit": 3, "cursor": first["next_cursor"]}
        )
    ).json()
    assert len(first["items"]) == 3
    assert len(second["items"]) == 2
    assert second["next_cursor"] is None
    mine = (await tenant.request("GET", f"/api/v1/customers/{customer_id}/orders")).json()
    assert len(mine["items"]) == 5


@pytest.mark.parametrize(
    "status",
    [
        "pending_payment",
        "paid",
        "shipped",
        "completed",
        "closed",
        "refunding",
        "refunded",
        "partially_refunded",
    ],
)
async def test_every_status_is_stored_and_filterable(tenant: TenantCtx, status: str) -> None:
    shop = await tenant.shop("offline")
    await _batch(tenant, shop["id"], [_order(f"S-{status}", status=status)])
    listed = await tenant.request(
        "GET", "/api/v1/orders", params={"shop_id": shop["id"], "status": status}
    )
    assert [o["order_no"] for o in listed.json()["items"]] == [f"S-{status}"]


async def test_batches_and_imports_bring_rfm_and_lifecycle_up_to_date(
    tenant: TenantCtx, run_jobs: RunJobs
) -> None:
    shop = await tenant.shop("offline")
    await _batch(tenant, shop["id"], [_order("R-1"), _order("R-2", buyer_key="MEMBER-2")])
    await run_jobs()  # the recompute the batch queued once it committed
    buyers = await tenant.request(
        "POST",
        "/api/v1/segments/preview",
        json={"filter": {"field": "rfm_r", "op": "gte", "value": 1}},
    )
    assert buyers.json()["count"] == 2  # scored: RFM exists only after a recompute
    tmall = await tenant.shop("tmall")
    await import_files(tenant, run_jobs, sample_files(SETS[0], "tmall"), "tmall", tmall["id"])
    scored = await tenant.request(
        "POST",
        "/api/v1/segments/preview",
        json={"filter": {"field": "rfm_r", "op": "gte", "value": 1}},
    )
    assert scored.json()["count"] > 2  # the imported buyers were scored too
