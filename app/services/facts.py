"""Customer facts derived from orders: recomputed set-based for the customers an import touched.

A buying order is one that was paid (it has a payment time and is not awaiting payment); spend is
what the buyer paid less what was refunded. Products, platforms, shops and the tenant's categories
(`product_category_rules`: a merchant-code prefix or a title keyword names a category) come from
buying orders only. Facts are a pure function of the orders table and the category rules, so a
refresh can run any number of times and always gives the same rows. RFM and lifecycle columns are
not touched here: they depend on the whole tenant and are written by the segment recompute.

The same rule is written a second time in polars (`new_customer_facts`) for customers an import
creates: all their orders are in the import's frames, so their facts and months are computed
there and COPYed instead of aggregated back out of the tables (a quarter of a first import's time
at 200,000 orders). tests/imports/test_new_customer_facts.py holds the two to the same rows: a
refresh after such an import rewrites nothing. Text arrays are sorted in the "C" collation in
both (byte order, as polars sorts), whatever the database's collation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.rollups import lock_rollups

_BUYING = "o.paid_at IS NOT NULL AND o.status <> 'pending_payment'"
_REFUND_STATUSES = ("refunding", "refunded", "partially_refunded")
_REFUNDED = f"(o.refund_fen > 0 OR o.status IN ({', '.join(map(repr, _REFUND_STATUSES))}))"

_REFRESH = text(
    f"""
    WITH touched AS (
        SELECT DISTINCT unnest(CAST(:customer_ids AS uuid[])) AS customer_id
    ), agg AS (
        SELECT t.customer_id,
               count(o.id) FILTER (WHERE {_BUYING}) AS order_count,
               coalesce(sum(o.paid_fen - o.refund_fen) FILTER (WHERE {_BUYING}), 0) AS spent,
               count(o.id) FILTER (WHERE {_REFUNDED}) AS refund_count,
               count(o.id) FILTER (WHERE {_BUYING} AND {_REFUNDED}) AS buying_refunded,
               coalesce(sum(o.refund_fen), 0) AS refund_fen,
               min(o.paid_at) FILTER (WHERE {_BUYING}) AS first_order_at,
               max(o.paid_at) FILTER (WHERE {_BUYING}) AS last_order_at,
               (array_agg(o.paid_at ORDER BY o.paid_at DESC) FILTER (WHERE {_BUYING}))[2]
                   AS previous_order_at,
               coalesce(array_agg(DISTINCT o.platform COLLATE "C") FILTER (WHERE {_BUYING}),
                        '{{}}') AS platforms,
               coalesce(array_agg(DISTINCT o.shop_id) FILTER (WHERE {_BUYING}), '{{}}')
                   AS shop_ids
        FROM touched t
        LEFT JOIN orders o ON o.tenant_id = :tenant_id AND o.customer_id = t.customer_id
        GROUP BY t.customer_id
    ), products AS (
        SELECT o.customer_id,
               array_agg(DISTINCT i.merchant_code COLLATE "C")
                   FILTER (WHERE i.merchant_code IS NOT NULL) AS merchant_codes,
               array_agg(DISTINCT i.title COLLATE "C") FILTER (WHERE i.title IS NOT NULL) AS titles,
               array_agg(DISTINCT r.category COLLATE "C") FILTER (WHERE r.category IS NOT NULL)
                   AS categories
        FROM touched t
        JOIN orders o ON o.tenant_id = :tenant_id AND o.customer_id = t.customer_id
                     AND {_BUYING}
        JOIN order_items i ON i.tenant_id = o.tenant_id AND i.order_id = o.id
        LEFT JOIN product_category_rules r ON r.tenant_id = :tenant_id AND (
            (r.match = 'code_prefix' AND starts_with(i.merchant_code, r.pattern))
            OR (r.match = 'title_keyword' AND strpos(i.title, r.pattern) > 0))
        GROUP BY o.customer_id
    )
    INSERT INTO customer_facts AS f (
        tenant_id, customer_id, order_count, total_spent_fen, avg_order_value_fen,
        refund_count, refund_fen, refund_rate, first_order_at, last_order_at, previous_order_at,
        platforms, shop_ids, merchant_codes, product_titles, categories, updated_at)
    SELECT :tenant_id, a.customer_id, a.order_count, a.spent,
           CASE WHEN a.order_count > 0
                THEN round(a.spent::numeric / a.order_count)::bigint ELSE 0 END,
           a.refund_count, a.refund_fen,
           CASE WHEN a.order_count > 0
                THEN a.buying_refunded::double precision / a.order_count ELSE 0 END,
           a.first_order_at, a.last_order_at, a.previous_order_at,
           a.platforms, a.shop_ids,
           coalesce(p.merchant_codes, '{{}}'), coalesce(p.titles, '{{}}'),
           coalesce(p.categories, '{{}}'), now()
    FROM agg a
    JOIN customers c ON c.tenant_id = :tenant_id AND c.id = a.customer_id
    LEFT JOIN products p ON p.customer_id = a.customer_id
    ON CONFLICT (tenant_id, customer_id) DO UPDATE SET
        order_count = excluded.order_count,
        total_spent_fen = excluded.total_spent_fen,
        avg_order_value_fen = excluded.avg_order_value_fen,
        refund_count = excluded.refund_count,
        refund_fen = excluded.refund_fen,
        refund_rate = excluded.refund_rate,
        first_order_at = excluded.first_order_at,
        last_order_at = excluded.last_order_at,
        previous_order_at = excluded.previous_order_at,
        platforms = excluded.platforms,
        shop_ids = excluded.shop_ids,
        merchant_codes = excluded.merchant_codes,
        product_titles = excluded.product_titles,
        categories = excluded.categories,
        updated_at = excluded.updated_at
    WHERE (f.order_count, f.total_spent_fen, f.refund_count, f.refund_fen, f.refund_rate,
           f.first_order_at, f.last_order_at, f.previous_order_at, f.platforms, f.shop_ids,
           f.merchant_codes, f.product_titles, f.categories)
          IS DISTINCT FROM
          (excluded.order_count, excluded.total_spent_fen, excluded.refund_count,
           excluded.refund_fen, excluded.refund_rate, excluded.first_order_at,
           excluded.last_order_at, excluded.previous_order_at, excluded.platforms,
           excluded.shop_ids, excluded.merchant_codes, excluded.product_titles,
           excluded.categories)
    """
)

# The customers' months (app/models/analytics.py), from the same orders, each carrying the
# customer's first buying payment (the facts' first_order_at, from the same rows): rows of
# months with no buying order left are deleted, changed ones rewritten, unchanged ones left
# alone. Customers are looked up by key first (a join after the aggregate made the planner
# read all of them).
_MONTHS = text(
    f"""
    WITH touched AS (
        SELECT c.id AS customer_id
        FROM (SELECT DISTINCT unnest(CAST(:customer_ids AS uuid[])) AS id) u
        JOIN customers c ON c.tenant_id = :tenant_id AND c.id = u.id
    ), fresh AS (
        SELECT o.customer_id,
               date_trunc('month', o.paid_at AT TIME ZONE 'Asia/Shanghai')::date AS month,
               count(*) AS orders, sum(o.paid_fen - o.refund_fen)::bigint AS revenue_fen,
               min(min(o.paid_at)) OVER (PARTITION BY o.customer_id) AS first_paid_at
        FROM touched t
        JOIN orders o ON o.tenant_id = :tenant_id AND o.customer_id = t.customer_id
                     AND {_BUYING}
        GROUP BY 1, 2
    ), gone AS (
        DELETE FROM customer_months m USING touched t
        WHERE m.tenant_id = :tenant_id AND m.customer_id = t.customer_id
          AND NOT EXISTS (SELECT FROM fresh f
                          WHERE f.customer_id = m.customer_id AND f.month = m.month)
    )
    INSERT INTO customer_months AS m (tenant_id, customer_id, month, orders, revenue_fen,
                                      first_paid_at)
    SELECT :tenant_id, f.customer_id, f.month, f.orders, f.revenue_fen, f.first_paid_at
    FROM fresh f
    ORDER BY f.customer_id, f.month
    ON CONFLICT (tenant_id, customer_id, month) DO UPDATE SET
        orders = excluded.orders, revenue_fen = excluded.revenue_fen,
        first_paid_at = excluded.first_paid_at
    WHERE (m.orders, m.revenue_fen, m.first_paid_at)
          IS DISTINCT FROM (excluded.orders, excluded.revenue_fen, excluded.first_paid_at)
    """
)

_ALL_CUSTOMERS = text("SELECT array_agg(id) FROM customers WHERE tenant_id = :tenant_id")
# Big refreshes sort and hash many rows; a larger budget for this transaction only keeps them
# in memory (see the performance notes: 2.0 s -> 0.8 s for a 1M-order aggregation).
_WORK_MEM = text("SET LOCAL work_mem = '256MB'")
_LARGE = 10_000
_ORDERS_CHANGED = text("INSERT INTO customer_changes (tenant_id) VALUES (:tenant_id)")


async def refresh_customer_facts(
    session: AsyncSession, tenant_id: uuid.UUID, customer_ids: Sequence[uuid.UUID] | None = None
) -> None:
    """Recompute the facts and months of `customer_ids` (every customer of the tenant when
    None)."""
    if customer_ids is None:
        customer_ids = (await session.scalar(_ALL_CUSTOMERS, {"tenant_id": tenant_id})) or []
    if not customer_ids:
        return
    if len(customer_ids) >= _LARGE:
        await session.execute(_WORK_MEM)
    ids = list(dict.fromkeys(customer_ids))
    await lock_rollups(session, tenant_id, len(ids))
    params = {"tenant_id": tenant_id, "customer_ids": ids}
    await session.execute(_REFRESH, params)
    await session.execute(_MONTHS, params)
    # Every write to orders refreshes its customers' facts in its transaction; the orders may
    # have changed where the facts did not (which shop, which item lines), so the in-memory
    # frames that hold orders count this as a change (app/services/segments/member_frames.py).
    await session.execute(_ORDERS_CHANGED, {"tenant_id": tenant_id})


# --- the same rule over an import's frames, for the customers it creates -----------------------


@dataclass(frozen=True)
class CategoryRule:
    match: str  # code_prefix | title_keyword
    pattern: str
    category: str


_RULES = text(
    "SELECT match, pattern, category FROM product_category_rules WHERE tenant_id = :tenant_id"
)


async def category_rules(session: AsyncSession, tenant_id: uuid.UUID) -> list[CategoryRule]:
    rows = await session.execute(_RULES, {"tenant_id": tenant_id})
    return [CategoryRule(r.match, r.pattern, r.category) for r in rows]


def order_fact_columns() -> list[pl.Expr]:
    """What the facts need of each order, from a frame with status, paid_at, paid_fen and
    refund_fen (ORDER_SCHEMA's names): `_BUYING` and `_REFUNDED` as columns."""
    return [
        (pl.col("paid_at").is_not_null() & (pl.col("status") != "pending_payment")).alias("buying"),
        ((pl.col("refund_fen") > 0) | pl.col("status").is_in(_REFUND_STATUSES)).alias("refunded"),
        (pl.col("paid_fen") - pl.col("refund_fen")).alias("net_fen"),
        pl.col("paid_at"),
        pl.col("refund_fen"),
    ]


def _array(values: pl.Expr) -> pl.Expr:
    """A group's distinct non-null values in byte order, as PostgreSQL array input for COPY
    (every element quoted and escaped): what `array_agg(DISTINCT x COLLATE "C")` stores. Built
    as text in the aggregation, so the values never exist as lists too."""
    quoted = pl.concat_str(
        pl.lit('"'),
        values.drop_nulls().unique().sort()
        .str.replace_all("\\", "\\\\", literal=True)
        .str.replace_all('"', '\\"', literal=True),
        pl.lit('"'),
    )  # fmt: skip
    return pl.concat_str(pl.lit("{"), quoted.str.join(","), pl.lit("}"))


def _literal(values: list[str]) -> str:
    """`_array` of constants."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


def _categories(items: pl.DataFrame, rules: Sequence[CategoryRule]) -> pl.DataFrame:
    """(customer_id, category) for each rule an item line of a buying order matches."""
    pairs = [pl.DataFrame(schema={"customer_id": pl.String(), "category": pl.String()})]
    for rule in rules:
        if rule.match == "code_prefix":
            hit = pl.col("merchant_code").str.starts_with(rule.pattern)
        else:
            hit = pl.col("title").str.contains(rule.pattern, literal=True)
        pairs.append(
            items.filter(hit).select("customer_id", pl.lit(rule.category).alias("category"))
        )
    return pl.concat(pairs).unique()


# Orders aggregated per part, the parts split by customer: 1,000,000 orders in one go, the
# aggregation's temporaries (each item line with its customer, per-customer distinct titles)
# added 0.4 GB to the import's peak memory.
_PART_ORDERS = 250_000


def new_customer_facts(
    orders: pl.DataFrame,
    items: pl.DataFrame,
    rules: Sequence[CategoryRule],
    platform: str,
    shop_id: uuid.UUID,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Facts and months rows (customer_facts and customer_months columns but tenant_id and
    updated_at) of customers whose every order is in `orders` (customer_id, order_no and
    `order_fact_columns`), all of one shop; `items` has the order_no, merchant_code and title
    of their item lines. Array columns come as PostgreSQL array input (`_array`), ready to COPY.
    Aggregated in parts of about `_PART_ORDERS` orders, split by customer."""
    shop = {"platforms": _literal([str(platform)]), "shop_ids": _literal([str(shop_id)])}
    parts = max(1, -(-orders.height // _PART_ORDERS))
    if parts == 1:
        return _part_facts(orders, items, rules, shop)
    part = pl.col("customer_id").hash() % parts
    results = [_part_facts(orders.filter(part == n), items, rules, shop) for n in range(parts)]
    return pl.concat(f for f, _ in results), pl.concat(m for _, m in results)


def _part_facts(
    orders: pl.DataFrame,
    items: pl.DataFrame,
    rules: Sequence[CategoryRule],
    shop: dict[str, str],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`new_customer_facts` of one part; `shop`: the platforms and shop_ids of a buyer."""
    buying = pl.col("buying")
    agg = orders.group_by("customer_id").agg(
        pl.col("buying").sum().cast(pl.Int64).alias("order_count"),
        pl.col("net_fen").filter(buying).sum().alias("total_spent_fen"),
        pl.col("refunded").sum().cast(pl.Int64).alias("refund_count"),
        (buying & pl.col("refunded")).sum().cast(pl.Int64).alias("buying_refunded"),
        pl.col("refund_fen").sum().alias("refund_fen"),
        pl.col("paid_at").filter(buying).min().alias("first_order_at"),
        pl.col("paid_at").filter(buying).max().alias("last_order_at"),
        pl.col("paid_at").filter(buying).sort(descending=True).slice(1, 1).first()
        .alias("previous_order_at"),
    )  # fmt: skip
    lines = items.select("order_no", "merchant_code", "title").join(
        orders.filter(buying).select("order_no", "customer_id"), on="order_no", how="inner"
    )
    products = lines.group_by("customer_id").agg(
        _array(pl.col("merchant_code")).alias("merchant_codes"),
        _array(pl.col("title")).alias("product_titles"),
    )
    categories = (
        _categories(lines, rules)
        .group_by("customer_id")
        .agg(_array(pl.col("category")).alias("categories"))
    )
    spent, count = pl.col("total_spent_fen"), pl.col("order_count")
    # round(spent / count) half away from zero, as numeric round() does, in integers.
    average = (spent.abs() * 2 + count) // (count * 2) * spent.sign()
    empty = pl.lit("{}")
    bought = count > 0
    facts = (
        agg.join(products, on="customer_id", how="left")
        .join(categories, on="customer_id", how="left")
        .select(
            "customer_id",
            "order_count",
            "total_spent_fen",
            pl.when(bought).then(average).otherwise(0).alias("avg_order_value_fen"),
            "refund_count",
            "refund_fen",
            pl.when(bought)
            .then(pl.col("buying_refunded") / count)
            .otherwise(0.0)
            .alias("refund_rate"),
            "first_order_at",
            "last_order_at",
            "previous_order_at",
            *(pl.when(bought).then(pl.lit(v)).otherwise(empty).alias(c) for c, v in shop.items()),
            *(
                pl.col(c).fill_null(empty)
                for c in ("merchant_codes", "product_titles", "categories")
            ),
        )
    )
    months = (
        orders.filter(buying)
        .with_columns(
            pl.col("paid_at")
            .dt.convert_time_zone("Asia/Shanghai")
            .dt.date()
            .dt.month_start()
            .alias("month")
        )
        .group_by("customer_id", "month")
        .agg(
            pl.len().cast(pl.Int64).alias("orders"),
            pl.col("net_fen").sum().alias("revenue_fen"),
            pl.col("paid_at").min().alias("first_paid_at"),
        )
        .with_columns(pl.col("first_paid_at").min().over("customer_id"))
        .sort("customer_id", "month")
    )
    return facts, months
