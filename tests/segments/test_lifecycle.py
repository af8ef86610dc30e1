"""Lifecycle stages over time with an injected clock: transitions, history, flows, thresholds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.runtime import Runtime
from tests.conftest import RunJobs, TestClock
from tests.factories import TenantCtx, TenantFactory
from tests.segments.orders import add_order, recompute

T0 = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)


async def _stage(tenant: TenantCtx, customer_id: str) -> str:
    body = (
        await tenant.request(
            "POST",
            "/api/v1/segments/preview",
            json={"filter": {"field": "lifecycle_stage", "op": "is_null", "value": False}},
            params={"limit": 500},
        )
    ).json()
    stages: dict[str, str] = {item["id"]: item["lifecycle_stage"] for item in body["items"]}
    return stages[customer_id]


async def _at(runtime: Runtime, clock: TestClock, tenant: TenantCtx, days: int) -> None:
    clock.set(T0 + timedelta(days=days))
    await recompute(runtime, tenant.tenant_id)


async def test_a_customer_moves_through_every_stage(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock
) -> None:
    tenant = await tenants.create()
    shop = await tenant.shop("tmall")
    buyer = await tenant.customer(display_name="周期")
    prospect = await tenant.customer(display_name="潜客")
    order = (runtime, tenant.tenant_id, buyer["id"], shop)

    await _at(runtime, clock, tenant, 0)
    assert await _stage(tenant, prospect["id"]) == "prospect"
    assert await _stage(tenant, buyer["id"]) == "prospect"

    await add_order(*order, T0, 5000)
    await _at(runtime, clock, tenant, 0)
    assert await _stage(tenant, buyer["id"]) == "new"
    await _at(runtime, clock, tenant, 29)
    assert await _stage(tenant, buyer["id"]) == "new"
    await _at(runtime, clock, tenant, 40)
    assert await _stage(tenant, buyer["id"]) == "active"
    await _at(runtime, clock, tenant, 100)
    assert await _stage(tenant, buyer["id"]) == "at_risk"
    await _at(runtime, clock, tenant, 200)
    assert await _stage(tenant, buyer["id"]) == "churned"
    await add_order(*order, T0 + timedelta(days=210), 5000)
    await _at(runtime, clock, tenant, 210)
    assert await _stage(tenant, buyer["id"]) == "won_back"
    await add_order(*order, T0 + timedelta(days=220), 5000)
    await _at(runtime, clock, tenant, 220)
    # A repeat buyer with the tenant's top RFM group (the only buyer here) is loyal.
    assert await _stage(tenant, buyer["id"]) == "loyal"
    assert await _stage(tenant, prospect["id"]) == "prospect"

    history = await tenant.request(
        "GET", f"/api/v1/analytics/lifecycle/customers/{buyer['id']}", role="analyst"
    )
    assert history.status_code == 200
    changes = [
        (c["from_stage"], c["to_stage"], c["changed_at"][:10]) for c in history.json()["items"]
    ]
    assert changes == [
        ("prospect", "new", "2026-01-01"),
        ("new", "active", "2026-02-10"),
        ("active", "at_risk", "2026-04-11"),
        ("at_risk", "churned", "2026-07-20"),
        ("churned", "won_back", "2026-07-30"),
        ("won_back", "loyal", "2026-08-09"),
    ]

    flows = await tenant.request(
        "GET",
        "/api/v1/analytics/lifecycle",
        params={
            "since": (T0 + timedelta(days=1)).isoformat(),
            "until": (T0 + timedelta(days=205)).isoformat(),
        },
    )
    body: dict[str, Any] = flows.json()
    assert body["flows"] == [{"from_stage": "new", "to_stage": "churned", "customers": 1}]
    assert {s["stage"]: s["customers"] for s in body["stages"]}["loyal"] == 1
    assert {s["stage"]: s["customers"] for s in body["stages"]}["prospect"] == 1


async def test_thresholds_are_tenant_settings_and_stages_follow_them(
    tenants: TenantFactory, runtime: Runtime, clock: TestClock, run_jobs: RunJobs
) -> None:
    tenant = await tenants.create()
    shop = await tenant.shop("jd")
    buyer = await tenant.customer()
    await add_order(runtime, tenant.tenant_id, buyer["id"], shop, T0, 5000)
    await _at(runtime, clock, tenant, 40)
    assert await _stage(tenant, buyer["id"]) == "active"

    current = await tenant.request("GET", "/api/v1/segments/settings")
    assert current.json() == {
        "new_days": 30, "loyal_orders": 5, "at_risk_days": 90, "churned_days": 180
    }  # fmt: skip
    stale = current.headers["etag"]
    changed = await tenant.request(
        "PUT",
        "/api/v1/segments/settings",
        json={"new_days": 60, "loyal_orders": 3, "at_risk_days": 40, "churned_days": 30},
        headers={"If-Match": stale},
    )
    assert changed.status_code == 422
    assert changed.json()["errors"][0]["loc"] == ["body", "at_risk_days"]
    changed = await tenant.request(
        "PUT",
        "/api/v1/segments/settings",
        json={"new_days": 60, "loyal_orders": 3, "at_risk_days": 90, "churned_days": 180},
        headers={"If-Match": stale},
    )
    assert changed.status_code == 200, changed.text
    again = await tenant.request(
        "PUT",
        "/api/v1/segments/settings",
        json={"new_days": 10, "loyal_orders": 3, "at_risk_days": 90, "churned_days": 180},
        headers={"If-Match": stale},
    )
    assert again.status_code == 412
    agent = await tenant.request(
        "PUT", "/api/v1/segments/settings", role="agent", json={"new_days": 10}
    )
    assert agent.status_code == 403

    await run_jobs()  # the recompute the change queued, at the clock's time (day 40)
    assert await _stage(tenant, buyer["id"]) == "new"
