"""A tenant's customers and buying orders as columns in the API process, for segment previews
and member pages.

At a million customers the exact count of a filter over customers, facts and scores takes
PostgreSQL 0.3-1 s (a join of a million rows), one over five million orders seconds; the same
filter over polars frames of those columns takes milliseconds. A frame is loaded in one
REPEATABLE READ snapshot together with the tenant's change count (`customer_changes`, migration
0015) and answers only while the count is unchanged, so it gives exactly what the SQL would. A
missing or stale frame answers nothing: the SQL does, while the frame is reloaded in the
background. Tenants below `min_customers` stay in SQL (fast enough there); frames are evicted,
least recently used first, beyond `max_customers` customers in all. The page's members
themselves are always read from the database.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import polars as pl
from sqlalchemy import and_, any_, literal, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import driver_of
from app.schemas.segments import MemberSort as SortKey
from app.services.segments import query
from app.services.segments.compiler import compile_filter
from app.services.segments.fields import QueryContext, c
from app.services.segments.frame_filter import Frame, frame_filter, frame_narrowing
from app.services.segments.query import NEVER, page_position

log = logging.getLogger(__name__)

RETRY_SECONDS = 60
"""After a failed load, how long previews stay in SQL before the next attempt."""
MAX_CANDIDATES = 20_000
"""Most customers a partly held filter may leave for the SQL to check (as an id array)."""
_UUIDS = ARRAY(PgUUID(as_uuid=True))
_SIGN = 2**63
_LOW = 2**64 - 1


def _epoch_us(column: str) -> str:
    return f"(extract(epoch FROM {column}) * 1000000)::bigint"


def _json(column: str) -> str:
    return f"array_to_json({column})"


# Each frame column: its SQL over customers c, facts f and scores s, and how it is read. A
# field with a default (facts, stage) is read with it, as the SQL compares it where it matters.
_INT, _TIME, _TEXT, _LIST = pl.Int64(), pl.Datetime("us", "UTC"), pl.String(), pl.List(pl.String)
_HALVES = (
    "('x' || left(h, 16))::bit(64)::bigint # (-9223372036854775807 - 1) AS id_hi, "
    "('x' || right(h, 16))::bit(64)::bigint # (-9223372036854775807 - 1) AS id_lo"
)
_COLUMNS: list[tuple[str, str, pl.DataType]] = [
    ("display_name", "c.display_name", _TEXT),
    ("gender", "c.gender::text", _TEXT),
    ("birthday", "c.birthday - DATE '1970-01-01'", pl.Date()),
    ("province", "c.province", _TEXT),
    ("city", "c.city", _TEXT),
    ("district", "c.district", _TEXT),
    ("created_at", _epoch_us("c.created_at"), _TIME),
    ("tags", _json("c.tags"), _LIST),
    ("order_count", "coalesce(f.order_count, 0)", _INT),
    ("total_spent_fen", "coalesce(f.total_spent_fen, 0)", _INT),
    ("avg_order_value_fen", "coalesce(f.avg_order_value_fen, 0)", _INT),
    ("refund_count", "coalesce(f.refund_count, 0)", _INT),
    ("refund_fen", "coalesce(f.refund_fen, 0)", _INT),
    ("refund_rate", "coalesce(f.refund_rate, 0)", pl.Float64()),
    ("first_order_at", _epoch_us("f.first_order_at"), _TIME),
    ("last_order_at", _epoch_us("f.last_order_at"), _TIME),
    ("platforms", _json("f.platforms::text[]"), _LIST),
    ("shops", _json("f.shop_ids"), _LIST),
    ("categories", _json("f.categories"), _LIST),
    ("rfm_r", "s.rfm_r", _INT),
    ("rfm_f", "s.rfm_f", _INT),
    ("rfm_m", "s.rfm_m", _INT),
    ("rfm_group", "s.rfm_group", _TEXT),
    ("lifecycle_stage", "coalesce(s.lifecycle_stage, 'prospect')", _TEXT),
    ("lifecycle_since", _epoch_us("s.lifecycle_since"), _TIME),
]
_LOAD = f"""
SELECT {_HALVES}, {", ".join(f"{sql} AS {name}" for name, sql, _ in _COLUMNS)}
FROM (SELECT c.*, replace(c.id::text, '-', '') AS h FROM customers c
      WHERE c.tenant_id = $1 AND c.merged_into_id IS NULL) c
LEFT JOIN customer_facts f ON f.tenant_id = c.tenant_id AND f.customer_id = c.id
LEFT JOIN customer_scores s ON s.tenant_id = c.tenant_id AND s.customer_id = c.id
ORDER BY c.id
"""
_RULES = (
    "SELECT category, match, pattern FROM product_category_rules WHERE tenant_id = $1 "
    "ORDER BY category, id"
)
_CATEGORY_BITS = _MASK_BITS = 63
_MASK_TYPES: list[tuple[int, pl.DataType]] = [
    (8, pl.UInt8()),
    (16, pl.UInt16()),
    (32, pl.UInt32()),
    (63, pl.Int64()),
]


def _rule_test(match: str, parameter: int) -> str:
    """An item line matching a category rule, as compiler.py's `_in_category` tests it."""
    if match == "code_prefix":
        return f"starts_with(i.merchant_code, ${parameter})"
    return f"strpos(i.title, ${parameter}) > 0"


def _orders_query(rules: list[tuple[str, str, str]], bits: dict[str, int]) -> str:
    """Buying orders of live customers (the `ordered` condition's), each with the bit mask of
    the categories its item lines fall in; rule patterns are parameters $2, $3, ..."""
    tests = [
        f"CASE WHEN {_rule_test(match, n)} THEN {1 << bits[category]}::bigint ELSE 0 END"
        for n, (category, match, _) in enumerate(rules, 2)
    ]
    masks = (
        f"LEFT JOIN (SELECT i.order_id, bit_or({' | '.join(tests)}) AS mask FROM order_items i "
        "WHERE i.tenant_id = $1 GROUP BY i.order_id) m ON m.order_id = o.id"
        if tests
        else ""
    )
    return f"""
SELECT {_HALVES}, {_epoch_us("o.paid_at")} AS paid_at, o.paid_fen, o.platform::text AS platform,
       o.shop_id::text AS shop_id, {"coalesce(m.mask, 0)" if tests else "0"} AS categories
FROM (SELECT o.*, replace(o.customer_id::text, '-', '') AS h FROM orders o
      WHERE o.tenant_id = $1 AND o.customer_id IS NOT NULL AND o.paid_at IS NOT NULL
        AND o.status <> 'pending_payment') o
{masks}
"""


_ORDER_SCHEMA = {
    "id_hi": pl.Int64(),
    "id_lo": pl.Int64(),
    "paid_at": pl.Int64(),
    "paid_fen": pl.Int64(),
    "platform": pl.Categorical(),
    "shop_id": pl.Categorical(),
    "categories": pl.Int64(),
}
_CHANGES = "SELECT coalesce(sum(statements), 0) FROM customer_changes WHERE tenant_id = $1"
_SIZE = "SELECT coalesce(sum(customers), 0) FROM customer_rollups WHERE tenant_id = $1"

# What members are ordered by (then by id), as in query.py: no orders sorts as 0 / 1970.
_SORT_KEYS: dict[SortKey, pl.Expr] = {
    SortKey.total_spent_fen: pl.col("total_spent_fen"),
    SortKey.order_count: pl.col("order_count"),
    SortKey.avg_order_value_fen: pl.col("avg_order_value_fen"),
    SortKey.last_order_at: pl.col("last_order_at").fill_null(NEVER.astimezone(UTC)),
    SortKey.first_order_at: pl.col("first_order_at").fill_null(NEVER.astimezone(UTC)),
}


def _read(customers: Path, orders: Path, categories: dict[str, int] | None) -> Frame:
    raw = pl.read_csv(
        customers,
        schema={"id_hi": _INT, "id_lo": _INT}
        | {
            name: pl.Int32() if dtype == pl.Date() else _TEXT if dtype in (_LIST, _TIME) else dtype
            for name, _, dtype in _COLUMNS
        },
    )
    people = raw.with_columns(
        pl.col(name).str.json_decode(_LIST)
        if dtype == _LIST
        else pl.col(name).str.to_integer().cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        if dtype == _TIME
        else pl.col(name).cast(pl.Date())
        for name, _, dtype in _COLUMNS
        if dtype in (_LIST, _TIME, pl.Date())
    )
    people, masks = _as_masks(people)
    rows = people.select("id_hi", "id_lo").with_row_index("row")
    # The narrowest integer for the category bits: every `ordered` condition scans them.
    mask_type = next(t for bits, t in _MASK_TYPES if len(categories or ()) <= bits)
    bought = (
        pl.read_csv(orders, schema=_ORDER_SCHEMA)
        .with_columns(
            pl.col("paid_at").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            pl.col("categories").cast(mask_type),
        )
        .join(rows, on=["id_hi", "id_lo"], how="inner")
        .drop("id_hi", "id_lo")
        .sort("row")
    )
    # One contiguous chunk per column: a CSV is read in many, which slows every scan.
    return Frame(people.rechunk(), bought.rechunk(), categories, masks)


def _as_masks(people: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, dict[str, int]]]:
    """Each list column with at most 63 distinct values as a bit mask of them."""
    masks: dict[str, dict[str, int]] = {}
    for name, _, dtype in _COLUMNS:
        if dtype != _LIST:
            continue
        values = people[name].explode().drop_nulls().unique().sort().to_list()
        if len(values) > _MASK_BITS:
            continue
        masks[name] = {value: 1 << bit for bit, value in enumerate(values)}
        if values:
            bits = pl.element().replace_strict(masks[name], return_dtype=pl.Int64)
            mask = pl.col(name).list.eval(bits).list.unique().list.sum()
        else:  # nobody has any: a missing list stays missing, an empty one is 0
            mask = pl.when(pl.col(name).is_not_null()).then(pl.lit(0, pl.Int64))
        people = people.with_columns(mask.alias(name))
    return people, masks


def id_halves(customer_id: uuid.UUID) -> tuple[int, int]:
    """The id as two signed 64-bit numbers that order as the uuid's bytes do."""
    value = customer_id.int
    return (value >> 64) - _SIGN, (value & _LOW) - _SIGN


def _uuid(high: int, low: int) -> uuid.UUID:
    return uuid.UUID(int=((high + _SIGN) << 64) | (low + _SIGN))


@dataclass
class _Loaded:
    changes: int
    frame: Frame


class MemberFrames:
    def __init__(self, database_url: str, min_customers: int, max_customers: int) -> None:
        self._url = database_url
        self.min_customers = min_customers
        self.max_customers = max_customers
        self._frames: OrderedDict[uuid.UUID, _Loaded] = OrderedDict()
        self._small: dict[uuid.UUID, int] = {}  # tenant -> change count when found too small
        self._failed: dict[uuid.UUID, float] = {}  # tenant -> when its last load failed
        self._loading: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def current(self, session: AsyncSession, tenant_id: uuid.UUID) -> Frame | None:
        """The tenant's frame if nothing in it has changed since it was loaded; otherwise None,
        and a load starts in the background (unless the tenant is small)."""
        if self.max_customers <= 0:
            return None
        changes = int(await (await driver_of(session)).fetchval(_CHANGES, tenant_id))
        loaded = self._frames.get(tenant_id)
        if loaded is not None and loaded.changes == changes:
            self._frames.move_to_end(tenant_id)
            return loaded.frame
        if loaded is not None and loaded.changes < changes:
            # Stale for good (the count only grows): free it now rather than hold two frames
            # while the new one loads. (A larger count is a frame loaded after this request read
            # the count, and is kept.)
            del self._frames[tenant_id]
        retry_at = self._failed.get(tenant_id, -RETRY_SECONDS) + RETRY_SECONDS
        if (
            self._small.get(tenant_id) != changes
            and tenant_id not in self._loading
            and time.monotonic() >= retry_at
        ):
            task = asyncio.create_task(self._load(tenant_id))
            self._loading[tenant_id] = task
            task.add_done_callback(lambda _: self._loading.pop(tenant_id, None))
        return None

    async def answer(
        self,
        session: AsyncSession,
        tree: Any,
        ctx: QueryContext,
        sort: SortKey,
        descending: bool,
        limit: int,
        cursor: str | None,
    ) -> tuple[int, list[uuid.UUID]] | None:
        """The count and the next page's ids (`limit + 1`, in page order) from the tenant's
        current frame, or None when the SQL must answer.

        A filter the frame holds entirely is answered from it. An `and` it holds in part (an
        `ordered` condition beside profile ones) is narrowed by the frame to at most
        `MAX_CANDIDATES` customers, whom the SQL then checks for the rest."""
        frame = await self.current(session, ctx.tenant_id)
        if frame is None:
            return None
        whole = await asyncio.to_thread(_whole, frame, tree, ctx, sort, descending, limit, cursor)
        if whole is not None:
            return whole
        kept = await asyncio.to_thread(_narrowed, frame, tree, ctx)
        if kept is None or len(kept) > MAX_CANDIDATES:
            return None
        narrowed = replace(ctx, candidates=kept)
        condition = and_(compile_filter(tree, narrowed), c.id == any_(literal(kept, _UUIDS)))
        matched = await query.matching_ids(session, condition, ctx)
        return await asyncio.to_thread(_page_of, frame, matched, sort, descending, limit, cursor)

    async def wait_loaded(self) -> None:
        """Until the loads under way have finished (tests and benchmarks)."""
        while self._loading:
            await asyncio.gather(*self._loading.values(), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._loading.values()):
            task.cancel()
        await self.wait_loaded()
        self._frames.clear()

    async def _load(self, tenant_id: uuid.UUID) -> None:
        try:
            await self._load_frame(tenant_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # the SQL answers meanwhile
            self._failed[tenant_id] = time.monotonic()
            log.exception(
                "loading the customer frame of tenant %s failed; retrying in %d s at the earliest",
                tenant_id,
                RETRY_SECONDS,
            )

    async def _load_frame(self, tenant_id: uuid.UUID) -> None:
        conn = await asyncpg.connect(self._url)
        try:
            with tempfile.TemporaryDirectory(prefix="kezhan-frame-") as folder:
                customers, orders = Path(folder) / "customers.csv", Path(folder) / "orders.csv"
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    changes = int(await conn.fetchval(_CHANGES, tenant_id))
                    size = int(await conn.fetchval(_SIZE, tenant_id))
                    if not self.min_customers <= size <= self.max_customers:
                        self._small[tenant_id] = changes
                        self._frames.pop(tenant_id, None)
                        return
                    await conn.copy_from_query(
                        _LOAD, tenant_id, output=customers, format="csv", header=True
                    )
                    rules = [tuple(r) for r in await conn.fetch(_RULES, tenant_id)]
                    names = sorted({category for category, _, _ in rules})
                    bits = {name: bit for bit, name in enumerate(names)}
                    if len(names) > _CATEGORY_BITS:  # category conditions stay in SQL
                        rules, bits = [], {}
                    await conn.copy_from_query(
                        _orders_query(rules, bits),
                        tenant_id,
                        *[pattern for _, _, pattern in rules],
                        output=orders,
                        format="csv",
                        header=True,
                    )
                categories = None if len(names) > _CATEGORY_BITS else bits
                frame = await asyncio.to_thread(_read, customers, orders, categories)
        finally:
            await conn.close()
        self._frames[tenant_id] = _Loaded(changes, frame)
        self._frames.move_to_end(tenant_id)
        while sum(f.frame.customers.height for f in self._frames.values()) > self.max_customers:
            self._frames.popitem(last=False)
        log.info(
            "customer frame of tenant %s loaded: %d customers, %d orders",
            tenant_id,
            frame.customers.height,
            frame.orders.height,
        )


def _whole(
    frame: Frame,
    tree: Any,
    ctx: QueryContext,
    sort: SortKey,
    descending: bool,
    limit: int,
    cursor: str | None,
) -> tuple[int, list[uuid.UUID]] | None:
    condition = frame_filter(tree, ctx, frame)
    if condition is None:
        return None
    return count_and_page(frame.customers, condition, sort, descending, limit, cursor)


def _narrowed(frame: Frame, tree: Any, ctx: QueryContext) -> list[uuid.UUID] | None:
    narrowing = frame_narrowing(tree, ctx, frame)
    return None if narrowing is None else _ids(frame.customers.lazy().filter(narrowing))


def _page_of(
    frame: Frame,
    members: list[uuid.UUID],
    sort: SortKey,
    descending: bool,
    limit: int,
    cursor: str | None,
) -> tuple[int, list[uuid.UUID]]:
    """`count_and_page` over the given customers of the frame."""
    halves = pl.DataFrame(
        [id_halves(customer_id) for customer_id in members],
        schema={"id_hi": pl.Int64(), "id_lo": pl.Int64()},
        orient="row",
    )
    # A semi join keeps the frame's id order, which the newest-first page relies on.
    kept = frame.customers.join(halves, on=["id_hi", "id_lo"], how="semi", maintain_order="left")
    return count_and_page(kept, pl.lit(True), sort, descending, limit, cursor)


def _ids(matches: pl.LazyFrame) -> list[uuid.UUID]:
    return [_uuid(h, lo) for h, lo in matches.select("id_hi", "id_lo").collect().iter_rows()]


def _after(sort: SortKey, descending: bool, cursor: str) -> pl.Expr:
    """Members after the cursor's in the page order: (key, id) past (its key, its id)."""
    key, last = page_position(sort, cursor)
    high, low = id_halves(last)
    hi, lo = pl.col("id_hi"), pl.col("id_lo")
    if descending:
        past_id = (hi < high) | ((hi == high) & (lo < low))
    else:
        past_id = (hi > high) | ((hi == high) & (lo > low))
    if key is None:
        return past_id
    value = pl.lit(key.astimezone(UTC), dtype=_TIME) if isinstance(key, datetime) else pl.lit(key)
    column = pl.col("sort_key")
    past_key = column < value if descending else column > value
    return past_key | ((column == value) & past_id)


def count_and_page(
    frame: pl.DataFrame,
    condition: pl.Expr,
    sort: SortKey,
    descending: bool,
    limit: int,
    cursor: str | None,
) -> tuple[int, list[uuid.UUID]]:
    """How many customers match, and the ids of the next page's `limit + 1` (in page order)."""
    after = _after(sort, descending, cursor) if cursor else None  # a bad cursor fails first
    columns = [pl.col("id_hi"), pl.col("id_lo")]
    if sort is not SortKey.newest:
        columns.append(_SORT_KEYS[sort].alias("sort_key"))
    matched = frame.lazy().filter(condition).select(columns).collect()
    total = matched.height
    if after is not None:
        matched = matched.filter(after)
    by = ["id_hi", "id_lo"] if sort is SortKey.newest else ["sort_key", "id_hi", "id_lo"]
    if sort is SortKey.newest:
        # The frame is in id order, and so is what the filter kept.
        page = matched.tail(limit + 1).reverse() if descending else matched.head(limit + 1)
    elif descending:
        page = matched.top_k(limit + 1, by=by).sort(by, descending=True)
    else:
        page = matched.bottom_k(limit + 1, by=by).sort(by)
    return total, _ids(page.lazy())


_COMPACT = text(
    "WITH gone AS (DELETE FROM customer_changes WHERE tenant_id = :t RETURNING statements) "
    "INSERT INTO customer_changes (tenant_id, statements) "
    "SELECT :t, sum(statements) FROM gone HAVING count(*) > 0"
)


async def compact_changes(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Fold the tenant's change rows into one with the same sum (the recompute job's step).

    Rows another transaction appends meanwhile are invisible to the delete and stay; of two
    compactions at once, the second deletes and re-adds only what the first did not."""
    await session.execute(_COMPACT, {"t": tenant_id})
