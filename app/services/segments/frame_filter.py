"""The filter language over a tenant's customer frame (member_frames.py): a polars expression.

It answers exactly what compiler.py's SQL answers, NULL logic included: polars' `&` and `|` are
three-valued like SQL's `AND` and `OR`, a comparison with a missing value is missing, and `not`
is `IS NOT TRUE`. The frame holds each field with a default already coalesced (a customer no
import has touched has 0 orders and is a prospect), as the SQL does whenever it matters. A tree
that names anything the frame does not hold (orders, products, identities, loyalty, tickets)
compiles to None and runs in SQL. An `ordered` condition is counted over the frame's buying
orders, whose item lines' categories are a bit mask computed when the frame was loaded with the
tenant's rules of that moment (a rule change makes the frame stale). The tree has already passed
`compile_filter`, which reported any error in it with its path.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from typing import Any

import polars as pl

from app.services.segments.compiler import (
    datetime_value,
    integer_value,
    list_value,
    one_or_many,
    scalar_value,
    uuid_value,
)
from app.services.segments.fields import FIELDS, Field, FieldType, QueryContext

_LISTS = (FieldType.string_list, FieldType.enum_list, FieldType.uuid_list)
_TIME = pl.Datetime("us", "UTC")
_DAY_US = 86_400_000_000

# The fields a frame holds, each a column of that name (`days_since_last_order` is computed
# from `last_order_at` at the request's `now`).
FRAME_FIELDS = frozenset(
    {
        "display_name",
        "gender",
        "birthday",
        "province",
        "city",
        "district",
        "created_at",
        "tags",
        "order_count",
        "total_spent_fen",
        "avg_order_value_fen",
        "refund_count",
        "refund_fen",
        "refund_rate",
        "first_order_at",
        "last_order_at",
        "days_since_last_order",
        "platforms",
        "shops",
        "categories",
        "rfm_r",
        "rfm_f",
        "rfm_m",
        "rfm_group",
        "lifecycle_stage",
        "lifecycle_since",
    }
)


# Order conditions the frame's orders cannot answer (item lines are not held one by one).
_ITEM_KEYS = ("product", "product_prefix", "title_contains")


@dataclass(frozen=True)
class Frame:
    customers: pl.DataFrame
    """Live customers in id order, a column per field of FRAME_FIELDS plus `id_hi`, `id_lo`."""
    orders: pl.DataFrame
    """Buying orders (paid, not pending payment) in customer order: `row` (their customer's
    position in `customers`), `paid_at`, `paid_fen`, `platform`, `shop_id`, `categories` (a
    bit mask)."""
    categories: dict[str, int] | None
    """Each of the tenant's categories' bit in the mask; None when there are too many."""
    masks: dict[str, dict[str, int]]
    """List fields held as a bit mask of their values (when they have at most 63 distinct
    values): each value's bit, by field. A list is then a bit test instead of a scan."""


class _Unsupported(Exception):
    """The tree names something the frame does not hold."""


def frame_filter(tree: Any, ctx: QueryContext, frame: Frame) -> pl.Expr | None:
    """The condition as an expression over `frame.customers` (null counts as false), or None."""
    try:
        return _node(tree, ctx, frame).fill_null(False)
    except _Unsupported:
        return None


def frame_narrowing(tree: Any, ctx: QueryContext, frame: Frame) -> pl.Expr | None:
    """For an `and` of which the frame holds only some parts: those parts, which every match
    passes (the rest, such as `ordered`, then need checking only for the customers they keep)."""
    if not (isinstance(tree, dict) and len(tree) == 1 and isinstance(tree.get("and"), list)):
        return None
    parts = [p for p in (frame_filter(child, ctx, frame) for child in tree["and"]) if p is not None]
    return reduce(operator.and_, parts) if parts else None


def _node(node: dict[str, Any], ctx: QueryContext, frame: Frame) -> pl.Expr:
    key = next(iter(node))
    if len(node) == 1 and key in ("and", "or"):
        parts = [_node(child, ctx, frame) for child in node[key]]
        return reduce(operator.and_ if key == "and" else operator.or_, parts)
    if len(node) == 1 and key == "not":
        return ~_node(node["not"], ctx, frame).fill_null(False)
    if len(node) == 1 and key == "ordered":
        return _ordered(node["ordered"], ctx, frame)
    spec = FIELDS[node["field"]]
    if spec.name not in FRAME_FIELDS:
        raise _Unsupported
    return _condition(spec, node["op"], node["value"], ctx, frame)


def _ordered(spec: dict[str, Any], ctx: QueryContext, frame: Frame) -> pl.Expr:
    """Customers with at least `min_times` buying orders passing every test, as compiler.py's
    `ordered` (a flag per customer row, computed here over the orders)."""
    if any(key in spec for key in _ITEM_KEYS):
        raise _Unsupported
    tests: list[pl.Expr] = []
    if "category" in spec:
        if frame.categories is None:
            raise _Unsupported
        bit = frame.categories.get(spec["category"])
        # A category without rules has no item lines, as in SQL.
        tests.append(pl.lit(False) if bit is None else (pl.col("categories") & (1 << bit)) != 0)
    loc: list[str | int] = ["filter"]  # the tree is valid: compile_filter checked it
    if "shop_id" in spec:
        tests.append(pl.col("shop_id") == str(uuid_value(spec["shop_id"], loc)))
    if "platform" in spec:
        tests.append(pl.col("platform") == spec["platform"])
    if "within_days" in spec:
        since = ctx.now - timedelta(days=integer_value(spec["within_days"], loc))
        tests.append(pl.col("paid_at") >= _lit(since))
    if "since" in spec:
        tests.append(pl.col("paid_at") >= _lit(datetime_value(spec["since"], loc)))
    if "until" in spec:
        tests.append(pl.col("paid_at") < _lit(datetime_value(spec["until"], loc)))
    if "min_amount_fen" in spec:
        tests.append(pl.col("paid_fen") >= integer_value(spec["min_amount_fen"], loc))
    if "max_amount_fen" in spec:
        tests.append(pl.col("paid_fen") <= integer_value(spec["max_amount_fen"], loc))
    times = integer_value(spec.get("min_times", 1), loc)
    orders = frame.orders.lazy()
    for test in tests:
        orders = orders.filter(test)
    rows = orders.select("row").collect()["row"]
    if times > 1:
        # The orders are in customer order: a customer with `times` of them has one whose
        # customer is the same as that of the order `times - 1` before it.
        rows = rows.filter(rows == rows.shift(times - 1))
    flags = pl.repeat(False, frame.customers.height, eager=True).scatter(rows, True)
    return pl.lit(flags)


def _column(spec: Field, ctx: QueryContext) -> pl.Expr:
    if spec.name == "days_since_last_order":
        elapsed = pl.lit(_utc(ctx.now)) - pl.col("last_order_at")
        return elapsed.dt.total_microseconds() // _DAY_US
    return pl.col(spec.name)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _value(spec: Field, value: Any) -> Any:
    """A parsed filter value as the frame holds it: ids as text (times: `_lit`)."""
    if spec.type is FieldType.uuid_list:
        return str(value)
    return value


def _lit(value: Any) -> pl.Expr:
    """A literal typed like the frame's column: times in UTC to the microsecond, dates."""
    if isinstance(value, datetime):
        return pl.lit(_utc(value), dtype=_TIME)
    if isinstance(value, date):
        return pl.lit(value, dtype=pl.Date)
    return pl.lit(value)


def _condition(spec: Field, op: str, raw: Any, ctx: QueryContext, frame: Frame) -> pl.Expr:
    column = _column(spec, ctx)
    loc: list[str | int] = ["filter"]
    if op == "is_null":
        if spec.type in _LISTS:
            if spec.name in frame.masks:
                empty = column.fill_null(0) == 0
            else:
                empty = column.list.len().fill_null(0) == 0
            return empty if raw else ~empty
        return column.is_null() if raw else column.is_not_null()
    if spec.type in _LISTS:
        mask = frame.masks.get(spec.name)
        if mask is not None:
            return _mask_condition(spec, op, raw, column, mask)
        return _list_condition(spec, op, raw, column)
    nullable = spec.default is None
    if op == "within_days":
        return column >= _lit(ctx.now - timedelta(days=int(raw)))
    if op in ("in", "not_in"):
        values = [_value(spec, v) for v in list_value(spec, raw, loc)]
        inside = column.is_in(_set(values, _dtype(spec)))
        if op == "in":
            return inside
        return column.is_null() | ~inside if nullable else ~inside
    if op == "between":
        low = _value(spec, scalar_value(spec, raw[0], loc))
        high = _value(spec, scalar_value(spec, raw[1], loc))
        return (column >= _lit(low)) & (column <= _lit(high))
    value = _value(spec, scalar_value(spec, raw, loc))
    match op:
        case "eq":
            return column == _lit(value)
        case "ne":
            return column.ne_missing(_lit(value)) if nullable else column != _lit(value)
        case "gt":
            return column > _lit(value)
        case "gte":
            return column >= _lit(value)
        case "lt":
            return column < _lit(value)
        case "lte":
            return column <= _lit(value)
        case "contains":
            return column.str.contains(value, literal=True)
        case "starts_with":
            return column.str.starts_with(value)
    raise AssertionError(op)


def _dtype(spec: Field) -> pl.DataType:
    match spec.type:
        case FieldType.integer | FieldType.money:
            return pl.Int64()
        case FieldType.number:
            return pl.Float64()
        case FieldType.datetime:
            return _TIME
        case FieldType.date:
            return pl.Date()
    return pl.String()


def _set(values: list[Any], dtype: pl.DataType) -> pl.Expr:
    return pl.lit(pl.Series(values, dtype=dtype)).implode()


def _mask_condition(
    spec: Field, op: str, raw: Any, column: pl.Expr, mask: dict[str, int]
) -> pl.Expr:
    """`_list_condition` on a bit mask. A value no customer has matches nobody (a missing array
    matches nobody either, like `@>` and `&&` on NULL)."""
    loc: list[str | int] = ["filter"]
    if op == "contains":
        values = [_value(spec, v) for v in one_or_many(spec, raw, loc)]
        if any(value not in mask for value in values):
            return pl.lit(False)
        wanted = sum({mask[value] for value in values})
        return (column & wanted) == wanted
    values = [_value(spec, v) for v in list_value(spec, raw, loc)]
    anyof = sum({mask[value] for value in values if value in mask})
    overlap = (column & anyof) != 0 if anyof else pl.lit(False)
    if op == "in":
        return overlap
    if op == "not_in":
        return ~overlap.fill_null(False)
    raise AssertionError(op)


def _list_condition(spec: Field, op: str, raw: Any, column: pl.Expr) -> pl.Expr:
    """Array fields: `contains` has every value, `in` has any, `not_in` has none (as `@>` and
    `&&` in SQL: a customer without the array has neither)."""
    loc: list[str | int] = ["filter"]
    if op == "contains":
        values = [_value(spec, v) for v in one_or_many(spec, raw, loc)]
        return reduce(operator.and_, [column.list.contains(value) for value in values])
    values = [_value(spec, v) for v in list_value(spec, raw, loc)]
    # Missing for a missing array, like `&&`.
    overlap = column.list.eval(pl.element().is_in(_set(values, pl.String()))).list.any()
    if op == "in":
        return overlap
    if op == "not_in":
        return ~overlap.fill_null(False)
    raise AssertionError(op)
