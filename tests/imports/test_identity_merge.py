"""Identity resolution (exact identity, full phone, never a guess), merge suggestions, merges."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from app.runtime import Runtime
from app.services.identities import suggest_merges
from tests.conftest import RunJobs
from tests.factories import TenantCtx, TenantFactory, unique_mobile
from tests.imports.helpers import SETS, import_files, sample_files, truth


@pytest.fixture
async def tenant(tenants: TenantFactory) -> TenantCtx:
    return await tenants.create()


def _order(order_no: str, **fields: Any) -> dict[str, Any]:
    return {
        "order_no": order_no,
        "status": "completed",
        "paid_fen": 5000,
        "ordered_at": "2024-06-30T10:15:00+08:00",
        "paid_at": "2024-06-30T10:16:00+08:00",
        **fields,
    }


async def _batch(tenant: TenantCtx, shop_id: str, *orders: dict[str, Any]) -> dict[str, Any]:
    response = await tenant.request(
        "POST", "/api/v1/orders/batch", json={"shop_id": shop_id, "orders": list(orders)}
    )
    assert response.status_code == 200, response.text
    counts: dict[str, Any] = response.json()["counts"]
    return counts


async def _customer_of(tenant: TenantCtx, order_no: str) -> str | None:
    orders = (await tenant.request("GET", "/api/v1/orders", params={"limit": 500})).json()
    found: str | None = next(o["customer_id"] for o in orders["items"] if o["order_no"] == order_no)
    return found


async def test_same_identity_is_the_same_customer(tenant: TenantCtx) -> None:
    shop = await tenant.shop("offline")
    first = await _batch(tenant, shop["id"], _order("K-1", buyer_key="MEMBER-7"))
    second = await _batch(tenant, shop["id"], _order("K-2", buyer_key="MEMBER-7"))
    assert first["customers_created"] == 1
    assert second["customers_created"] == 0
    assert second["customers_matched"] == 1
    assert await _customer_of(tenant, "K-1") == await _customer_of(tenant, "K-2")


async def test_identity_keys_that_collide_when_stored_do_not_fail_the_load(
    tenant: TenantCtx, runtime: Runtime
) -> None:
    """Identities go in by plain INSERT; two that the stored key's 200 characters cannot tell
    apart (a long masked key scoped to different regions) fall back to skipping the second,
    in both of the loader's paths, and the load goes through."""
    key = "*" * 198 + "王"  # masked: scoped to the shop and region, 199 characters and more
    for shop in (await tenant.shop("offline"), await tenant.shop("offline")):
        orders = [
            _order(f"{shop['id']}-1", buyer_key=key, province="浙江省", city="杭州市"),
            _order(f"{shop['id']}-2", buyer_key=key, province="江苏省", city="南京市"),
        ]
        first = await _batch(tenant, shop["id"], orders[0], orders[1])  # COPY path
        assert first["customers_created"] == 2
        orders = [_order(f"{shop['id']}-{n}", buyer_key=key, province="广东省") for n in (3, 4)]
        staged = await _batch(tenant, shop["id"], *orders)  # staged path, shop has orders
        assert (staged["orders_created"], staged["customers_created"]) == (2, 1)
    async with runtime.sessions() as session:
        identities = await session.scalar(
            text("SELECT count(*) FROM customer_identities WHERE tenant_id = :t"),
            {"t": tenant.tenant_id},
        )
    assert identities == 2  # one per shop: the others collided with it


async def test_full_phone_matches_an_existing_customer(tenant: TenantCtx) -> None:
    shop = await tenant.shop("offline")
    phone = unique_mobile()
    known = await tenant.customer(phones=[phone])
    counts = await _batch(
        tenant, shop["id"], _order("L-1", buyer_key="NEW-CARD", receiver_phone=f"+86 {phone}")
    )
    assert counts["customers_matched"] == 1
    assert counts["customers_created"] == 0
    assert await _customer_of(tenant, "L-1") == known["id"]
    profile = (await tenant.request("GET", f"/api/v1/customers/{known['id']}")).json()
    assert {i["buyer_key"] for i in profile["identities"]} == {"NEW-CARD"}


async def test_a_phone_two_customers_share_is_never_guessed(tenant: TenantCtx) -> None:
    shop = await tenant.shop("offline")
    phone = unique_mobile()
    first, second = await tenant.customer(phones=[phone]), await tenant.customer(phones=[phone])
    counts = await _batch(tenant, shop["id"], _order("M-1", buyer_key="X", receiver_phone=phone))
    assert counts["customers_created"] == 1
    assert await _customer_of(tenant, "M-1") not in {first["id"], second["id"]}


async def test_masked_phone_never_matches(tenant: TenantCtx) -> None:
    shop = await tenant.shop("offline")
    phone = unique_mobile()
    known = await tenant.customer(phones=[phone])
    masked = f"{phone[:3]}****{phone[-4:]}"
    await _batch(tenant, shop["id"], _order("N-1", buyer_key="Y", receiver_phone=masked))
    assert await _customer_of(tenant, "N-1") != known["id"]


async def test_cross_platform_lookalikes_are_suggested_not_merged(
    tenant: TenantCtx, run_jobs: RunJobs
) -> None:
    expected = truth(SETS[0])["cross_platform"]
    tmall_shop, pdd_shop = await tenant.shop("tmall"), await tenant.shop("pinduoduo")
    await import_files(tenant, run_jobs, sample_files(SETS[0], "tmall"), "tmall", tmall_shop["id"])
    await import_files(tenant, run_jobs, sample_files(SETS[0], "pdd"), "pinduoduo", pdd_shop["id"])
    listed = (await tenant.request("GET", "/api/v1/merge-suggestions")).json()["items"]
    assert len(listed) == expected["expected_merge_suggestions"]
    phones = {s["evidence"]["receiver_phone"] for s in listed}
    assert phones == {e["phone"] for e in expected["examples"]}
    for suggestion in listed:
        assert suggestion["customer_id"] != suggestion["other_customer_id"]
        assert suggestion["evidence"]["platforms"] == ["pinduoduo", "tmall"]
    dismissed = await tenant.request("POST", f"/api/v1/merge-suggestions/{listed[0]['id']}/dismiss")
    assert dismissed.json()["status"] == "dismissed"
    await import_files(tenant, run_jobs, sample_files(SETS[0], "pdd"), "pinduoduo", pdd_shop["id"])
    still_open = (await tenant.request("GET", "/api/v1/merge-suggestions")).json()["items"]
    assert len(still_open) == len(listed) - 1


async def test_merge_moves_everything_and_is_audited(tenant: TenantCtx) -> None:
    shop = await tenant.shop("offline")
    phone = unique_mobile()
    await _batch(
        tenant,
        shop["id"],
        _order("P-1", buyer_key="CARD-A", receiver_phone=phone),
        _order("P-2", buyer_key="CARD-B", paid_fen=7000),
    )
    survivor, merged = await _customer_of(tenant, "P-1"), await _customer_of(tenant, "P-2")
    assert survivor is not None
    assert merged is not None
    await tenant.request("POST", f"/api/v1/customers/{merged}/tags", json={"tags": ["vip"]})
    note = await tenant.request(
        "POST",
        f"/api/v1/customers/{merged}/interactions",
        json={"kind": "note", "content": "喜欢红色"},
    )
    assert note.status_code == 201, note.text
    response = await tenant.request(
        "POST", f"/api/v1/customers/{survivor}/merge", json={"other_customer_id": merged}
    )
    assert response.status_code == 200, response.text
    assert response.json()["moved"]["orders"] == 1
    gone = await tenant.request("GET", f"/api/v1/customers/{merged}")
    assert gone.status_code == 404
    profile = (await tenant.request("GET", f"/api/v1/customers/{survivor}")).json()
    assert {i["buyer_key"] for i in profile["identities"]} == {"CARD-A", "CARD-B"}
    assert "vip" in profile["tags"]
    assert profile["phones"] == [phone]
    orders = (await tenant.request("GET", f"/api/v1/customers/{survivor}/orders")).json()
    assert {o["order_no"] for o in orders["items"]} == {"P-1", "P-2"}
    timeline = (await tenant.request("GET", f"/api/v1/customers/{survivor}/interactions")).json()
    assert [i["content"] for i in timeline["items"]] == ["喜欢红色"]
    audit = (await tenant.request("GET", "/api/v1/audit-events")).json()["items"]
    assert any(e["action"] == "customer.merge" and e["resource_id"] == survivor for e in audit)
    identity = await tenant.request(
        "GET", "/api/v1/customers/lookup", params={"platform": "offline", "buyer_key": "CARD-B"}
    )
    assert identity.json()["id"] == survivor


async def test_merge_rules(tenant: TenantCtx, tenants: TenantFactory) -> None:
    one, two = await tenant.customer(), await tenant.customer()
    itself = await tenant.request(
        "POST", f"/api/v1/customers/{one['id']}/merge", json={"other_customer_id": one["id"]}
    )
    assert itself.status_code == 422
    agent = await tenant.request(
        "POST",
        f"/api/v1/customers/{one['id']}/merge",
        role="agent",
        json={"other_customer_id": two["id"]},
    )
    assert agent.status_code == 403
    other = await tenants.create()
    stranger = await other.customer()
    foreign = await tenant.request(
        "POST", f"/api/v1/customers/{one['id']}/merge", json={"other_customer_id": stranger["id"]}
    )
    assert foreign.status_code == 404
    assert (
        await other.request(
            "POST",
            f"/api/v1/customers/{one['id']}/merge",
            json={"other_customer_id": stranger["id"]},
        )
    ).status_code == 404


async def test_a_full_phone_alone_identifies_the_buyer(tenant: TenantCtx) -> None:
    shop = await tenant.shop("o2o")
    phone, known_phone = unique_mobile(), unique_mobile()
    known = await tenant.customer(phones=[known_phone])
    counts = await _batch(
        tenant,
        shop["id"],
        _order("Q-1", receiver_phone=known_phone),
        _order("Q-2", receiver_phone=phone),
        _order("Q-3", receiver_phone=phone),
        _order("Q-4"),
    )
    assert counts["customers_matched"] == 1
    assert counts["customers_created"] == 1
    assert counts["anonymous"] == 1
    assert await _customer_of(tenant, "Q-1") == known["id"]
    new_customer = await _customer_of(tenant, "Q-2")
    assert new_customer == await _customer_of(tenant, "Q-3")
    assert await _customer_of(tenant, "Q-4") is None
    profile = (await tenant.request("GET", f"/api/v1/customers/{new_customer}")).json()
    assert profile["phones"] == [phone]
    assert profile["identities"] == []


async def test_suggesting_again_finds_the_same_pairs_and_leaves_planner_settings_alone(
    tenant: TenantCtx, run_jobs: RunJobs, runtime: Runtime
) -> None:
    """The suggestion statement runs with merge joins and JIT off; the caller's transaction gets
    its settings back. A tenant selling on one platform is not searched at all."""
    tmall_shop, pdd_shop = await tenant.shop("tmall"), await tenant.shop("pinduoduo")
    await import_files(tenant, run_jobs, sample_files(SETS[0], "tmall"), "tmall", tmall_shop["id"])
    ids = text("SELECT id FROM customers WHERE tenant_id = :t")
    async with runtime.sessions() as session:
        customers = list((await session.scalars(ids, {"t": tenant.tenant_id})).all())
        await suggest_merges(session, tenant.tenant_id, customers, runtime.clock())
        count = text("SELECT count(*) FROM merge_suggestions WHERE tenant_id = :t")
        assert await session.scalar(count, {"t": tenant.tenant_id}) == 0
    await import_files(tenant, run_jobs, sample_files(SETS[0], "pdd"), "pinduoduo", pdd_shop["id"])
    before = (await tenant.request("GET", "/api/v1/merge-suggestions")).json()["items"]
    assert before
    async with runtime.sessions() as session:
        await session.execute(
            text("DELETE FROM merge_suggestions WHERE tenant_id = :t"), {"t": tenant.tenant_id}
        )
        customers = list((await session.scalars(ids, {"t": tenant.tenant_id})).all())
        await session.execute(text("SET LOCAL enable_mergejoin = on"))
        await session.execute(text("SET LOCAL jit = on"))
        await suggest_merges(session, tenant.tenant_id, customers, runtime.clock())
        assert await session.scalar(text("SHOW enable_mergejoin")) == "on"
        assert await session.scalar(text("SHOW jit")) == "on"
        await session.commit()
    after = (await tenant.request("GET", "/api/v1/merge-suggestions")).json()["items"]
    pairs = {(s["customer_id"], s["other_customer_id"]) for s in after}
    assert pairs == {(s["customer_id"], s["other_customer_id"]) for s in before}
