"""The filter language end to end: every operator of every field type, boolean nodes, the
`ordered` condition, and the paths of filter errors."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from app.runtime import Runtime
from tests.factories import TenantFactory
from tests.segments.conftest import NOW, World


def cond(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def ago(days: int) -> str:
    return (NOW - timedelta(days=days)).isoformat()


CASES: list[tuple[str, Any, set[str]]] = [
    # string
    ("string eq", cond("province", "eq", "浙江省"), {"A", "C"}),
    ("string ne keeps unknown", cond("province", "ne", "浙江省"), {"B", "D"}),
    ("string in", cond("province", "in", ["广东省", "江苏省"]), {"B"}),
    ("string not_in keeps unknown", cond("province", "not_in", ["浙江省"]), {"B", "D"}),
    ("string contains", cond("province", "contains", "江"), {"A", "C"}),
    ("string starts_with", cond("city", "starts_with", "深"), {"B"}),
    ("string is_null", cond("province", "is_null", True), {"D"}),
    ("string is not null", cond("city", "is_null", False), {"A", "B", "C"}),
    ("name contains", cond("display_name", "contains", "二"), {"B"}),
    ("starts_with is literal, not a pattern", cond("display_name", "starts_with", "%"), set()),
    # enum
    ("enum eq", cond("gender", "eq", "female"), {"A"}),
    ("enum ne keeps unknown", cond("gender", "ne", "male"), {"A", "C", "D"}),
    ("enum in", cond("gender", "in", ["male", "female"]), {"A", "B"}),
    ("enum not_in", cond("gender", "not_in", ["female"]), {"B", "C", "D"}),
    ("enum is_null", cond("gender", "is_null", True), {"C", "D"}),
    # integer
    ("integer eq", cond("order_count", "eq", 3), {"A"}),
    ("integer ne", cond("order_count", "ne", 0), {"A", "B", "C"}),
    ("integer gt", cond("order_count", "gt", 1), {"A"}),
    ("integer gte", cond("order_count", "gte", 1), {"A", "B", "C"}),
    ("integer lt", cond("order_count", "lt", 1), {"D"}),
    ("integer lte", cond("order_count", "lte", 1), {"B", "C", "D"}),
    ("integer between", cond("order_count", "between", [1, 2]), {"B", "C"}),
    ("integer in", cond("order_count", "in", [0, 3]), {"A", "D"}),
    ("integer not_in", cond("order_count", "not_in", [0]), {"A", "B", "C"}),
    ("refund count", cond("refund_count", "eq", 1), {"A"}),
    ("integer is_null", cond("rfm_r", "is_null", True), {"D"}),
    # money
    ("money gte", cond("total_spent_fen", "gte", 28000), {"A", "C"}),
    ("money between", cond("total_spent_fen", "between", [1000, 28000]), {"A", "B"}),
    ("money eq after refund", cond("total_spent_fen", "eq", 28000), {"A"}),
    ("aov", cond("avg_order_value_fen", "gt", 9000), {"A", "C"}),
    ("refunded fen", cond("refund_fen", "gt", 0), {"A"}),
    # number
    ("number gt", cond("refund_rate", "gt", 0.3), {"A"}),
    ("number lte", cond("refund_rate", "lte", 0), {"B", "C", "D"}),
    ("number between", cond("refund_rate", "between", [0.3, 0.34]), {"A"}),
    # datetime
    ("datetime within_days", cond("last_order_at", "within_days", 7), {"A", "B"}),
    ("datetime gte", cond("last_order_at", "gte", ago(50)), {"A", "B"}),
    ("datetime lt", cond("last_order_at", "lt", ago(300)), {"C"}),
    ("datetime between", cond("first_order_at", "between", [ago(120), ago(1)]), {"A", "B"}),
    ("datetime is_null", cond("first_order_at", "is_null", True), {"D"}),
    ("datetime gt", cond("first_order_at", "gt", ago(3)), {"B"}),
    ("datetime lte", cond("first_order_at", "lte", ago(100)), {"A", "C"}),
    ("days since last order gte", cond("days_since_last_order", "gte", 300), {"C"}),
    ("days since last order lte", cond("days_since_last_order", "lte", 5), {"A", "B"}),
    ("days since last order unknown", cond("days_since_last_order", "is_null", True), {"D"}),
    # date
    ("date eq", cond("birthday", "eq", "1990-05-20"), {"A"}),
    ("date lt", cond("birthday", "lt", "2000-01-01"), {"A"}),
    ("date is_null", cond("birthday", "is_null", False), {"A"}),
    # tags
    ("tags contains one", cond("tags", "contains", "vip"), {"A"}),
    ("tags contains all", cond("tags", "contains", ["vip", "茶客"]), {"A"}),
    ("tags contains all, one missing", cond("tags", "contains", ["vip", "新客"]), set()),
    ("tags in (any)", cond("tags", "in", ["vip", "新客"]), {"A", "B"}),
    ("tags not_in (none)", cond("tags", "not_in", ["vip"]), {"B", "C", "D"}),
    ("tags empty", cond("tags", "is_null", True), {"C", "D"}),
    # lists of enums / ids / text
    ("platforms contains", cond("platforms", "contains", "pinduoduo"), {"B"}),
    ("platforms in", cond("platforms", "in", ["tmall"]), {"A", "C"}),
    ("platforms not_in", cond("platforms", "not_in", ["tmall"]), {"B", "D"}),
    ("platforms empty", cond("platforms", "is_null", True), {"D"}),
    ("identity platforms", cond("identity_platforms", "contains", "tmall"), {"A"}),
    ("identity platforms none", cond("identity_platforms", "is_null", True), {"B", "C", "D"}),
    ("products eq", cond("products", "eq", "TEA-001"), {"A"}),
    ("products in", cond("products", "in", ["PDD-9", "COF-1"]), {"B", "C"}),
    ("products not_in", cond("products", "not_in", ["TEA-001"]), {"B", "C", "D"}),
    ("products contains text", cond("products", "contains", "DD"), {"B"}),
    ("products starts_with", cond("products", "starts_with", "COF"), {"C"}),
    ("titles contains", cond("product_titles", "contains", "龙井"), {"A"}),
    ("categories contains (code prefix rule)", cond("categories", "contains", "茶叶"), {"A"}),
    ("categories in (title keyword rule)", cond("categories", "in", ["咖啡"]), {"C"}),
    ("categories not_in", cond("categories", "not_in", ["茶叶"]), {"B", "C", "D"}),
    ("categories empty", cond("categories", "is_null", True), {"B", "D"}),
    # lifecycle and rfm
    ("lifecycle eq", cond("lifecycle_stage", "eq", "prospect"), {"D"}),
    ("lifecycle in", cond("lifecycle_stage", "in", ["new", "churned"]), {"B", "C"}),
    ("lifecycle since", cond("lifecycle_since", "is_null", False), {"A", "B", "C", "D"}),
    ("rfm recency", cond("rfm_r", "gte", 2), {"A", "B"}),
    ("rfm recency top", cond("rfm_r", "eq", 4), {"B"}),
    ("rfm group known", cond("rfm_group", "is_null", False), {"A", "B", "C"}),
    # boolean nodes
    ("not", {"not": cond("province", "eq", "浙江省")}, {"B", "D"}),
    ("or", {"or": [cond("gender", "eq", "male"), cond("order_count", "eq", 0)]}, {"B", "D"}),
    (
        "nested",
        {
            "and": [
                cond("province", "eq", "浙江省"),
                {"not": {"or": [cond("tags", "contains", "vip")]}},
            ]
        },
        {"C"},
    ),
    # ordered
    ("ordered product 3 times", {"ordered": {"product": "TEA-001", "min_times": 3}}, {"A"}),
    ("ordered product 4 times", {"ordered": {"product": "TEA-001", "min_times": 4}}, set()),
    ("ordered product prefix", {"ordered": {"product_prefix": "PDD"}}, {"B"}),
    ("ordered title", {"ordered": {"title_contains": "龙井", "since": ago(50)}}, {"A"}),
    ("ordered category", {"ordered": {"category": "咖啡"}}, {"C"}),
    (
        "ordered category twice in 60 days",
        {"ordered": {"category": "茶叶", "within_days": 60, "min_times": 2}},
        {"A"},
    ),
    ("ordered platform", {"ordered": {"platform": "pinduoduo"}}, {"B"}),
    ("ordered within days", {"ordered": {"within_days": 30}}, {"A", "B"}),
    ("ordered until", {"ordered": {"until": ago(200)}}, {"C"}),
    ("ordered amount", {"ordered": {"min_amount_fen": 20000}}, {"C"}),
    ("ordered max amount", {"ordered": {"max_amount_fen": 5000}}, {"B"}),
    ("never ordered", {"not": {"ordered": {}}}, {"D"}),
]  # fmt: skip


@pytest.mark.parametrize(("tree", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_filter_matches(world: World, now: datetime, tree: Any, expected: set[str]) -> None:
    assert await world.matching(tree) == expected


async def test_ordered_in_a_shop(world: World, now: datetime) -> None:
    shop_id = world.shops["pdd"]["id"]
    assert await world.matching({"ordered": {"shop_id": shop_id}}) == {"B"}
    shop_id = world.shops["tmall"]["id"]
    assert await world.matching(cond("shops", "contains", shop_id)) == {"A", "C"}
    assert await world.matching(cond("shops", "in", [shop_id])) == {"A", "C"}
    assert await world.matching(cond("shops", "not_in", [shop_id])) == {"B", "D"}


async def test_every_field_and_operator_is_listed(world: World) -> None:
    response = await world.tenant.request("GET", "/api/v1/segments/fields", role="analyst")
    assert response.status_code == 200
    body = response.json()
    fields = {f["name"]: f for f in body["fields"]}
    assert fields["total_spent_fen"]["type"] == "money"
    assert "between" in fields["total_spent_fen"]["operators"]
    assert fields["tags"]["operators"] == ["contains", "in", "not_in", "is_null"]
    assert "重要价值客户" not in fields["rfm_group"]["choices"]
    assert "important_value" in fields["rfm_group"]["choices"]
    assert "within_days" in fields["last_order_at"]["operators"]
    assert "min_times" in body["ordered"]
    assert body["limits"]["max_depth"] == 8


async def test_preview_pages_through_all_matches(world: World, now: datetime) -> None:
    tree = cond("order_count", "gte", 0)
    first = await world.preview(tree, limit=3)
    body = first.json()
    assert body["count"] == 4
    assert len(body["items"]) == 3
    second = (await world.preview(tree, limit=3, cursor=body["next_cursor"])).json()
    assert second["next_cursor"] is None
    assert world.names(body["items"] + second["items"]) == {"A", "B", "C", "D"}


async def test_preview_items_carry_facts(world: World, now: datetime) -> None:
    body = (await world.preview(cond("display_name", "eq", "王一"))).json()
    (item,) = body["items"]
    assert item["order_count"] == 3
    assert item["total_spent_fen"] == 28000
    assert item["avg_order_value_fen"] == 9333
    assert item["days_since_last_order"] == 5
    assert item["rfm_group"] is not None


ERRORS: list[tuple[str, Any, list[str | int]]] = [
    (
        "unknown field",
        {"and": [cond("province", "eq", "x"), cond("city", "eq", "y"), cond("nope", "eq", 1)]},
        ["and", 2, "field"],
    ),
    (
        "bad value in third condition",
        {"and": [cond("city", "eq", "x"), cond("city", "eq", "y"), cond("order_count", "gt", "1")]},
        ["and", 2, "value"],
    ),
    ("operator not for type", {"or": [cond("tags", "gt", 1)]}, ["or", 0, "op"]),
    ("missing value", {"not": {"field": "city", "op": "eq"}}, ["not", "value"]),
    ("extra key", {"field": "city", "op": "eq", "value": "x", "oops": 1}, ["oops"]),
    ("empty and", {"and": []}, ["and"]),
    ("not an object", {"and": [1]}, ["and", 0]),
    ("two node kinds", {"and": [cond("city", "eq", "x")], "or": []}, []),
    ("between needs two", cond("order_count", "between", [1]), ["value"]),
    ("between reversed", cond("order_count", "between", [5, 1]), ["value"]),
    ("bad list element", cond("province", "in", ["a", 3]), ["value", 1]),
    ("empty list", cond("province", "in", []), ["value"]),
    ("naive datetime", cond("last_order_at", "gte", "2026-01-01T00:00:00"), ["value"]),
    ("bad date", cond("birthday", "eq", "1990-13-01"), ["value"]),
    ("bad enum", cond("lifecycle_stage", "eq", "sleepy"), ["value"]),
    ("is_null takes a bool", cond("city", "is_null", "yes"), ["value"]),
    ("bool is not an integer", cond("order_count", "eq", True), ["value"]),
    ("negative window", cond("last_order_at", "within_days", -1), ["value"]),
    ("bad uuid", cond("shops", "contains", "not-a-uuid"), ["value"]),
    ("ordered unknown key", {"ordered": {"sku": "x"}}, ["ordered", "sku"]),
    ("ordered bad times", {"ordered": {"min_times": 0}}, ["ordered", "min_times"]),
    (
        "ordered bad platform",
        {"and": [{"ordered": {"platform": "ebay"}}]},
        ["and", 0, "ordered", "platform"],
    ),
    ("long string", cond("city", "eq", "x" * 201), ["value"]),
]  # fmt: skip


@pytest.mark.parametrize(("tree", "path"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
async def test_filter_error_points_at_its_path(
    world: World, tree: Any, path: list[str | int]
) -> None:
    response = await world.preview(tree)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["body", "filter", *path]


async def test_deep_filters_are_refused(world: World) -> None:
    tree: Any = cond("city", "eq", "x")
    for _ in range(8):
        tree = {"not": tree}
    response = await world.preview(tree)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "filter", *["not"] * 8]
    assert "levels deep" in response.json()["errors"][0]["msg"]


async def test_large_filters_are_refused(world: World) -> None:
    response = await world.preview({"or": [cond("city", "eq", str(i)) for i in range(250)]})
    assert response.status_code == 422
    assert "at most 200 nodes" in response.json()["errors"][0]["msg"]
    response = await world.preview(cond("city", "in", [str(i) for i in range(1001)]))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "filter", "value"]


async def test_values_are_bound_not_spliced(world: World, now: datetime) -> None:
    hostile = "浙江省' OR '1'='1"
    assert await world.matching(cond("province", "eq", hostile)) == set()
    assert (
        await world.matching(cond("tags", "contains", "vip'); DROP TABLE customers; --")) == set()
    )
    assert await world.matching(cond("order_count", "gte", 0)) == {"A", "B", "C", "D"}


async def test_customers_no_import_touched_yet_count_as_prospects_with_nothing_spent(
    tenants: TenantFactory, now: datetime
) -> None:
    tenant = await tenants.create()
    fresh = await tenant.customer(display_name="新来的")

    async def ids(tree: Any) -> list[str]:
        response = await tenant.request("POST", "/api/v1/segments/preview", json={"filter": tree})
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids(cond("order_count", "eq", 0)) == [fresh["id"]]
    assert await ids(cond("total_spent_fen", "lt", 1)) == [fresh["id"]]
    assert await ids(cond("total_spent_fen", "between", [0, 10])) == [fresh["id"]]
    assert await ids(cond("order_count", "not_in", [1, 2])) == [fresh["id"]]
    assert await ids(cond("lifecycle_stage", "eq", "prospect")) == [fresh["id"]]
    assert await ids(cond("lifecycle_stage", "in", ["prospect", "new"])) == [fresh["id"]]
    assert await ids(cond("order_count", "ne", 0)) == []
    assert await ids(cond("order_count", "gte", 1)) == []
    assert await ids(cond("order_count", "in", [1])) == []
    assert await ids(cond("lifecycle_stage", "ne", "prospect")) == []
    assert await ids(cond("order_count", "is_null", True)) == []
    assert await ids({"not": cond("order_count", "gt", 0)}) == [fresh["id"]]


async def test_loyalty_tier_and_open_complaints(
    tenants: TenantFactory, runtime: Runtime, now: datetime
) -> None:
    tenant = await tenants.create()
    gold = await tenant.customer(display_name="金卡")
    unhappy = await tenant.customer(display_name="投诉")
    calm = await tenant.customer(display_name="平静")
    async with runtime.sessions() as session:
        await session.execute(
            text(
                "INSERT INTO loyalty_accounts (tenant_id, customer_id, balance, lifetime_points, "
                "tier) VALUES (:t, :c, 0, 0, 'gold')"
            ),
            {"t": tenant.tenant_id, "c": gold["id"]},
        )
        await session.commit()
    for subject in ("快递太慢", "包装破损"):
        ticket = await tenant.request(
            "POST",
            "/api/v1/tickets",
            json={
                "customer_id": unhappy["id"],
                "kind": "complaint",
                "channel": "tmall_chat",
                "subject": subject,
            },
        )
        assert ticket.status_code == 201, ticket.text

    async def names(tree: Any) -> set[str]:
        response = await tenant.request("POST", "/api/v1/segments/preview", json={"filter": tree})
        assert response.status_code == 200, response.text
        return {item["display_name"] for item in response.json()["items"]}

    assert await names(cond("loyalty_tier", "eq", "gold")) == {"金卡"}
    assert await names(cond("loyalty_tier", "is_null", True)) == {"投诉", "平静"}
    assert await names(cond("open_complaints", "gte", 2)) == {"投诉"}
    assert await names(cond("open_complaints", "eq", 0)) == {"金卡", "平静"}
    assert calm["display_name"] == "平静"
