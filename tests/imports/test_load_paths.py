"""The loader's two ways in: a shop's first snapshot goes by COPY straight into the tables,
later ones through staging. Both must store exactly the same orders, customers and facts."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from app.runtime import Runtime
from app.services.imports import load
from tests.conftest import RunJobs
from tests.factories import TenantFactory
from tests.imports.helpers import SETS, import_files, sample_files

# Ids, tenant-keyed hashes and ciphertexts (random nonces) differ between tenants by design.
_ORDER = """
SELECT to_jsonb(o) - ARRAY['id', 'tenant_id', 'shop_id', 'customer_id', 'import_id',
                           'created_at', 'updated_at', 'receiver_hash', 'receiver_name_enc',
                           'receiver_phone_enc', 'receiver_address_enc']
       || jsonb_build_object('sealed', ARRAY[o.receiver_name_enc IS NULL,
                                             o.receiver_phone_enc IS NULL,
                                             o.receiver_address_enc IS NULL],
                             'customer', c.display_name,
                             'items', (SELECT jsonb_agg(to_jsonb(i) - ARRAY['tenant_id', 'order_id']
                                                        ORDER BY i.line_no)
                                       FROM order_items i
                                       WHERE i.tenant_id = o.tenant_id AND i.order_id = o.id))
FROM orders o LEFT JOIN customers c ON c.tenant_id = o.tenant_id AND c.id = o.customer_id
WHERE o.tenant_id = :t AND o.shop_id = :s
ORDER BY o.order_no
"""

_CUSTOMER = """
SELECT to_jsonb(c) - ARRAY['id', 'tenant_id', 'created_at', 'updated_at']
       || jsonb_build_object(
           'identities', (SELECT jsonb_agg(jsonb_build_array(ci.platform, ci.buyer_key,
                                                             ci.shop_id IS NULL)
                                           ORDER BY ci.platform, ci.buyer_key)
                          FROM customer_identities ci
                          WHERE ci.tenant_id = c.tenant_id AND ci.customer_id = c.id),
           'contacts', (SELECT jsonb_agg(jsonb_build_array(cc.kind, cc.position, cc.masked)
                                         ORDER BY cc.kind, cc.position)
                        FROM customer_contacts cc
                        WHERE cc.tenant_id = c.tenant_id AND cc.customer_id = c.id),
           'facts', (SELECT to_jsonb(f) - ARRAY['tenant_id', 'customer_id', 'updated_at',
                                                'shop_ids']
                     FROM customer_facts f
                     WHERE f.tenant_id = c.tenant_id AND f.customer_id = c.id),
           'months', (SELECT jsonb_agg(to_jsonb(m) - ARRAY['tenant_id', 'customer_id']
                                       ORDER BY m.month)
                      FROM customer_months m
                      WHERE m.tenant_id = c.tenant_id AND m.customer_id = c.id))
FROM customers c
WHERE c.tenant_id = :t
"""


async def _stored(runtime: Runtime, tenant_id: uuid.UUID, shop_id: str) -> dict[str, Any]:
    params = {"t": tenant_id, "s": uuid.UUID(shop_id)}
    async with runtime.sessions() as session:
        orders = [r[0] for r in await session.execute(text(_ORDER), params)]
        customers = [r[0] for r in await session.execute(text(_CUSTOMER), params)]
    return {
        "orders": [o for o in orders if not o["order_no"].startswith("SEED-")],
        "customers": sorted(customers, key=repr),
    }


@pytest.mark.parametrize("sample_set", SETS)
@pytest.mark.parametrize(("platform", "folder"), [("tmall", "tmall"), ("pinduoduo", "pdd")])
async def test_first_import_stores_what_the_staged_path_stores(
    sample_set: str,
    platform: str,
    folder: str,
    tenants: TenantFactory,
    run_jobs: RunJobs,
    runtime: Runtime,
) -> None:
    files = sample_files(sample_set, folder)
    direct, staged = await tenants.create(), await tenants.create()
    direct_shop, staged_shop = await direct.shop(platform), await staged.shop(platform)
    # One anonymous order makes the second shop non-empty: its import takes the staged path.
    seed = {"order_no": "SEED-1", "status": "paid", "ordered_at": "2024-01-01T08:00:00+08:00"}
    response = await staged.request(
        "POST", "/api/v1/orders/batch", json={"shop_id": staged_shop["id"], "orders": [seed]}
    )
    assert response.status_code == 200, response.text
    first = await import_files(direct, run_jobs, files, platform, direct_shop["id"])
    second = await import_files(staged, run_jobs, files, platform, staged_shop["id"])
    assert first["counts"] == second["counts"]
    assert await _stored(runtime, direct.tenant_id, direct_shop["id"]) == await _stored(
        runtime, staged.tenant_id, staged_shop["id"]
    )


@pytest.mark.parametrize(("platform", "folder"), [("tmall", "tmall"), ("pinduoduo", "pdd")])
async def test_slices_of_a_few_rows_store_what_whole_frames_store(
    platform: str,
    folder: str,
    tenants: TenantFactory,
    run_jobs: RunJobs,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A large export is sealed, given ids and COPYed a slice at a time, the next slice made
    while the database reads the current one: with slices of 7 rows the samples take that
    path through dozens of slices (first import by COPY, then again through staging) and
    must store what one slice per table stores."""
    files = sample_files(SETS[0], folder)
    whole, sliced = await tenants.create(), await tenants.create()
    whole_shop, sliced_shop = await whole.shop(platform), await sliced.shop(platform)
    first = await import_files(whole, run_jobs, files, platform, whole_shop["id"])
    monkeypatch.setattr(load, "_COPY_ROWS", 7)
    second = await import_files(sliced, run_jobs, files, platform, sliced_shop["id"])
    assert first["counts"] == second["counts"]
    assert first["counts"]["orders_created"] > 7 * 10
    # Again, through staging (slices of 7 rows too): nothing changes.
    again = await import_files(sliced, run_jobs, files, platform, sliced_shop["id"])
    assert again["counts"]["orders_created"] == again["counts"]["orders_updated"] == 0
    assert again["counts"]["orders_unchanged"] == first["counts"]["orders_created"]
    assert await _stored(runtime, whole.tenant_id, whole_shop["id"]) == await _stored(
        runtime, sliced.tenant_id, sliced_shop["id"]
    )


def _order(order_no: str, ordered_at: str, **fields: Any) -> dict[str, Any]:
    return {
        "order_no": order_no,
        "status": "completed",
        "paid_fen": 5000,
        "ordered_at": ordered_at,
        "paid_at": ordered_at,
        **fields,
    }


# A buyer who moved and changed name between orders (the newest order names the customer,
# whatever the order in the batch), a masked key (scoped to shop and region), a buyer known
# only by a full phone, an anonymous order, and items.
_BATCH = [
    _order("B-2", "2024-06-02T10:00:00+08:00", buyer_key="MEMBER-1", receiver_name="李四",
           receiver_phone="13800000001", province="浙江省", city="杭州市",
           items=[{"title": "茶叶", "merchant_code": "TEA-1", "paid_fen": 3000},
                  {"title": "茶杯", "quantity": 2, "paid_fen": 2000}]),
    _order("B-1", "2024-05-01T10:00:00+08:00", buyer_key="MEMBER-1", receiver_name="张三",
           receiver_phone="13800000002", province="江苏省", city="南京市"),
    _order("B-3", "2024-06-03T10:00:00+08:00", buyer_key="王**", receiver_name="王*",
           province="广东省", city="广州市", refund_fen=1000, status="partially_refunded"),
    _order("B-4", "2024-06-04T10:00:00+08:00", receiver_name="赵六", receiver_phone="13900000004",
           city="上海市"),
    _order("B-5", "2024-06-05T10:00:00+08:00", status="pending_payment", paid_at=None),
]  # fmt: skip


async def test_first_batch_stores_what_the_staged_path_stores(
    tenants: TenantFactory, runtime: Runtime
) -> None:
    direct, staged = await tenants.create(), await tenants.create()
    direct_shop, staged_shop = await direct.shop("offline"), await staged.shop("offline")
    seed = _order("SEED-1", "2024-01-01T08:00:00+08:00")
    counts = []
    for tenant, shop, orders in (
        (staged, staged_shop, [seed]),
        (direct, direct_shop, _BATCH),
        (staged, staged_shop, _BATCH),
    ):
        response = await tenant.request(
            "POST", "/api/v1/orders/batch", json={"shop_id": shop["id"], "orders": orders}
        )
        assert response.status_code == 200, response.text
        counts.append(response.json()["counts"])
    assert counts[1] == counts[2]
    assert counts[1]["customers_created"] == 3
    assert counts[1]["anonymous"] == 1
    stored = await _stored(runtime, direct.tenant_id, direct_shop["id"])
    other = await _stored(runtime, staged.tenant_id, staged_shop["id"])
    for order in stored["orders"] + other["orders"]:
        order.pop("source_time")  # a batch's snapshot time is when it arrived
    assert stored == other
    (member,) = (
        c for c in stored["customers"] if ["offline", "MEMBER-1", True] in (c["identities"] or [])
    )
    assert (member["display_name"], member["province"], member["city"]) == (
        "李*",
        "浙江省",
        "杭州市",
    )
