"""Tmall/Taobao: order list (订单报表) and detail (宝贝报表) tables into canonical frames.

The list is the authority for order amounts, buyer and status; the detail gives the lines and,
in the 2021 layout, per-line refunds (the 2016 list has no 退款金额). Status rules: format notes
section 1.8, written down in docs/imports-parsing.md.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from app.services.imports import cells as c
from app.services.imports.export import ITEM_SCHEMA, ORDER_SCHEMA, REJECTION_SCHEMA, UTC_TIME
from app.services.imports.headers import Detected
from app.services.imports.rows import (
    Check,
    id_problem,
    in_header_order,
    split_valid,
    status_problem,
)
from app.services.imports.table import LINE, RawTable, bad_rejections

ORDER_NO_RE = r"^\d+$"
LIST_MONEY = ("goods_total", "shipping", "total", "paid", "received", "refund")
ITEM_MONEY = ("unit_price", "paid", "refund")
TIMES = ("ordered_at", "paid_at", "shipped_at", "completed_at")
PENDING = ("等待买家付款", "等待买家确认货到付款订单信息", "没有创建支付宝交易")
SHIPPED = ("卖家部分发货", "卖家已发货，等待买家确认", "买家已签收")
REFUND_REQUESTED = (
    "买家已经申请退款，等待卖家同意",
    "卖家已经同意退款，等待买家退货",
    "买家已经退货，等待卖家确认收货",
)
KNOWN_STATUSES = (
    *PENDING,
    "买家已付款，等待卖家发货",
    *SHIPPED,
    "买家已签收，回款至卖家",
    "交易成功",
    "交易关闭",
    "交易被淘宝关闭",
)
JOIN_COLUMN = "订单编号"


def _col(det: Detected, field: str) -> str | None:
    return det.fields.get(field)


def _text(det: Detected, field: str) -> pl.Expr:
    column = _col(det, field)
    return pl.col(column) if column else pl.lit(None, pl.String)


def _money(det: Detected, field: str) -> pl.Expr:
    column = _col(det, field)
    return c.money_fen(column) if column else pl.lit(None, pl.Int64)


def _time(det: Detected, field: str) -> pl.Expr:
    column = _col(det, field)
    return c.to_utc(c.local_time(column)) if column else pl.lit(None, UTC_TIME)


def status_text(raw: pl.Expr) -> pl.Expr:
    """`买家已付款,等待卖家发货` (ASCII comma, T14) reads as the full-width form."""
    return raw.str.replace_all(",", "，", literal=True)


def list_checks(table: RawTable, det: Detected, limit: datetime | None) -> list[Check]:
    f = det.fields
    checks = [id_problem(f["order_no"], ORDER_NO_RE)]
    money = in_header_order(table.header, [f[m] for m in LIST_MONEY if m in f])
    checks += [Check(c.money_problem(col), col) for col in money]
    for field, bound in (("ordered_at", limit), ("paid_at", limit), ("shipped_at", None)):
        if field in f:
            checks.append(Check(c.time_problem(f[field], bound), f[field]))
    if "completed_at" in f:
        checks.append(Check(c.time_problem(f["completed_at"], None), f["completed_at"]))
    checks.append(
        status_problem(status_text(pl.col(f["raw_status"])), f["raw_status"], KNOWN_STATUSES)
    )
    return checks


def parse_list(
    table: RawTable, det: Detected, limit: datetime | None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(valid orders with helper columns, rejections, order numbers of rejected rows)."""
    checks = list_checks(table, det, limit)
    parts = table.parse_batches(lambda cells: _list_orders(cells, table, det, checks))
    orders = pl.concat([part[0] for part in parts])
    rejected = pl.concat([bad_rejections(table, det.fields["order_no"]), *(p[1] for p in parts)])
    rejected_orders = rejected.select("order_no").drop_nulls().unique()
    return orders, rejected, rejected_orders


def _list_orders(
    cells: pl.DataFrame, table: RawTable, det: Detected, checks: list[Check]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid orders with helper columns, rejections) of one batch of the list's cells."""
    f = det.fields
    order_no = pl.col(f["order_no"])
    numbers = [f[m] for m in (*LIST_MONEY, "item_count") if m in f]
    times = [f[t] for t in TIMES if t in f]
    frame = c.clean(cells, list(f.values()), numbers, times)
    valid, rejected = split_valid(frame, checks, table.file, order_no, table.raw_of_cells())
    del frame
    address = _text(det, "address")
    # `省 市 区 街道(邮编)`: split on the first three spaces (the street may hold more)
    valid = valid.with_columns(
        address.str.extract(r"\((\d{6})\)$", 1).alias("__postal"),
        address.str.replace(r"\(\d{6}\)$", "")
        .str.strip_chars()
        .str.splitn(" ", 4)
        .alias("__parts"),
    )
    postal, parts = pl.col("__postal"), pl.col("__parts")
    has_parts = parts.struct.field("field_3").is_not_null()
    orders = valid.select(
        order_no.alias("order_no"),
        _text(det, "raw_status").alias("raw_status"),
        _text(det, "buyer_key").alias("buyer_key"),
        _text(det, "receiver_name").alias("receiver_name"),
        pl.coalesce(_text(det, "mobile"), _text(det, "phone")).alias("receiver_phone"),
        pl.when(has_parts)
        .then(parts.struct.field("field_3").str.strip_chars())
        .otherwise(address.str.replace(r"\(\d{6}\)$", "").str.strip_chars())
        .alias("receiver_address"),
        *(
            pl.when(has_parts).then(parts.struct.field(f"field_{i}")).alias(name)
            for i, name in enumerate(("province", "city", "district"))
        ),
        postal.alias("postal_code"),
        _money(det, "goods_total").alias("goods_total_fen"),
        _money(det, "shipping").alias("shipping_fen"),
        _money(det, "total").alias("total_fen"),
        _money(det, "paid").fill_null(0).alias("paid_fen"),
        _money(det, "received").alias("received_fen"),
        _money(det, "refund").alias("list_refund_fen"),
        _time(det, "ordered_at").alias("ordered_at"),
        _time(det, "paid_at").alias("paid_at"),
        _time(det, "shipped_at").alias("shipped_at"),
        _time(det, "completed_at").alias("completed_at"),
        _text(det, "buyer_message")
        .str.replace_all("\r\n", "\n", literal=True)
        .alias("buyer_message"),
        _text(det, "seller_memo").str.replace_all("\r\n", "\n", literal=True).alias("seller_memo"),
        (c.integer(f["item_count"]) if "item_count" in f else pl.lit(None, pl.Int64)).alias(
            "list_item_count"
        ),
        _text(det, "close_reason").alias("close_reason"),
        pl.lit(table.file).alias("file"),
        pl.col(LINE).alias("line"),
    )
    return orders, rejected


def item_checks(table: RawTable, det: Detected) -> list[Check]:
    f = det.fields
    checks = [id_problem(f["order_no"], ORDER_NO_RE)]
    money = in_header_order(table.header, [f[m] for m in ITEM_MONEY if m in f])
    checks += [Check(c.money_problem(col), col) for col in money]
    checks.append(Check(c.integer_problem(f["quantity"]), f["quantity"]))
    return checks


def parse_items(
    table: RawTable, det: Detected, order_nos: pl.Series
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(items, rejections); an item of none of the list's `order_nos` keeps its `raw` record
    for its rejection (the others' would be a large import's biggest column, never used)."""
    checks = item_checks(table, det)
    known = order_nos.implode()
    parts = table.parse_batches(lambda cells: _items(cells, table, det, checks, known))
    items = pl.concat([part[0] for part in parts])
    rejected = pl.concat([bad_rejections(table, det.fields["order_no"]), *(p[1] for p in parts)])
    return items, rejected


def _items(
    cells: pl.DataFrame, table: RawTable, det: Detected, checks: list[Check], known: pl.Series
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(items, rejections) of one batch of the detail file's cells."""
    f = det.fields
    order_no = pl.col(f["order_no"])
    numbers = [f[m] for m in (*ITEM_MONEY, "quantity") if m in f]
    frame = c.clean(cells, list(f.values()), numbers, [])
    valid, rejected = split_valid(frame, checks, table.file, order_no, table.raw_of_cells())
    del frame
    items = valid.select(
        order_no.alias("order_no"),
        _text(det, "sub_order_no").alias("sub_order_no"),
        _text(det, "title").alias("title"),
        _text(det, "sku").alias("sku"),
        _text(det, "merchant_code").alias("merchant_code"),
        _text(det, "product_id").alias("product_id"),
        c.integer(f["quantity"]).fill_null(1).alias("quantity"),
        _money(det, "unit_price").alias("unit_price_fen"),
        _money(det, "paid").alias("paid_fen"),
        _text(det, "refund_status").alias("refund_status"),
        _money(det, "refund").alias("refund_fen"),
        pl.lit(table.file).alias("file"),
        pl.col(LINE).alias("line"),
        pl.when(order_no.is_in(known))
        .then(pl.lit(None, pl.String))
        .otherwise(table.raw_of_cells())
        .alias("raw"),
    )
    return items, rejected


def join(
    orders: pl.DataFrame,
    rejected_orders: pl.DataFrame,
    items: pl.DataFrame | None,
    item_file_column: str = JOIN_COLUMN,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(orders in ORDER_SCHEMA, items in ITEM_SCHEMA, rejections of orphan items)."""
    if items is None:
        items = pl.DataFrame(schema=ITEM_SCHEMA | {"raw": pl.String()})
    # marked by membership, not joins: a join copied every item column twice
    marked = items.with_columns(
        pl.col("order_no").is_in(orders.get_column("order_no").implode()).alias("__known"),
        pl.col("order_no")
        .is_in(rejected_orders.get_column("order_no").implode())
        .alias("__failed"),
    )
    orphans = marked.filter(~pl.col("__known"))
    orphan_rejections = orphans.select(
        "file",
        "line",
        pl.lit(item_file_column).alias("column"),
        pl.when(pl.col("__failed"))
        .then(pl.lit("item_without_valid_order"))
        .otherwise(pl.lit("item_without_order"))
        .alias("reason"),
        "order_no",
        "raw",
    ).cast(REJECTION_SCHEMA)  # type: ignore[arg-type]
    # Items come in file order (line ascending) and filtering keeps it: no sort, which copied
    # every item column.
    kept = (
        marked.lazy()  # one plan: the raw text and markers are dropped before the filter copies
        .filter(pl.col("__known"))
        .with_columns((pl.int_range(pl.len()).over("order_no") + 1).alias("line_no"))
        .select(list(ITEM_SCHEMA))
        .cast(ITEM_SCHEMA)  # type: ignore[arg-type]
        .collect()
    )
    facts = kept.group_by("order_no").agg(
        pl.col("refund_fen").sum().alias("__item_refund"),
        pl.col("refund_fen").is_not_null().any().alias("__has_item_refund"),
        pl.col("quantity").sum().alias("__pieces"),
        pl.col("refund_status").is_in(REFUND_REQUESTED).any().alias("__requested"),
    )
    full = orders.join(facts, on="order_no", how="left")
    refund = (
        pl.when(pl.col("list_refund_fen").is_not_null())
        .then(pl.col("list_refund_fen"))
        .when(pl.col("__has_item_refund"))
        .then(pl.col("__item_refund"))
        .otherwise(0)
    )
    full = full.with_columns(refund.alias("refund_fen"))
    full = full.with_columns(
        order_status().alias("status"),
        pl.lit(None, pl.String).alias("after_sale_status"),
        c.masked(pl.col("buyer_key")).alias("buyer_key_masked"),
        pl.when(pl.col("paid_fen") > 0)
        .then((pl.col("total_fen") - pl.col("paid_fen")).clip(lower_bound=0))
        .otherwise(None)
        .alias("discount_fen"),
        pl.coalesce(pl.col("list_item_count"), pl.col("__pieces")).alias("item_count"),
    )
    return full.select(list(ORDER_SCHEMA)).cast(ORDER_SCHEMA), kept, orphan_rejections  # type: ignore[arg-type]


def order_status() -> pl.Expr:
    """Normalised status from 订单状态, 订单关闭原因, payment and refunds (notes 1.8)."""
    raw = status_text(pl.col("raw_status"))
    paid = pl.col("paid_fen")
    refund = pl.col("refund_fen")
    was_paid = pl.col("paid_at").is_not_null() | (paid > 0)
    base = (
        pl.when(raw.is_in(PENDING))
        .then(pl.lit("pending_payment"))
        .when(raw == "买家已付款，等待卖家发货")
        .then(pl.lit("paid"))
        .when(raw.is_in(SHIPPED))
        .then(pl.lit("shipped"))
        .when(raw == "买家已签收，回款至卖家")
        .then(pl.lit("completed"))
        .when(raw == "交易成功")
        .then(
            pl.when((paid > 0) & (refund >= paid))
            .then(pl.lit("refunded"))
            .when(refund > 0)
            .then(pl.lit("partially_refunded"))
            .otherwise(pl.lit("completed"))
        )
        .when(raw == "交易关闭")
        .then(
            pl.when(pl.col("close_reason") == "买家未付款")
            .then(pl.lit("closed"))
            .when((pl.col("close_reason") == "退款") | (refund > 0) | was_paid)
            .then(pl.lit("refunded"))
            .otherwise(pl.lit("closed"))
        )
        .otherwise(pl.lit("closed"))
    )
    in_progress = base.is_in(["paid", "shipped", "completed", "partially_refunded"])
    return (
        pl.when(pl.col("__requested").fill_null(False) & in_progress)
        .then(pl.lit("refunding"))
        .otherwise(base)
    )
