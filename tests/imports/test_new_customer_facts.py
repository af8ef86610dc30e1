"""The facts and months of customers an import creates are computed from its frames in polars
(app/services/facts.py, `new_customer_facts`); customers it matches are refreshed in SQL. Both
must give the same rows: after any import, a full SQL refresh of the tenant rewrites nothing."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from app.runtime import Runtime
from app.services import facts
from app.services.facts import refresh_customer_facts
from tests.factories import TenantCtx, TenantFactory

SHANGHAI = timezone(timedelta(hours=8))
STATUSES = [
    "pending_payment", "paid", "shipped", "completed", "closed", "refunding", "refunded",
    "partially_refunded",
]  # fmt: skip
# Byte order and the database's collation disagree on several of these; some need quoting or
# escaping in an array literal.
TITLES = [
    None, "茶叶", "安吉白茶", "茶杯", "Apple", "apple", "_under", "a \"quoted\" title",
    "back\\slash", "comma, and {brace}", "NULL", " lead space", "ÄÖ",
]  # fmt: skip
CODES = [None, "TEA-1", "tea-2", "TEA-10", "CUP", 'Z"1', "a,b"]
RULES = [
    {"category": "茶", "match": "code_prefix", "pattern": "TEA"},
    {"category": "Tea", "match": "code_prefix", "pattern": "tea"},
    {"category": "茶", "match": "title_keyword", "pattern": "茶"},
    {"category": "Quote\"d", "match": "title_keyword", "pattern": '"'},
    {"category": "apple", "match": "title_keyword", "pattern": "apple"},
]  # fmt: skip

# Payments near month ends in Shanghai, where the UTC month is still the previous one.
_times = st.builds(
    lambda day, minutes: (
        datetime(2024, 1, 31, 20, 0, tzinfo=SHANGHAI) + timedelta(days=day, minutes=minutes)
    ),
    st.sampled_from([0, 1, 29, 30, 60, 366]),
    st.integers(0, 8 * 60),
)
_items = st.lists(
    st.fixed_dictionaries(
        {
            "title": st.sampled_from(TITLES),
            "merchant_code": st.sampled_from(CODES),
            "paid_fen": st.integers(0, 10_000),
        }
    ),
    max_size=3,
)
_orders = st.lists(
    st.fixed_dictionaries(
        {
            "status": st.sampled_from(STATUSES),
            "buyer_key": st.sampled_from([None, "k1", "k2", "k3", "王**"]),
            "receiver_phone": st.sampled_from([None, "13800000001", "13800000002"]),
            "city": st.sampled_from(["杭州市", "广州市"]),
            "paid_fen": st.integers(0, 100_000),
            "refund_fen": st.one_of(st.just(0), st.integers(0, 100_000)),
            "ordered_at": _times,
            "paid": st.booleans(),
            "items": _items,
        }
    ),
    min_size=1,
    max_size=12,
)


def _batch(orders: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    batch = []
    for n, order in enumerate(orders):
        body = {k: v for k, v in order.items() if k != "paid"}
        body["order_no"] = f"{prefix}-{n}"
        body["ordered_at"] = order["ordered_at"].isoformat()
        body["paid_at"] = (order["ordered_at"] + timedelta(minutes=5)).isoformat()
        if not order["paid"]:
            body["paid_at"] = None
        batch.append(body)
    return batch


_ROWS = """
SELECT coalesce(jsonb_agg(to_jsonb(f) ORDER BY f.customer_id), '[]')
       || coalesce((SELECT jsonb_agg(to_jsonb(m) ORDER BY m.customer_id, m.month)
                    FROM customer_months m WHERE m.tenant_id = :t), '[]')
FROM customer_facts f WHERE f.tenant_id = :t
"""


async def _rows(runtime: Runtime, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    async with runtime.sessions() as session:
        rows: list[dict[str, Any]] = await session.scalar(text(_ROWS), {"t": tenant_id})
    return rows


async def _load(tenant: TenantCtx, shop: dict[str, Any], orders: list[dict[str, Any]]) -> Any:
    response = await tenant.request(
        "POST", "/api/v1/orders/batch", json={"shop_id": shop["id"], "orders": orders}
    )
    assert response.status_code == 200, response.text
    return response.json()["counts"]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=_orders, second=_orders)
async def test_created_customers_facts_equal_a_sql_refresh(
    first: list[dict[str, Any]],
    second: list[dict[str, Any]],
    tenants: TenantFactory,
    runtime: Runtime,
) -> None:
    tenant = await tenants.create()
    for rule in RULES:
        response = await tenant.request("POST", "/api/v1/segments/category-rules", json=rule)
        assert response.status_code == 201, response.text
    # Each batch goes into a shop without orders (the COPY path); the second one's buyers
    # partly match customers of the first (same key on the same platform, or a phone).
    for prefix, orders in (("A", first), ("B", second)):
        shop = await tenant.shop("offline")
        counts = await _load(tenant, shop, _batch(orders, prefix))
        stored = await _rows(runtime, tenant.tenant_id)
        async with runtime.sessions() as session:
            await refresh_customer_facts(session, tenant.tenant_id)
            await session.commit()
        # Same values, and not even rewritten (updated_at is the refresh's own time otherwise).
        assert await _rows(runtime, tenant.tenant_id) == stored
        # Every customer has its facts row: the created ones got theirs from the import.
        async with runtime.sessions() as session:
            customers = await session.scalar(
                text("SELECT count(*) FROM customers WHERE tenant_id = :t"),
                {"t": tenant.tenant_id},
            )
        assert sum("order_count" in r for r in stored) == customers
        assert counts["customers_created"] <= customers


async def test_created_customers_get_facts_from_the_import(
    tenants: TenantFactory, runtime: Runtime
) -> None:
    """A worked example: two buyers, refunds, a pending order, categories, months in Shanghai."""
    tenant = await tenants.create()
    for rule in RULES:
        assert (
            await tenant.request("POST", "/api/v1/segments/category-rules", json=rule)
        ).status_code == 201
    shop = await tenant.shop("offline")

    def order(n: int, at: str, paid_fen: int, **fields: Any) -> dict[str, Any]:
        return {
            "order_no": f"W-{n}",
            "status": "completed",
            "buyer_key": "alice",
            "ordered_at": at,
            "paid_at": at,
            "paid_fen": paid_fen,
            **fields,
        }

    counts = await _load(
        tenant,
        shop,
        [
            order(1, "2024-03-31T23:30:00+08:00", 1000,
                  items=[{"title": "安吉白茶", "merchant_code": "TEA-1"},
                         {"title": "Apple", "merchant_code": "CUP"}]),
            order(2, "2024-04-02T10:00:00+08:00", 2001, refund_fen=500,
                  status="partially_refunded", items=[{"title": "apple cup"}]),
            order(3, "2024-05-01T00:30:00+08:00", 3000),
            order(4, "2024-05-01T10:00:00+08:00", 9999, status="pending_payment",
                  paid_at=None, items=[{"title": "茶杯", "merchant_code": "TEA-2"}]),
            order(5, "2024-04-05T10:00:00+08:00", 700, buyer_key="bob", status="refunded",
                  refund_fen=700),
        ],
    )  # fmt: skip
    assert (counts["customers_created"], counts["customers_matched"]) == (2, 0)
    rows = await _rows(runtime, tenant.tenant_id)
    facts = sorted((r for r in rows if "order_count" in r), key=lambda r: r["order_count"])
    months = [r for r in rows if "month" in r]
    bob, alice = facts
    assert alice["order_count"] == 3
    assert alice["total_spent_fen"] == 1000 + 1501 + 3000
    assert alice["avg_order_value_fen"] == 1834  # 5501 / 3 = 1833.67
    assert (alice["refund_count"], alice["refund_fen"]) == (1, 500)
    assert alice["refund_rate"] == 1 / 3
    first_at = datetime(2024, 3, 31, 15, 30, tzinfo=UTC)
    assert datetime.fromisoformat(alice["first_order_at"]) == first_at
    assert datetime.fromisoformat(alice["previous_order_at"]) == datetime(
        2024, 4, 2, 2, 0, tzinfo=UTC
    )
    assert datetime.fromisoformat(alice["last_order_at"]) == datetime(
        2024, 4, 30, 16, 30, tzinfo=UTC
    )
    assert alice["platforms"] == ["offline"]
    assert alice["shop_ids"] == [shop["id"]]
    assert alice["merchant_codes"] == ["CUP", "TEA-1"]  # not the pending order's TEA-2
    assert alice["product_titles"] == ["Apple", "apple cup", "安吉白茶"]
    assert alice["categories"] == ["apple", "茶"]
    assert (bob["order_count"], bob["total_spent_fen"], bob["refund_rate"]) == (1, 0, 1.0)
    by_customer = {
        who["customer_id"]: [
            (m["month"], m["orders"], m["revenue_fen"], datetime.fromisoformat(m["first_paid_at"]))
            for m in months
            if m["customer_id"] == who["customer_id"]
        ]
        for who in (alice, bob)
    }
    # 00:30 on 1 May in Shanghai is still 30 April in UTC: the month is Shanghai's.
    assert by_customer[alice["customer_id"]] == [
        ("2024-03-01", 1, 1000, first_at),
        ("2024-04-01", 1, 1501, first_at),
        ("2024-05-01", 1, 3000, first_at),
    ]
    assert by_customer[bob["customer_id"]] == [
        ("2024-04-01", 1, 0, datetime(2024, 4, 5, 2, 0, tzinfo=UTC))
    ]


def test_facts_in_parts_equal_facts_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A big import's customers are aggregated in parts (memory); the rows are the same."""
    rng = random.Random(7)
    n = 3000
    orders = pl.DataFrame(
        {
            "order_no": [f"O{i}" for i in range(n)],
            "customer_id": [str(uuid.UUID(int=rng.randrange(400))) for _ in range(n)],
            "status": [rng.choice(STATUSES) for _ in range(n)],
            "paid_at": [
                datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=rng.randrange(9000))
                if rng.random() < 0.9
                else None
                for _ in range(n)
            ],
            "paid_fen": [rng.randrange(10_000) for _ in range(n)],
            "refund_fen": [rng.choice([0, 0, 100]) for _ in range(n)],
        },
        schema_overrides={"paid_at": pl.Datetime("us", "UTC")},
    ).select("order_no", "customer_id", *facts.order_fact_columns())
    items = pl.DataFrame(
        {
            "order_no": [f"O{rng.randrange(n)}" for _ in range(5000)],
            "merchant_code": [rng.choice(CODES) for _ in range(5000)],
            "title": [rng.choice(TITLES) for _ in range(5000)],
        }
    )
    rules = [facts.CategoryRule(r["match"], r["pattern"], r["category"]) for r in RULES]
    shop = uuid.uuid4()
    whole = facts.new_customer_facts(orders, items, rules, "tmall", shop)
    monkeypatch.setattr(facts, "_PART_ORDERS", 700)
    parts = facts.new_customer_facts(orders, items, rules, "tmall", shop)
    assert whole[0].height == 400
    for once, split in zip(whole, parts, strict=True):
        keys = once.columns[:2]
        assert once.sort(keys).equals(split.sort(keys))
