"""The demo tenant `kezhan serve` creates comes with orders imported from generated exports."""

from __future__ import annotations

import httpx
import pytest

from app.config import Settings
from app.runtime import Runtime
from app.services.demo import DEMO_ORDERS, seed_demo_tenant


@pytest.fixture
async def headers(runtime: Runtime, settings: Settings) -> dict[str, str]:
    """The demo tenant's owner key, as `kezhan serve` creates it on first start."""
    async with runtime.sessions() as session:
        key = await seed_demo_tenant(session, settings)
        await session.commit()
    return {"Authorization": f"Bearer {key}"}


async def test_demo_tenant_has_imported_orders_and_customers(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    imports = (await client.get("/api/v1/imports", headers=headers)).json()["items"]
    assert {i["platform"] for i in imports} == {"tmall", "pinduoduo"}
    assert all(i["status"] == "succeeded" for i in imports)
    assert sum(i["counts"]["orders_created"] for i in imports) == 2 * DEMO_ORDERS
    orders = (await client.get("/api/v1/orders", headers=headers, params={"limit": 500})).json()
    assert len(orders["items"]) == 500
    assert any(o["customer_id"] for o in orders["items"])


async def test_demo_tenant_is_scored_from_the_start(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    rfm = (await client.get("/api/v1/analytics/rfm", headers=headers)).json()
    assert rfm["as_of"] is not None
    assert rfm["buyers"] > 0
    assert sum(cell["customers"] for cell in rfm["grid"]) == rfm["buyers"]
    lifecycle = (await client.get("/api/v1/analytics/lifecycle", headers=headers)).json()
    buying = [s for s in lifecycle["stages"] if s["stage"] != "prospect" and s["customers"] > 0]
    assert buying, lifecycle["stages"]


async def test_demo_orders_are_recent_so_the_default_reports_show_them(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    overview = (await client.get("/api/v1/analytics/overview", headers=headers)).json()
    assert overview["totals"]["orders"] > 0  # the last 30 days, the default window
    cohorts = (await client.get("/api/v1/analytics/cohorts", headers=headers)).json()
    assert cohorts["cohorts"]  # first purchases of the last year
