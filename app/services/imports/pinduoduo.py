"""Pinduoduo order export (one row per order, one goods SKU) into canonical orders and items.

Identity: `收货人|手机` as written (masked or plain) in the 2020 layout; none in the 2023 layout
(no receiver columns), so those orders stay anonymous. Status: format notes section 2.5, with the
after-sale column (售后状态) overlaying 订单状态.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from app.services.imports import cells as c
from app.services.imports.export import ITEM_SCHEMA, ORDER_SCHEMA, UTC_TIME
from app.services.imports.headers import Detected
from app.services.imports.rows import (
    Check,
    id_problem,
    in_header_order,
    split_valid,
    status_problem,
)
from app.services.imports.table import LINE, RawTable, bad_rejections

ORDER_NO_RE = r"^\d{6}-\d+$"
MONEY = (
    "goods_total",
    "shipping",
    "shop_discount",
    "platform_discount",
    "pay_discount",
    "paid",
    "received",
)
SHIPPED = ("已发货，待签收", "已发货，待收货")
COMPLETED = ("已签收", "已收货")
REFUNDED = (
    "未发货，退款成功",
    "已发货，退款成功",
    "已签收，退款成功",
    "已收货，退款成功",
    "已取消，退款成功",
    "未成交，退款成功",
)
KNOWN_STATUSES = ("待支付", "待发货", *SHIPPED, *COMPLETED, *REFUNDED, "已取消")
# 售后状态 values that mean a request is open (notes 2.5, P8, P10); withdrawn or refused ones
# (无售后或售后取消, 商家拒绝退款，退款关闭, 售后关闭) leave 订单状态 in charge.
AFTER_SALE_OPEN = (
    "售后处理中",
    "退款中",
    "平台处理中",
    "买家申请退款，待商家处理",
    "退货退款，待商家处理",
    "商家同意退款，退款中",
    "驳回退款，待用户处理",
    "已同意退货退款,待用户发货",
    "已同意退货退款，待用户发货",
    "退货完成，待退款",
)


def _text(det: Detected, field: str) -> pl.Expr:
    column = det.fields.get(field)
    return pl.col(column) if column else pl.lit(None, pl.String)


def _money(det: Detected, field: str) -> pl.Expr:
    column = det.fields.get(field)
    return c.money_fen(column) if column else pl.lit(None, pl.Int64)


def _time(det: Detected, field: str) -> pl.Expr:
    column = det.fields.get(field)
    return c.to_utc(c.local_time(column)) if column else pl.lit(None, UTC_TIME)


def status_text(raw: pl.Expr) -> pl.Expr:
    return raw.str.replace_all(",", "，", literal=True)


def checks(table: RawTable, det: Detected, limit: datetime | None) -> list[Check]:
    f = det.fields
    result = [id_problem(f["order_no"], ORDER_NO_RE)]
    money = in_header_order(table.header, [f[m] for m in MONEY if m in f])
    result += [Check(c.money_problem(col), col) for col in money]
    time_columns = dict.fromkeys(
        f[field] for field in ("ordered_at", "paid_at", "shipped_at", "completed_at") if field in f
    )
    bounded = {f.get("ordered_at"), f.get("paid_at")}
    result += [
        Check(c.time_problem(col, limit if col in bounded else None), col) for col in time_columns
    ]
    if "quantity" in f:
        result.append(Check(c.integer_problem(f["quantity"]), f["quantity"]))
    result.append(
        status_problem(status_text(pl.col(f["raw_status"])), f["raw_status"], KNOWN_STATUSES)
    )
    return result


def parse_orders(
    table: RawTable, det: Detected, limit: datetime | None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(orders in ORDER_SCHEMA, items in ITEM_SCHEMA, rejections)."""
    row_checks = checks(table, det, limit)
    parts = table.parse_batches(lambda cells: _orders(cells, table, det, row_checks))
    orders = pl.concat([part[0] for part in parts])
    items = pl.concat([part[1] for part in parts])
    rejected = pl.concat([bad_rejections(table, det.fields["order_no"]), *(p[2] for p in parts)])
    return orders, items, rejected


def _orders(
    cells: pl.DataFrame, table: RawTable, det: Detected, row_checks: list[Check]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(orders, items, rejections) of one batch of the export's cells."""
    f = det.fields
    order_no = pl.col(f["order_no"])
    numbers = [f[m] for m in (*MONEY, "quantity") if m in f]
    times = [f[t] for t in ("ordered_at", "paid_at", "shipped_at", "completed_at") if t in f]
    frame = c.clean(cells, list(f.values()), numbers, times)
    valid, rejected = split_valid(frame, row_checks, table.file, order_no, table.raw_of_cells())
    del frame
    name, phone = _text(det, "receiver_name"), _text(det, "receiver_phone")
    has_identity = name.is_not_null() | phone.is_not_null()
    buyer_key = pl.when(has_identity).then(
        pl.concat_str([name.fill_null(""), phone.fill_null("")], separator="|")
    )
    discounts = [_money(det, d) for d in ("shop_discount", "platform_discount", "pay_discount")]
    id_date = order_no.str.slice(0, 6).str.to_date("%y%m%d", strict=False).cast(pl.Datetime("us"))
    frame = valid.select(
        order_no.alias("order_no"),
        _text(det, "raw_status").alias("raw_status"),
        _text(det, "after_sale_status").alias("after_sale_status"),
        buyer_key.alias("buyer_key"),
        (c.masked(name).fill_null(False) | c.masked(phone).fill_null(False)).alias("masked"),
        name.alias("receiver_name"),
        phone.alias("receiver_phone"),
        _text(det, "street").alias("receiver_address"),
        _text(det, "province").alias("province"),
        _text(det, "city").alias("city"),
        _text(det, "district").alias("district"),
        pl.lit(None, pl.String).alias("postal_code"),
        _money(det, "goods_total").alias("goods_total_fen"),
        _money(det, "shipping").alias("shipping_fen"),
        pl.sum_horizontal(discounts).alias("discount_fen")
        if any(d in f for d in ("shop_discount", "platform_discount", "pay_discount"))
        else pl.lit(None, pl.Int64).alias("discount_fen"),
        _money(det, "paid").fill_null(0).alias("paid_fen"),
        _money(det, "received").alias("received_fen"),
        pl.coalesce(_time(det, "ordered_at"), _time(det, "paid_at"), c.to_utc(id_date)).alias(
            "ordered_at"
        ),
        _time(det, "paid_at").alias("paid_at"),
        _time(det, "shipped_at").alias("shipped_at"),
        _time(det, "completed_at").alias("completed_at"),
        _text(det, "buyer_message")
        .str.replace_all("\r\n", "\n", literal=True)
        .alias("buyer_message"),
        _text(det, "seller_memo").str.replace_all("\r\n", "\n", literal=True).alias("seller_memo"),
        (c.integer(f["quantity"]) if "quantity" in f else pl.lit(None, pl.Int64))
        .fill_null(1)
        .alias("item_count"),
        _text(det, "title").alias("title"),
        _text(det, "sku").alias("sku"),
        _text(det, "merchant_code").alias("merchant_code"),
        _text(det, "product_id").alias("product_id"),
        pl.lit(table.file).alias("file"),
        pl.col(LINE).alias("line"),
    )
    frame = frame.with_columns(order_status().alias("status"))
    frame = frame.with_columns(
        pl.when(pl.col("status") == "refunded")
        .then(pl.col("paid_fen"))
        .otherwise(0)
        .alias("refund_fen"),
        pl.when(pl.col("buyer_key").is_not_null()).then(pl.col("masked")).alias("buyer_key_masked"),
    )
    orders = frame.select(list(ORDER_SCHEMA)).cast(ORDER_SCHEMA)  # type: ignore[arg-type]
    quantity = pl.col("item_count")
    items = frame.select(
        "order_no",
        pl.lit(1).alias("line_no"),
        pl.lit(None, pl.String).alias("sub_order_no"),
        "title",
        "sku",
        "merchant_code",
        "product_id",
        quantity.alias("quantity"),
        pl.when((quantity > 0) & (pl.col("goods_total_fen") % quantity == 0))
        .then(pl.col("goods_total_fen") // quantity)
        .alias("unit_price_fen"),
        "paid_fen",
        pl.col("after_sale_status").alias("refund_status"),
        "refund_fen",
        "file",
        "line",
    ).cast(ITEM_SCHEMA)  # type: ignore[arg-type]
    return orders, items, rejected


def order_status() -> pl.Expr:
    raw = status_text(pl.col("raw_status"))
    after_sale = pl.col("after_sale_status").fill_null("")
    base = (
        pl.when(raw == "待支付")
        .then(pl.lit("pending_payment"))
        .when(raw == "待发货")
        .then(pl.lit("paid"))
        .when(raw.is_in(SHIPPED))
        .then(pl.lit("shipped"))
        .when(raw.is_in(COMPLETED))
        .then(pl.lit("completed"))
        .when(raw.is_in(REFUNDED))
        .then(pl.lit("refunded"))
        .otherwise(pl.lit("closed"))
    )
    open_request = after_sale.is_in(AFTER_SALE_OPEN) | after_sale.str.starts_with("买家申请")
    live = base.is_in(["paid", "shipped", "completed"])
    return (
        pl.when(live & open_request)
        .then(pl.lit("refunding"))
        .when(live & (after_sale == "部分退款成功"))
        .then(pl.lit("partially_refunded"))
        .when(live & (after_sale == "退款成功"))
        .then(pl.lit("refunded"))
        .otherwise(base)
    )
