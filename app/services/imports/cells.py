"""Cell normalisation as polars expressions: text, ids, money in fen and Shanghai times.

`clean` runs `text` once over every column a parser uses and derives number and time columns;
the check and value expressions read those derived columns.

Everything stays columnar. Money is parsed from its decimal text (never through a float), so
`0.29` is 29 fen exactly; values with more than two decimals (floats written by Excel, e.g.
`17.799999999999997`) are rounded half up on the third decimal.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

SHANGHAI_OFFSET_HOURS = 8
# Markers that mean "no value" in exports (format notes 1.5 and 3).
EMPTY_MARKERS = ["", "-", "null", "NULL", "None"]
NO_REFUND_MARKERS = ["无退款申请", "没有申请退款"]
MONEY_RE = r"^-?(\d+(\.\d*)?|\.\d+)$"
SCIENTIFIC_RE = r"^[0-9]+(\.[0-9]+)?[eE][+-]?[0-9]+$"
TIME_FORMATS = [
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
]
DATE_FORMATS = ["%Y-%m-%d", "%Y/%m/%d"]


NUMBER = "__number:"  # prefix of the derived column holding a money/count cell's bare number
TIME = "__time:"  # prefix of the derived column holding a time cell's naive Shanghai time


def text(col: str, unwrap: bool = True) -> pl.Expr:
    """Strip tabs, spaces and newlines, the `="..."` wrapper and a leading `'`; empty -> null."""
    e = pl.col(col).str.strip_chars(" \t\r\n\u3000")
    if unwrap:
        e = e.str.replace(r'(?s)^="(.*)"$', "$1")
    return e.str.strip_prefix("'").replace(EMPTY_MARKERS, None)


def clean(
    frame: pl.DataFrame, texts: list[str], numbers: list[str], times: list[str]
) -> pl.DataFrame:
    """Clean every used column once and derive the number and time columns the checks read.

    Expressions here never reuse a sub-expression (polars would evaluate it again for every
    use, and nested reuse multiplies): each step reads a materialised column instead.
    """
    texts = list(dict.fromkeys(texts))
    wrapped = frame.select(pl.col(col).str.contains('="', literal=True).any() for col in texts)
    frame = frame.with_columns(
        text(col, unwrap=bool(wrapped.get_column(col).item())).alias(col) for col in texts
    )
    frame = frame.with_columns(
        _number_text(col).alias(NUMBER + col) for col in dict.fromkeys(numbers)
    )
    return frame.with_columns(
        _local_time(frame, col).alias(TIME + col) for col in dict.fromkeys(times)
    )


def _number_text(col: str) -> pl.Expr:
    """Money cell with decorations removed (`元`, `¥`, thousands `,`, `(12.00)` -> `-12.00`)."""
    e = pl.col(col).str.replace_all(r"[元¥￥,\s]", "").str.replace(r"^\((.*)\)$", "-$1")
    return pl.when(e.is_in([*NO_REFUND_MARKERS, ""])).then(None).otherwise(e)


def _local_time(frame: pl.DataFrame, col: str) -> pl.Expr:
    """Naive Shanghai wall time from the formats exports use (incl. Excel's `2024/4/27 23:10`).

    The usual `yyyy-MM-dd HH:mm:ss` is tried alone first; the other formats only when some
    cell of the column needs them (parsing every format for every cell is slow)."""
    e = pl.col(col)
    first = e.str.to_datetime(TIME_FORMATS[0], strict=False, time_unit="us")
    if not frame.select((e.is_not_null() & first.is_null()).any()).item():
        return first
    tries = [e.str.to_datetime(f, strict=False, time_unit="us") for f in TIME_FORMATS]
    tries += [e.str.to_date(f, strict=False).cast(pl.Datetime("us")) for f in DATE_FORMATS]
    return pl.coalesce(tries)


def money_problem(col: str) -> pl.Expr:
    """`amount_not_numeric`, `amount_negative` or null for a good or empty money cell."""
    e = pl.col(NUMBER + col)
    return (
        pl.when(e.is_null())
        .then(None)
        .when(~e.str.contains(MONEY_RE))
        .then(pl.lit("amount_not_numeric"))
        .when(e.str.starts_with("-") & (fen_of(e) != 0))
        .then(pl.lit("amount_negative"))
        .otherwise(None)
    )


def money_fen(col: str) -> pl.Expr:
    """Fen as Int64 for good cells; null for empty or bad ones (bad rows are rejected anyway)."""
    e = pl.col(NUMBER + col)
    return pl.when(e.str.contains(MONEY_RE)).then(fen_of(e)).otherwise(None)


def fen_of(e: pl.Expr) -> pl.Expr:
    """Decimal text -> fen, exactly: integer part * 100 + two decimals, half up on the third.

    `e` must be a column reference (it is read several times)."""
    parts = e.str.strip_prefix("-").str.split_exact(".", 1)
    whole = parts.struct.field("field_0").cast(pl.Int64, strict=False).fill_null(0)
    frac = parts.struct.field("field_1").fill_null("").str.pad_end(3, "0")
    cents = frac.str.slice(0, 2).cast(pl.Int64, strict=False).fill_null(0)
    round_up = (frac.str.slice(2, 1).cast(pl.Int64, strict=False).fill_null(0) >= 5).cast(pl.Int64)
    value = whole * 100 + cents + round_up
    return pl.when(e.str.starts_with("-")).then(-value).otherwise(value)


def integer(col: str) -> pl.Expr:
    """Counts such as 购买数量 (`1\\t`, `2.0` from Excel); null when not a whole number."""
    e = pl.col(NUMBER + col)
    return (
        pl.when(e.str.contains(r"^\d+(\.0*)?$"))
        .then(e.str.extract(r"^(\d+)", 1).cast(pl.Int64, strict=False))
        .otherwise(None)
    )


def integer_problem(col: str) -> pl.Expr:
    e = pl.col(NUMBER + col)
    return (
        pl.when(e.is_null() | e.str.contains(r"^\d+(\.0*)?$"))
        .then(None)
        .otherwise(pl.lit("quantity_not_numeric"))
    )


def local_time(col: str) -> pl.Expr:
    return pl.col(TIME + col)


def time_problem(col: str, limit: datetime | None) -> pl.Expr:
    """`timestamp_invalid` for unreadable text, `timestamp_in_future` after the export time."""
    parsed = pl.col(TIME + col)
    invalid = pl.col(col).is_not_null() & parsed.is_null()
    if limit is None:
        return pl.when(invalid).then(pl.lit("timestamp_invalid")).otherwise(None)
    return (
        pl.when(invalid)
        .then(pl.lit("timestamp_invalid"))
        .when(parsed > pl.lit(limit))
        .then(pl.lit("timestamp_in_future"))
        .otherwise(None)
    )


def to_utc(local: pl.Expr) -> pl.Expr:
    """Shanghai wall time -> UTC. China has kept UTC+8 without daylight saving since 1991, so a
    fixed offset is exact for every export (and far cheaper than a tz database lookup)."""
    return (local - pl.duration(hours=SHANGHAI_OFFSET_HOURS)).dt.replace_time_zone("UTC")


def masked(e: pl.Expr) -> pl.Expr:
    """True when a personal-data value is a mask (`张**`, `138****1234`, `pl***@163.com`)."""
    return e.str.contains("*", literal=True)
