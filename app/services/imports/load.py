"""Set-based loading of canonical order frames: COPY into staging, resolve buyers, upsert.

One call loads one or more snapshots (an export, or a JSON batch) of one shop inside the caller's
transaction: nothing is committed here, so a failure anywhere leaves the database untouched and a
retried job starts from the same state. The rules (forward-only status, identity resolution, what
counts as a change) are written down in docs/order-sync.md. A shop's first snapshot (no orders
yet, so every order is new) skips staging: its buyers are resolved first and its orders and items
are COPYed straight into their tables; both ways store the same rows (tests/imports/
test_load_paths.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import polars as pl
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import Vault
from app.errors import FieldError, ValidationFailed
from app.models.base import new_id_batches
from app.services import pii
from app.services.facts import (
    CategoryRule,
    category_rules,
    new_customer_facts,
    order_fact_columns,
    refresh_customer_facts,
)
from app.services.imports.export import ITEM_SCHEMA, ORDER_SCHEMA, REJECTION_SCHEMA
from app.services.rollups import LARGE, defer_rollups, finish_rollups, lock_rollups

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)
Progress = Callable[[int], Awaitable[None]]
OrdersChangedHook = Callable[[AsyncSession, uuid.UUID, list[uuid.UUID], datetime], Awaitable[None]]

# A UUIDv7 made in SQL (millisecond time prefix, version and variant bits), so set-based inserts
# get the same sortable ids as rows made in Python.
UUID7_SQL = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) "
    "FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"
)

# Forward-only status: a snapshot may move an order to a status of equal or higher rank only.
STATUS_RANK = {
    "pending_payment": 0,
    "paid": 1,
    "shipped": 2,
    "completed": 3,
    "refunding": 4,
    "partially_refunded": 5,
    "refunded": 6,
    "closed": 6,
}


def _rank_sql(column: str) -> str:
    cases = " ".join(f"WHEN '{status}' THEN {rank}" for status, rank in STATUS_RANK.items())
    return f"(CASE {column} {cases} ELSE 0 END)"


@dataclass
class Snapshot:
    """One consistent view of a shop's orders: a parsed export, or one JSON batch."""

    source_time: datetime | None
    orders: pl.DataFrame  # ORDER_SCHEMA
    items: pl.DataFrame  # ITEM_SCHEMA
    rejections: pl.DataFrame  # REJECTION_SCHEMA
    rows_read: int
    duplicates: int = 0


@dataclass
class LoadCounts:
    rows_read: int = 0
    orders_created: int = 0
    orders_updated: int = 0
    orders_unchanged: int = 0
    orders_stale: int = 0
    items: int = 0
    items_written: int = 0
    customers_created: int = 0
    customers_matched: int = 0
    rejected: int = 0
    anonymous: int = 0
    duplicates: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("timings")
        return values


@dataclass
class _Unlisted:
    """What the COPY path created without listing it in load_touched and load_customers: the
    orders and customers of a load's last snapshot, which no later statement of the load reads
    back. The customers it created have no other orders, so their facts and months are
    computed from its frames (`facts`: a thread started with the buyers, keeping the rows of
    `created_ids`); the customers it matched (`customers`) are refreshed in SQL."""

    orders: int = 0
    customers: set[uuid.UUID] = field(default_factory=set)
    created: list[uuid.UUID] = field(default_factory=list)
    created_ids: pl.Series | None = None
    order_ids: list[pl.Series] = field(default_factory=list)
    facts: asyncio.Future[tuple[pl.DataFrame, pl.DataFrame]] | None = None


@dataclass(frozen=True)
class LoadTarget:
    tenant_id: uuid.UUID
    shop_id: uuid.UUID
    platform: str
    import_id: uuid.UUID | None


# --- preparing frames (CPU: run in a worker thread for big files) ------------------------------

_STAGE_COLUMNS = [
    "order_no", "status", "raw_status", "after_sale_status", "buyer_key",
    "receiver_name_enc", "receiver_name_masked", "receiver_phone_enc", "receiver_phone_masked",
    "receiver_address_enc", "receiver_address_masked", "receiver_hash",
    "province", "city", "district", "postal_code",
    "goods_total_fen", "shipping_fen", "discount_fen", "paid_fen", "received_fen", "refund_fen",
    "ordered_at", "paid_at", "shipped_at", "completed_at",
    "buyer_message", "seller_memo", "item_count",
    "ident_key", "ident_shop", "phone_hash", "phone_enc", "phone_masked", "display_name",
    "phone_only",
]  # fmt: skip

_ITEM_COLUMNS = [
    "order_no", "line_no", "sub_order_no", "title", "sku", "merchant_code", "product_id",
    "quantity", "unit_price_fen", "paid_fen", "refund_status", "refund_fen",
]  # fmt: skip


def _hex(blob: bytes) -> str:
    return "\\x" + blob.hex()


def _clear_phone(raw: str) -> str | None:
    try:
        return pii.normalize_phone(raw, ["phone"])
    except ValidationFailed:
        return None


def _mask(kind: str, value: str) -> str:
    if "*" in value:
        return value  # already masked by the marketplace
    if kind == "name":
        return pii.mask_name(value)
    if kind == "phone":
        return pii.mask_phone(_clear_phone(value) or value)
    return pii.mask_street(value)


def _sealed(vault: Vault, tenant_id: uuid.UUID, column: pl.Series, kind: str) -> pl.DataFrame:
    """Ciphertext (hex for COPY) and masked copy per distinct value: buyers repeat across orders."""
    values = column.drop_nulls().unique().to_list()
    return pl.DataFrame(
        {
            column.name: values,
            f"{column.name}_enc": [_hex(vault.encrypt(tenant_id, v)) for v in values],
            f"{column.name}_masked": [_mask(kind, v) for v in values],
        },
        schema={
            column.name: pl.String(),
            f"{column.name}_enc": pl.String(),
            f"{column.name}_masked": pl.String(),
        },
    )


def _phones(vault: Vault, tenant_id: uuid.UUID, column: pl.Series) -> pl.DataFrame:
    """Full (unmasked) phones: the keyed lookup hash, and the sealed normalised number."""
    rows: dict[str, list[Any]] = {"receiver_phone": [], "phone_hash": [], "phone_enc": []}
    rows["phone_masked"] = []
    for raw in column.drop_nulls().unique().to_list():
        phone = _clear_phone(raw)
        if phone is None:
            continue
        rows["receiver_phone"].append(raw)
        rows["phone_hash"].append(_hex(vault.lookup_hash(tenant_id, "phone", phone)))
        rows["phone_enc"].append(_hex(vault.encrypt(tenant_id, phone)))
        rows["phone_masked"].append(pii.mask_phone(phone))
    return pl.DataFrame(rows, schema=dict.fromkeys(rows, pl.String()))


def _receiver_hashes(vault: Vault, tenant_id: uuid.UUID, texts: pl.Series) -> pl.DataFrame:
    values = texts.unique().to_list()
    return pl.DataFrame(
        {
            "receiver_text": values,
            "receiver_hash": [_hex(vault.lookup_hash(tenant_id, "receiver", v)) for v in values],
        },
        schema={"receiver_text": pl.String(), "receiver_hash": pl.String()},
    )


class _Identity(NamedTuple):
    """Expressions over buyer_key, buyer_key_masked, the region and phone_hash: each order's
    buyer identity (`ident_key`, matched on, and `ident_shop`, its scope: a shop or none)."""

    key: pl.Expr  # buyer_key, trimmed
    masked: pl.Expr
    has_key: pl.Expr
    phone_only: pl.Expr  # no key, a full phone
    ident_key: pl.Expr
    ident_shop: pl.Expr


def _identity(target: LoadTarget) -> _Identity:
    key = pl.col("buyer_key").str.strip_chars()
    masked = pl.col("buyer_key_masked").fill_null(False) | key.str.contains("*", literal=True)
    region = pl.concat_str(
        [pl.col(c).fill_null("") for c in ("province", "city", "district")], separator="|"
    )
    has_key = key.is_not_null() & (key != "")
    phone_only = ~has_key & pl.col("phone_hash").is_not_null()
    # A masked key is only as good as the region it came with: scope it to this shop and place.
    ident_key = (
        pl.when(has_key & masked)
        .then(pl.concat_str([key, region], separator="|"))
        .when(has_key)
        .then(key)
        .when(phone_only)
        .then(pl.concat_str([pl.lit("phone:"), pl.col("phone_hash")]))
        .otherwise(None)
        .alias("ident_key")
    )
    ident_shop = (
        pl.when(has_key & masked).then(pl.lit(str(target.shop_id))).otherwise(None)
    ).alias("ident_shop")
    return _Identity(key, masked, has_key, phone_only, ident_key, ident_shop)


def _with_identity(frame: FrameT, target: LoadTarget) -> FrameT:
    """Each order's buyer identity: the key it is matched on, its scope, the customer's name."""
    who = _identity(target)
    return frame.with_columns(
        who.ident_key,
        who.ident_shop,
        pl.when(who.has_key & who.masked)
        .then(None)
        .otherwise(pl.col("phone_hash"))
        .alias("phone_hash"),
        who.phone_only.alias("phone_only"),
        pl.when(who.masked | ~who.has_key | (target.platform != "tmall"))
        .then(pl.col("receiver_name_masked"))
        .otherwise(who.key)
        .alias("display_name"),
        pl.when(who.has_key).then(who.key).otherwise(None).alias("buyer_key"),
    )


def prepare_orders(
    vault: Vault, target: LoadTarget, orders: pl.DataFrame, phones: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, dict[str, float]]:
    """The staging frame: personal data sealed and masked, buyer identity keys derived.

    `phones` is the `_phones` table of these orders when the caller already made it.
    """
    started = time.perf_counter()
    tenant_id = target.tenant_id
    frame = orders.select(list(ORDER_SCHEMA)).with_columns(
        pl.concat_str(
            [
                pl.col(c).fill_null("")
                for c in ("receiver_name", "receiver_phone", "receiver_address")
            ],
            separator="\x1f",
        ).alias("receiver_text")
    )
    for column, kind in (
        ("receiver_name", "name"),
        ("receiver_phone", "phone"),
        ("receiver_address", "street"),
    ):
        frame = frame.join(_sealed(vault, tenant_id, frame[column], kind), on=column, how="left")
    frame = frame.join(
        _receiver_hashes(vault, tenant_id, frame["receiver_text"]), on="receiver_text", how="left"
    )
    if phones is None:
        phones = _phones(vault, tenant_id, frame["receiver_phone"])
    frame = frame.join(phones, on="receiver_phone", how="left")
    sealed = time.perf_counter()
    return _with_identity(frame, target).select(_STAGE_COLUMNS), {
        "seal_s": sealed - started,
        "prepare_s": time.perf_counter() - started,
    }


_BUYER_COLUMNS = [
    "ident_key", "ident_shop", "phone_hash", "phone_enc", "phone_masked", "display_name",
    "phone_only", "province", "city", "district",
]  # fmt: skip


_BUYER_SOURCE = [
    "buyer_key", "buyer_key_masked", "receiver_name", "receiver_phone",
    "province", "city", "district", "ordered_at",
]  # fmt: skip


# What a buyer's identity (`_identity`) is derived from, with the `_phones` table.
_KEY_SOURCE = ["buyer_key", "buyer_key_masked", "receiver_phone", "province", "city", "district"]


def _keyed(orders: pl.LazyFrame, phones: pl.DataFrame, target: LoadTarget) -> pl.LazyFrame:
    """Orders (with `_KEY_SOURCE`) with each one's buyer `ident_key` and `ident_shop`."""
    who = _identity(target)
    return orders.join(
        phones.lazy().select("receiver_phone", "phone_hash"), on="receiver_phone", how="left"
    ).with_columns(who.ident_key, who.ident_shop)


def prepare_buyers(
    vault: Vault, target: LoadTarget, orders: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The distinct buyers of a snapshot, each as of their latest order (what `_IDENTITIES`
    picks in SQL), with the ids a new customer and identity would get, and the `_phones` table
    the orders' staging frames reuse."""
    phones = _phones(vault, target.tenant_id, orders["receiver_phone"])
    # Each buyer's latest order picked on narrow columns (its row number, time and key); only
    # those rows' buyer columns are then gathered (sorting every order's columns took 0.9 s
    # more at 1M orders, and every order's name was masked).
    latest = (
        _keyed(
            orders.lazy().select(*_KEY_SOURCE, "ordered_at").with_row_index("__row"), phones, target
        )
        .select("__row", "ordered_at", "ident_key", "ident_shop")
        .filter(pl.col("ident_key").is_not_null())
        .sort("ordered_at", descending=True, nulls_last=True, maintain_order=True)
        .unique(["ident_key", "ident_shop"], keep="first")
        # In key order, like the DISTINCT ON: the identities' unique index then fills in order.
        .sort("ident_key", "ident_shop")
        .collect()
        .get_column("__row")
    )
    chosen = orders.select(_BUYER_SOURCE)[latest]
    del latest
    names = chosen["receiver_name"].drop_nulls().unique()
    masked_names = pl.DataFrame(
        {
            "receiver_name": names,
            "receiver_name_masked": [_mask("name", v) for v in names.to_list()],
        },
        schema={"receiver_name": pl.String(), "receiver_name_masked": pl.String()},
    )
    frame = chosen.lazy().join(
        masked_names.lazy(), on="receiver_name", how="left", maintain_order="left"
    )
    frame = frame.join(phones.lazy(), on="receiver_phone", how="left", maintain_order="left")
    buyers = _with_identity(frame, target).select(_BUYER_COLUMNS).collect()
    take_ids = new_id_batches()
    return buyers.with_columns(
        pl.Series("customer_id", take_ids(buyers.height), pl.String()),
        pl.Series("identity_id", take_ids(buyers.height), pl.String()),
        pl.lit("new").alias("via"),
    ), phones


_FACT_SOURCE = ["order_no", *_KEY_SOURCE, "status", "paid_at", "paid_fen", "refund_fen"]


def buyer_facts(
    target: LoadTarget,
    orders: pl.DataFrame,
    items: pl.DataFrame,
    phones: pl.DataFrame,
    buyers: pl.DataFrame,
    rules: Sequence[CategoryRule],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Facts and months (`new_customer_facts`) of every buyer of a shop's first snapshot, as
    the new customer `prepare_buyers` made of it (`buyers`: ident_key, ident_shop,
    customer_id), from the snapshot's frames and `_phones` table. Computed while the database
    matches the buyers; the caller keeps the rows of the customers created (a matched buyer
    has orders elsewhere: the SQL refresh covers it)."""
    bought = (
        _keyed(orders.lazy().select(_FACT_SOURCE), phones, target)
        .join(buyers.lazy(), on=["ident_key", "ident_shop"], how="inner", nulls_equal=True)
        .select("order_no", "customer_id", *order_fact_columns())
        .collect()
    )
    return new_customer_facts(bought, items, rules, target.platform, target.shop_id)


@contextmanager
def _timed(counts: LoadCounts, name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        _add_time(counts, name, time.perf_counter() - started)


def _add_time(counts: LoadCounts, name: str, seconds: float) -> None:
    counts.timings[name] = counts.timings.get(name, 0.0) + seconds


# --- SQL ---------------------------------------------------------------------------------------

_CREATE_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS stage_orders (
    order_no text, status text, raw_status text, after_sale_status text, buyer_key text,
    receiver_name_enc bytea, receiver_name_masked text, receiver_phone_enc bytea,
    receiver_phone_masked text, receiver_address_enc bytea, receiver_address_masked text,
    receiver_hash bytea, province text, city text, district text, postal_code text,
    goods_total_fen bigint, shipping_fen bigint, discount_fen bigint, paid_fen bigint,
    received_fen bigint, refund_fen bigint, ordered_at timestamptz, paid_at timestamptz,
    shipped_at timestamptz, completed_at timestamptz, buyer_message text, seller_memo text,
    item_count int, ident_key text, ident_shop uuid, phone_hash bytea, phone_enc bytea,
    phone_masked text, display_name text, phone_only boolean,
    order_id uuid DEFAULT {UUID7_SQL}
) ON COMMIT DROP;
CREATE TEMP TABLE IF NOT EXISTS stage_items (
    order_no text, line_no int, sub_order_no text, title text, sku text, merchant_code text,
    product_id text, quantity int, unit_price_fen bigint, paid_fen bigint, refund_status text,
    refund_fen bigint
) ON COMMIT DROP;
CREATE TEMP TABLE IF NOT EXISTS load_touched (
    order_id uuid, customer_id uuid, inserted boolean, status text, prev_status text,
    refund_fen bigint, prev_refund bigint
) ON COMMIT DROP;
CREATE TEMP TABLE IF NOT EXISTS load_customers (customer_id uuid PRIMARY KEY, created boolean)
    ON COMMIT DROP;
TRUNCATE stage_orders, stage_items, load_touched, load_customers;
"""


# Each buyer starts as a new customer with its ids picked; the matches below overwrite that.
_IDENTITIES = f"""
CREATE TEMP TABLE stage_ident ON COMMIT DROP AS
SELECT b.*, {UUID7_SQL} AS customer_id, {UUID7_SQL} AS identity_id, 'new'::text AS via
FROM (
    SELECT DISTINCT ON (ident_key, ident_shop)
           ident_key, ident_shop, phone_hash, phone_enc, phone_masked, display_name, phone_only,
           province, city, district
    FROM stage_orders s LEFT JOIN stage_known k ON k.order_no = s.order_no
    WHERE s.ident_key IS NOT NULL AND k.prev_customer IS NULL AND coalesce(k.accepted, true)
    ORDER BY ident_key, ident_shop, ordered_at DESC NULLS LAST
) b
"""

# The same table when the buyers come ready from the parsed frames (a first import).
_CREATE_IDENT = """
CREATE TEMP TABLE stage_ident (
    ident_key text, ident_shop uuid, phone_hash bytea, phone_enc bytea, phone_masked text,
    display_name text, phone_only boolean, province text, city text, district text,
    customer_id uuid, identity_id uuid, via text
) ON COMMIT DROP
"""

_MATCH_IDENTITY = """
UPDATE stage_ident si SET customer_id = ci.customer_id, via = 'identity'
FROM customer_identities ci
WHERE ci.tenant_id = :tenant_id AND ci.platform = :platform
  AND ci.shop_id IS NOT DISTINCT FROM si.ident_shop AND ci.buyer_key = si.ident_key
"""

# A full phone number that exactly one customer has: the same person. Two owners: never guess.
_MATCH_PHONE = """
UPDATE stage_ident si SET customer_id = m.customer_id, via = 'phone'
FROM (
    SELECT value_hash, min(customer_id::text)::uuid AS customer_id
    FROM customer_contacts
    WHERE tenant_id = :tenant_id AND kind = 'phone'
      AND value_hash IN (SELECT phone_hash FROM stage_ident WHERE phone_hash IS NOT NULL)
    GROUP BY value_hash
    HAVING count(DISTINCT customer_id) = 1
) m
WHERE si.via = 'new' AND si.phone_hash = m.value_hash
"""

_INSERT_CUSTOMERS = """
INSERT INTO customers (tenant_id, id, display_name, province, city, district, tags, attributes,
                       version, created_at, updated_at)
SELECT :tenant_id, customer_id, left(display_name, 200), province, city, district, '{}',
       jsonb_build_object('source', CAST(:platform AS text)), 1, now(), now()
FROM stage_ident WHERE via = 'new'
"""

_INSERT_IDENTITIES = """
INSERT INTO customer_identities (tenant_id, id, customer_id, platform, shop_id, buyer_key,
                                 created_at)
SELECT :tenant_id, identity_id, customer_id, :platform, ident_shop, left(ident_key, 200), now()
FROM stage_ident WHERE via IN ('new', 'phone') AND NOT phone_only
"""

_INSERT_CONTACTS = f"""
INSERT INTO customer_contacts (tenant_id, id, customer_id, kind, position, value_enc,
                               value_hash, masked)
SELECT :tenant_id, {UUID7_SQL}, customer_id, 'phone', 0, phone_enc, phone_hash, phone_masked
FROM stage_ident WHERE via = 'new' AND phone_hash IS NOT NULL
"""

_RESOLVED = """
INSERT INTO load_customers (customer_id, created)
SELECT customer_id, bool_or(via = 'new') FROM stage_ident GROUP BY customer_id
ON CONFLICT (customer_id) DO NOTHING
"""


_DATA = [
    "status", "raw_status", "after_sale_status", "buyer_key",
    "receiver_name_masked", "receiver_phone_masked", "receiver_address_masked", "receiver_hash",
    "province", "city", "district", "postal_code",
    "goods_total_fen", "shipping_fen", "discount_fen", "paid_fen", "received_fen", "refund_fen",
    "ordered_at", "paid_at", "shipped_at", "completed_at",
    "buyer_message", "seller_memo", "item_count",
]  # fmt: skip
_SEALED = ["receiver_name_enc", "receiver_phone_enc", "receiver_address_enc"]

# The staged orders the shop has already (a narrow table of its own: writing these columns into
# stage_orders rewrote every wide staged row, 13.8 s of a 1M-order re-import, docs/benchmarks.md).
_EXISTING = f"""
CREATE TEMP TABLE stage_known ON COMMIT DROP AS
SELECT s.order_no, o.id AS order_id, o.status AS prev_status, o.refund_fen AS prev_refund,
    o.customer_id AS prev_customer,
    (o.source_time IS NULL OR CAST(:source_time AS timestamptz) IS NULL
                OR CAST(:source_time AS timestamptz) >= o.source_time)
           AND ({_rank_sql("s.status")} >= {_rank_sql("o.status")}
                OR (o.status = 'refunding' AND CAST(:source_time AS timestamptz) > o.source_time))
        AS accepted,
    -- Known and identical: left out of the upsert, so a re-import does not even probe for it.
    ({", ".join("o." + c for c in _DATA)})
                IS NOT DISTINCT FROM ({", ".join("s." + c for c in _DATA)})
            AND (o.customer_id IS NOT NULL OR s.ident_key IS NULL) AS unchanged
FROM stage_orders s JOIN orders o
  ON o.tenant_id = :tenant_id AND o.shop_id = :shop_id AND o.order_no = s.order_no
"""

_NOT_KNOWN = "NOT EXISTS (SELECT FROM stage_known k WHERE k.order_no = s.order_no)"

_CUSTOMER_JOIN = """
    LEFT JOIN stage_ident si
      ON si.ident_key = s.ident_key AND si.ident_shop IS NOT DISTINCT FROM s.ident_shop
"""

# Under the shop's advisory lock, a shop without orders stays so until this load writes some.
_SHOP_HAS_ORDERS = """
SELECT EXISTS (SELECT FROM orders WHERE tenant_id = :tenant_id AND shop_id = :shop_id)
"""

_NEW_ORDER_COLUMNS = [
    "tenant_id", "id", "shop_id", "platform", "order_no", "customer_id", *_DATA, *_SEALED,
    "source_time", "import_id",
]  # fmt: skip

# The shop's advisory lock makes "not known" mean "new": a plain INSERT, no conflict arbitration.
_INSERT_NEW = f"""
WITH ins AS (
    INSERT INTO orders (tenant_id, id, shop_id, platform, order_no, customer_id,
                        {", ".join(_DATA + _SEALED)}, source_time, import_id,
                        created_at, updated_at)
    SELECT :tenant_id, s.order_id, :shop_id, :platform, s.order_no, si.customer_id,
           {", ".join("s." + c for c in _DATA + _SEALED)},
           CAST(:source_time AS timestamptz), CAST(:import_id AS uuid), now(), now()
    FROM stage_orders s {_CUSTOMER_JOIN}
    WHERE {_NOT_KNOWN}
    RETURNING id, customer_id, status, refund_fen
)
INSERT INTO load_touched (order_id, customer_id, inserted, status, refund_fen)
SELECT id, customer_id, true, status, refund_fen FROM ins
"""

_UPDATE_KNOWN = f"""
WITH up AS (
    UPDATE orders o SET
        {", ".join(f"{c} = s.{c}" for c in _DATA + _SEALED)},
        customer_id = coalesce(o.customer_id, si.customer_id),
        source_time = CAST(:source_time AS timestamptz),
        import_id = CAST(:import_id AS uuid),
        updated_at = now()
    FROM stage_known k JOIN stage_orders s ON s.order_no = k.order_no {_CUSTOMER_JOIN}
    WHERE k.accepted AND NOT k.unchanged AND o.tenant_id = :tenant_id AND o.id = k.order_id
    RETURNING o.id, o.customer_id, o.status, o.refund_fen, k.prev_status, k.prev_refund
)
INSERT INTO load_touched (order_id, customer_id, inserted, status, prev_status, refund_fen,
                          prev_refund)
SELECT id, customer_id, false, status, prev_status, refund_fen, prev_refund FROM up
"""

_ITEM_DATA = _ITEM_COLUMNS[2:]

_INSERT_NEW_ITEMS = f"""
INSERT INTO order_items (tenant_id, order_id, line_no, {", ".join(_ITEM_DATA)})
SELECT :tenant_id, s.order_id, si.line_no, {", ".join("si." + c for c in _ITEM_DATA)}
FROM stage_items si JOIN stage_orders s ON s.order_no = si.order_no
WHERE {_NOT_KNOWN}
"""

# The lines of known, accepted orders that this snapshot lists, compared with the stored lines
# of the same orders in one hash join (each side read once), instead of probing the items' key
# for every staged line and again for every order's lines past its last: a 1M-order re-import
# of unchanged items took 11.3 s that way. Orders the snapshot gives no lines for (a list
# without its detail file) keep theirs. Kept: lines new or different (`staged`), and stored
# lines the snapshot no longer lists (`staged` false: an order edited on the platform).
_ITEM_CHANGES = f"""
CREATE TEMP TABLE item_changes ON COMMIT DROP AS
SELECT coalesce(n.order_id, o.order_id) AS order_id, coalesce(n.line_no, o.line_no) AS line_no,
       n.order_id IS NOT NULL AS staged, {", ".join("n." + c for c in _ITEM_DATA)}
FROM (
    SELECT k.order_id, si.line_no, {", ".join("si." + c for c in _ITEM_DATA)}
    FROM stage_items si JOIN stage_known k ON k.order_no = si.order_no AND k.accepted
) n
FULL JOIN (
    SELECT i.order_id, i.line_no, {", ".join("i." + c for c in _ITEM_DATA)}
    FROM order_items i
    WHERE i.tenant_id = :tenant_id
      AND i.order_id IN (SELECT k.order_id FROM stage_known k
                         WHERE k.accepted AND k.order_no IN (SELECT order_no FROM stage_items))
) o ON o.order_id = n.order_id AND o.line_no = n.line_no
WHERE n.order_id IS NULL OR o.order_id IS NULL
   OR ({", ".join("o." + c for c in _ITEM_DATA)})
      IS DISTINCT FROM ({", ".join("n." + c for c in _ITEM_DATA)})
"""

_UPSERT_ITEMS = f"""
INSERT INTO order_items AS i (tenant_id, order_id, line_no, {", ".join(_ITEM_DATA)})
SELECT :tenant_id, c.order_id, c.line_no, {", ".join("c." + c for c in _ITEM_DATA)}
FROM item_changes c WHERE c.staged
ON CONFLICT (tenant_id, order_id, line_no) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in _ITEM_DATA)}
"""

_DROP_OLD_ITEMS = """
DELETE FROM order_items i USING item_changes c
WHERE NOT c.staged AND i.tenant_id = :tenant_id AND i.order_id = c.order_id
  AND i.line_no = c.line_no
"""

_COUNTS = """
SELECT
    (SELECT count(DISTINCT order_id) FROM load_touched WHERE inserted) AS created,
    (SELECT count(DISTINCT order_id) FROM load_touched t
      WHERE NOT EXISTS (SELECT 1 FROM load_touched c WHERE c.order_id = t.order_id
                         AND c.inserted)) AS updated,
    (SELECT count(*) FROM load_customers WHERE created) AS customers_created,
    (SELECT count(*) FROM load_customers WHERE NOT created) AS customers_matched
"""

_TOUCHED_CUSTOMERS = """
SELECT DISTINCT customer_id FROM load_touched WHERE customer_id IS NOT NULL
"""

_STATUS_CHANGED = """
SELECT DISTINCT order_id FROM load_touched
WHERE inserted OR status IS DISTINCT FROM prev_status OR refund_fen IS DISTINCT FROM prev_refund
"""


_COPY_DATETIME = "%Y-%m-%d %H:%M:%S%.6f+00"


async def _driver(session: AsyncSession) -> Any:
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


_COPY_ROWS = 100_000

CopyParts = Iterable[tuple[str, pl.DataFrame]]


async def _copy(session: AsyncSession, parts: CopyParts) -> dict[str, float]:
    """COPY each (table, frame) of `parts`, in order, as CSV `_COPY_ROWS` rows at a time through
    temporary files; returns the seconds the database spent on each table.

    `parts` is advanced in a worker thread, where a producer may do CPU work (sealing personal
    data, joining ids), and the next file is written while the database reads the current one,
    across frames and tables: the database does not wait between them (it did between calls,
    about 0.5 s at each of a 1M-order import's slices, docs/benchmarks.md).
    Not through an in-memory buffer: a `BytesIO` grown by polars and drained by asyncpg left its
    pages with the C allocator, so RSS grew by every byte copied (about 0.5 GB over a
    1,000,000-order export); through a file it stays flat, at the same speed (docs/benchmarks.md).
    """
    driver = await _driver(session)
    spent: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="kezhan-copy-") as folder:
        source = iter(parts)
        files = _csv_files(source, Path(folder))
        pending = asyncio.ensure_future(asyncio.to_thread(next, files, None))
        try:
            while (current := await pending) is not None:
                pending = asyncio.ensure_future(asyncio.to_thread(next, files, None))
                table, columns, path = current
                started = time.perf_counter()
                await driver.copy_to_table(table, source=path, columns=columns, format="csv")
                spent[table] = spent.get(table, 0.0) + time.perf_counter() - started
        finally:
            if not pending.done():
                with contextlib.suppress(Exception):
                    await pending
            files.close()
            # A failed stream lets its producer go now (it may hold a large frame).
            close = getattr(source, "close", None)
            if close is not None:
                close()
    return spent


def _csv_files(
    parts: Iterator[tuple[str, pl.DataFrame]], folder: Path
) -> Generator[tuple[str, list[str], Path], None, None]:
    """Each frame of `parts` as CSV files of `_COPY_ROWS` rows: two files in turn, one read by
    the database while the next is written."""
    count = 0
    for table, frame in parts:
        for piece in frame.iter_slices(_COPY_ROWS):
            path = folder / f"{count % 2}.csv"
            count += 1
            piece.write_csv(path, include_header=False, datetime_format=_COPY_DATETIME)
            yield table, piece.columns, path


def _check_unique(orders: pl.DataFrame) -> None:
    duplicated = orders.filter(pl.col("order_no").is_duplicated())["order_no"].unique().to_list()
    if duplicated:
        raise ValidationFailed(
            "an order number appears twice with different values",
            [FieldError(["orders", "order_no"], f"listed twice: {n}") for n in duplicated[:20]],
        )


async def _load_staged(
    session: AsyncSession,
    vault: Vault,
    target: LoadTarget,
    snapshot: Snapshot,
    params: dict[str, Any],
    counts: LoadCounts,
) -> None:
    """Stage the snapshot, then upsert: new orders inserted, known ones updated when they may."""
    await session.execute(text("TRUNCATE stage_orders, stage_items"))

    def staged() -> Iterator[tuple[str, pl.DataFrame]]:
        # Sealed and staged a slice at a time: the staging frame of a whole export (ciphertexts
        # and hashes as hex, ~0.4 KB per order) would double a large import's peak memory.
        for part in snapshot.orders.iter_slices(_COPY_ROWS):
            frame, timings = prepare_orders(vault, target, part)
            for name, seconds in timings.items():
                _add_time(counts, name, seconds)
            yield "stage_orders", frame
        yield "stage_items", snapshot.items.select(_ITEM_COLUMNS)

    with _timed(counts, "copy_s"):
        await _copy(session, staged())
    with _timed(counts, "stage_s"):
        # Temporary tables get no statistics on their own: without them every join plans blind.
        # Only the join keys: the wide columns (ciphertexts, titles) cost most of an ANALYZE.
        await session.execute(text("ANALYZE stage_orders (order_no, ident_key, ident_shop)"))
        await session.execute(text("ANALYZE stage_items (order_no)"))
        await session.execute(text("DROP TABLE IF EXISTS stage_known"))
        await session.execute(text(_EXISTING), params)
        # What the look-up found, for the joins on the known orders' ids (estimated at 200
        # distinct ids without it, the item comparison probed the items one order at a time).
        await session.execute(text("ANALYZE stage_known"))
    with _timed(counts, "identity_s"):
        await session.execute(text("DROP TABLE IF EXISTS stage_ident"))
        await session.execute(text(_IDENTITIES), params)
        await _match_buyers(session, params, listed=True)
    with _timed(counts, "upsert_s"):
        await session.execute(text(_INSERT_NEW), params)
        await session.execute(text(_UPDATE_KNOWN), params)
    with _timed(counts, "items_s"):
        await session.execute(text("DROP TABLE IF EXISTS item_changes"))
        await session.execute(text(_ITEM_CHANGES), params)
        for statement in (_INSERT_NEW_ITEMS, _UPSERT_ITEMS):
            written = await session.execute(text(statement), params)
            counts.items_written += max(getattr(written, "rowcount", 0), 0)
        await session.execute(text(_DROP_OLD_ITEMS), params)
    stale, anonymous = (
        await session.execute(
            text(
                "SELECT (SELECT count(*) FROM stage_known WHERE NOT accepted),"
                " (SELECT count(*) FROM stage_orders WHERE ident_key IS NULL)"
            )
        )
    ).one()
    counts.orders_stale += int(stale)
    counts.anonymous += int(anonymous)


async def _load_new(
    session: AsyncSession,
    vault: Vault,
    target: LoadTarget,
    snapshot: Snapshot,
    params: dict[str, Any],
    counts: LoadCounts,
    unlisted: _Unlisted | None,
) -> None:
    """A snapshot whose orders are all new (the shop has none yet): buyers are resolved first,
    then orders and items go by COPY straight into their tables, skipping the staging copy,
    the look-up of existing orders and the INSERT ... SELECT joins (docs/benchmarks.md).
    With `unlisted`, what it creates is counted there instead of in load_touched."""
    with _timed(counts, "identity_s"):
        buyers, phones = await asyncio.to_thread(prepare_buyers, vault, target, snapshot.orders)
        if unlisted is not None:
            # In a thread while the database matches and adds the buyers: Python is idle then,
            # and holds the least memory of the load (docs/benchmarks.md).
            rules = await category_rules(session, target.tenant_id)
            unlisted.facts = asyncio.ensure_future(
                asyncio.to_thread(
                    buyer_facts,
                    target,
                    snapshot.orders,
                    snapshot.items,
                    phones,
                    buyers.select("ident_key", "ident_shop", "customer_id"),
                    rules,
                )
            )
        await session.execute(text("DROP TABLE IF EXISTS stage_ident"))
        await session.execute(text(_CREATE_IDENT))
        await _copy(session, [("stage_ident", buyers)])
        del buyers
        await _match_buyers(session, params, listed=unlisted is None)
        customers = await _resolved_customers(session)
    source_time = snapshot.source_time.isoformat() if snapshot.source_time else None
    constants = [
        pl.lit(str(target.tenant_id)).alias("tenant_id"),
        pl.lit(str(target.shop_id)).alias("shop_id"),
        pl.lit(target.platform).alias("platform"),
        pl.lit(source_time, pl.String).alias("source_time"),
        pl.lit(params["import_id"], pl.String).alias("import_id"),
    ]
    take_ids = new_id_batches()

    def rows() -> Iterator[tuple[str, pl.DataFrame]]:
        """The orders, sealed and given their customers and ids a slice at a time, then the
        items with their orders' ids (in the COPY's worker thread)."""
        ids = [pl.DataFrame(schema={"order_no": pl.String(), "id": pl.String()})]
        for part in snapshot.orders.iter_slices(_COPY_ROWS):
            staged, timings = prepare_orders(vault, target, part, phones)
            for name, seconds in timings.items():
                _add_time(counts, name, seconds)
            orders = staged.join(
                customers,
                on=["ident_key", "ident_shop"],
                how="left",
                nulls_equal=True,
                maintain_order="left",
            ).with_columns(pl.Series("id", take_ids(staged.height), pl.String()), *constants)
            del staged
            counts.anonymous += orders["ident_key"].null_count()
            yield "orders", orders.select(_NEW_ORDER_COLUMNS)
            if unlisted is None:
                yield (
                    "load_touched",
                    orders.select(
                        pl.col("id").alias("order_id"),
                        "customer_id",
                        pl.lit(True).alias("inserted"),
                        "status",
                        "refund_fen",
                    ),
                )
            else:
                unlisted.orders += orders.height
                unlisted.order_ids.append(orders.get_column("id"))
            ids.append(orders.select("order_no", "id"))
            del orders
        # Only the order id column is new: the item columns are COPYed from the parsed frame.
        order_ids = (
            snapshot.items.select("order_no")
            .join(pl.concat(ids), on="order_no", how="left", maintain_order="left")
            .get_column("id")
        )
        del ids
        items = snapshot.items.select(
            pl.lit(str(target.tenant_id)).alias("tenant_id"),
            order_ids.alias("order_id"),
            "line_no",
            *_ITEM_DATA,
        )
        if order_ids.null_count():  # lines of orders this snapshot does not have
            items = items.filter(pl.col("order_id").is_not_null())
        del order_ids
        counts.items_written += items.height
        yield "order_items", items

    with _timed(counts, "upsert_s"):
        spent = await _copy(session, rows())
    # The items' share of the stream, by the database's time on them.
    items_s = spent.get("order_items", 0.0)
    _add_time(counts, "upsert_s", -items_s)
    _add_time(counts, "items_s", items_s)
    if unlisted is not None:
        # Every buyer in the map has an order of this snapshot.
        matched = customers.filter(~pl.col("created")).get_column("customer_id")
        unlisted.customers.update(map(uuid.UUID, matched))
        created = customers.filter(pl.col("created")).get_column("customer_id")
        unlisted.created = list(map(uuid.UUID, created))
        # In the text prepare_buyers gave them (hex without dashes), as `facts` has them.
        unlisted.created_ids = created.str.replace_all("-", "", literal=True)


async def _match_buyers(session: AsyncSession, params: dict[str, Any], listed: bool) -> None:
    """Give every buyer in stage_ident a customer: by identity, by phone, else the new one it
    came with. `listed`: the customers go into load_customers (else the caller counts them)."""
    await session.execute(text("ANALYZE stage_ident"))
    await session.execute(text(_MATCH_IDENTITY), params)
    await session.execute(text(_MATCH_PHONE), params)
    # Every buyer's customer gets new facts: when they are most of the tenant, its rollups are
    # rebuilt once at the end of the load instead of at each large statement.
    buyers = await session.scalar(text("SELECT count(*) FROM stage_ident"))
    await defer_rollups(session, params["tenant_id"], int(buyers or 0))
    await session.execute(text(_INSERT_CUSTOMERS), params)
    try:
        # Without ON CONFLICT's speculative insertion (8.5-9.0 s against 12.6-13.9 s for
        # 555,000 identities, docs/benchmarks.md): the keys were just matched, so a collision
        # is rare (another load or a customer created by hand adding the key meanwhile, two
        # keys equal in their stored 200 characters). Then, as ON CONFLICT DO NOTHING did,
        # those keys are skipped.
        async with session.begin_nested():
            await session.execute(text(_INSERT_IDENTITIES), params)
    except IntegrityError:
        await session.execute(text(_INSERT_IDENTITIES + "ON CONFLICT DO NOTHING"), params)
    await session.execute(text(_INSERT_CONTACTS), params)
    if listed:
        await session.execute(text(_RESOLVED))


async def _resolved_customers(session: AsyncSession) -> pl.DataFrame:
    """stage_ident's buyer -> customer map, read back through a file (COPY, no row objects)."""
    driver = await _driver(session)
    schema = {
        "ident_key": pl.String(),
        "ident_shop": pl.String(),
        "customer_id": pl.String(),
        "created": pl.Boolean(),
    }
    with tempfile.TemporaryDirectory(prefix="kezhan-copy-") as folder:
        path = Path(folder) / "customers.csv"
        await driver.copy_from_query(
            "SELECT ident_key, ident_shop, customer_id, (via = 'new')::text FROM stage_ident",
            output=path,
            format="csv",
        )
        return pl.read_csv(path, has_header=False, new_columns=list(schema), schema=schema)


async def _store_rejections(
    session: AsyncSession, target: LoadTarget, rejections: pl.DataFrame, offset: int
) -> None:
    if target.import_id is None or rejections.height == 0:
        return
    frame = rejections.select(list(REJECTION_SCHEMA)).with_columns(
        pl.lit(str(target.tenant_id)).alias("tenant_id"),
        pl.lit(str(target.import_id)).alias("import_id"),
        (pl.int_range(pl.len()) + offset + 1).alias("seq"),
        pl.col("reason").str.slice(0, 50),
    )
    columns = ["tenant_id", "import_id", "seq", "file", "line", "column", "reason", "order_no"]
    await _copy(session, [("import_rejections", frame.select(*columns, "raw"))])


async def load_snapshots(
    session: AsyncSession,
    vault: Vault,
    target: LoadTarget,
    snapshots: Sequence[Snapshot],
    now: datetime,
    progress: Progress | None = None,
    orders_changed: OrdersChangedHook | None = None,
) -> LoadCounts:
    """Apply snapshots oldest first in the caller's transaction; returns what changed."""
    unlisted = _Unlisted()
    try:
        return await _load_snapshots(
            session, vault, target, snapshots, now, progress, orders_changed, unlisted
        )
    finally:
        if unlisted.facts is not None and not unlisted.facts.done():
            await asyncio.wait([unlisted.facts])  # no thread outlives a failed load


async def _load_snapshots(
    session: AsyncSession,
    vault: Vault,
    target: LoadTarget,
    snapshots: Sequence[Snapshot],
    now: datetime,
    progress: Progress | None,
    orders_changed: OrdersChangedHook | None,
    unlisted: _Unlisted,
) -> LoadCounts:
    from app.services import identities

    counts = LoadCounts()
    started = time.perf_counter()
    # One loader per shop at a time: new order ids picked in staging stay the ones inserted.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"orders:{target.tenant_id}:{target.shop_id}"},
    )
    # Hash joins and sorts over a whole export fit in memory instead of spilling to disk.
    await session.execute(text("SET LOCAL work_mem = '128MB'"))
    for statement in _CREATE_STAGE.strip().split(";\n"):
        if statement.strip():
            await session.execute(text(statement))
    ordered = sorted(snapshots, key=lambda s: (s.source_time is not None, s.source_time or now))
    done = 0
    for index, snapshot in enumerate(ordered):
        params = {
            "tenant_id": target.tenant_id,
            "shop_id": target.shop_id,
            "platform": target.platform,
            "import_id": str(target.import_id) if target.import_id else None,
            "source_time": snapshot.source_time,
        }
        _check_unique(snapshot.orders)
        if await session.scalar(text(_SHOP_HAS_ORDERS), params):
            await _load_staged(session, vault, target, snapshot, params, counts)
        else:
            # Later snapshots may update these orders: listed, they stay counted as created.
            last = index == len(ordered) - 1
            await _load_new(
                session, vault, target, snapshot, params, counts, unlisted if last else None
            )
        counts.items += snapshot.items.height
        with _timed(counts, "rejections_s"):
            await _store_rejections(session, target, snapshot.rejections, counts.rejected)
        counts.rejected += snapshot.rejections.height
        counts.rows_read += snapshot.rows_read
        counts.duplicates += snapshot.duplicates
        done += snapshot.rows_read
        if progress is not None:
            await progress(done)
    row = (await session.execute(text(_COUNTS))).one()
    counts.orders_created = row.created + unlisted.orders
    counts.orders_updated = row.updated
    # Every order number any snapshot listed, counted once.
    seen = pl.concat([s.orders.select("order_no") for s in ordered])["order_no"].n_unique()
    counts.orders_unchanged = seen - counts.orders_created - counts.orders_updated
    # A last snapshot loaded by COPY counts its customers itself; no earlier snapshot of the
    # load wrote an order (else the shop would have had some), so none listed a customer.
    counts.customers_created = row.customers_created + len(unlisted.created)
    counts.customers_matched = row.customers_matched + len(unlisted.customers)
    touched = list(
        unlisted.customers.union((await session.scalars(text(_TOUCHED_CUSTOMERS))).all())
    )
    with _timed(counts, "facts_s"):
        await refresh_customer_facts(session, target.tenant_id, touched)
    with _timed(counts, "suggest_s"):
        await identities.suggest_merges(
            session,
            target.tenant_id,
            touched + unlisted.created,
            now,
            fresh=counts.orders_created + counts.orders_updated >= LARGE,
        )
    if unlisted.facts is not None and unlisted.created_ids is not None:
        with _timed(counts, "facts_s"):
            facts, months = await unlisted.facts
            await _write_new_facts(session, target.tenant_id, facts, months, unlisted.created_ids)
    if orders_changed is not None:
        changed = list((await session.scalars(text(_STATUS_CHANGED))).all())
        changed += [uuid.UUID(i) for ids in unlisted.order_ids for i in ids]
        if changed:
            with _timed(counts, "hooks_s"):
                await orders_changed(session, target.tenant_id, changed, now)
    with _timed(counts, "facts_s"):
        await finish_rollups(session, target.tenant_id)
    counts.timings["load_s"] = time.perf_counter() - started
    return counts


async def _write_new_facts(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    facts: pl.DataFrame,
    months: pl.DataFrame,
    created_ids: pl.Series,
) -> None:
    """COPY the facts and months computed for the buyers of a load, of the customers it
    created (`created_ids`)."""
    await lock_rollups(session, tenant_id, created_ids.len())

    def rows() -> Iterator[tuple[str, pl.DataFrame]]:
        tenant = pl.lit(str(tenant_id)).alias("tenant_id")
        created = pl.col("customer_id").is_in(created_ids.implode())
        yield "customer_facts", facts.filter(created).sort("customer_id").select(tenant, pl.all())
        yield "customer_months", months.filter(created).select(tenant, pl.all())

    await _copy(session, rows())


def empty_frame(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


EMPTY_ITEMS = empty_frame(ITEM_SCHEMA)
EMPTY_REJECTIONS = empty_frame(REJECTION_SCHEMA)
