"""Segment test fixtures: a fixed `now`, and a small tenant whose customers and orders every
filter test reads (built once per module: the tests only read it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.runtime import Runtime
from tests.conftest import TestClock
from tests.factories import TenantCtx, TenantFactory
from tests.segments.orders import add_order, recompute

NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)


@pytest.fixture
def now(clock: TestClock) -> datetime:
    clock.set(NOW)
    return NOW


@dataclass
class World:
    tenant: TenantCtx
    ids: dict[str, str]
    shops: dict[str, dict[str, Any]]

    def names(self, items: list[dict[str, Any]]) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id[item["id"]] for item in items}

    async def preview(self, tree: Any, **params: Any) -> httpx.Response:
        return await self.tenant.request(
            "POST", "/api/v1/segments/preview", json={"filter": tree}, params=params
        )

    async def matching(self, tree: Any) -> set[str]:
        response = await self.preview(tree, limit=500)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == len(body["items"])
        return self.names(body["items"])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(client: httpx.AsyncClient, runtime: Runtime, test_clock: TestClock) -> World:
    """A: 3 tea orders on Tmall, one partly refunded; B: one recent Pinduoduo order;
    C: one old coffee order on Tmall (churned); D: no orders (prospect)."""
    test_clock.set(NOW)
    tenant = await TenantFactory(client, runtime).create()
    for rule in (
        {"category": "茶叶", "match": "code_prefix", "pattern": "TEA-"},
        {"category": "咖啡", "match": "title_keyword", "pattern": "咖啡"},
    ):
        created = await tenant.request("POST", "/api/v1/segments/category-rules", json=rule)
        assert created.status_code == 201, created.text
    tmall = await tenant.shop("tmall")
    pdd = await tenant.shop("pinduoduo")
    a = await tenant.customer(
        display_name="王一",
        gender="female",
        birthday="1990-05-20",
        province="浙江省",
        city="杭州市",
        tags=["vip", "茶客"],
        identities=[{"platform": "tmall", "buyer_key": "wang1"}],
    )
    b = await tenant.customer(
        display_name="李二", gender="male", province="广东省", city="深圳市", tags=["新客"]
    )
    c = await tenant.customer(display_name="张三", province="浙江省", city="宁波市")
    d = await tenant.customer(display_name="赵四")
    tea = [("TEA-001", "西湖龙井 明前特级")]
    await add_order(
        runtime, tenant.tenant_id, a["id"], tmall, NOW - timedelta(days=100), 10000, tea
    )
    await add_order(runtime, tenant.tenant_id, a["id"], tmall, NOW - timedelta(days=40), 10000, tea)
    await add_order(
        runtime, tenant.tenant_id, a["id"], tmall, NOW - timedelta(days=5), 10000, tea,
        status="partially_refunded", refund_fen=2000,
    )  # fmt: skip
    await add_order(
        runtime,
        tenant.tenant_id,
        b["id"],
        pdd,
        NOW - timedelta(days=2),
        2000,
        [("PDD-9", "抽纸 3 提")],
    )
    await add_order(
        runtime, tenant.tenant_id, c["id"], tmall, NOW - timedelta(days=400), 50000,
        [("COF-1", "云南小粒咖啡豆 1kg")],
    )  # fmt: skip
    await recompute(runtime, tenant.tenant_id)
    test_clock.reset()
    return World(
        tenant,
        {"A": a["id"], "B": b["id"], "C": c["id"], "D": d["id"]},
        {"tmall": tmall, "pdd": pdd},
    )
