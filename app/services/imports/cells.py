"""Cell normalisation as polars expressions: text, ids, money in fen and Shanghai times.

`clean` runs `text` once over every column a parser uses; the other expressions expect cleaned
columns (one pass each keeps polars' query plans small and fast).

Everything stays columnar. Money is parsed from its decimal text (never through a float), so
`0.29` is 29 fen exactly; values with more than two decimals (floats written by Excel, e.g.
`17.799999999999997`) are rounded half up on the third decimal.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

SHANGHAI = "Asia/Shanghai"
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


def text(col: str) -> pl.Expr:
    """Strip tabs, spaces and newlines, the `="..."` wrapper and a leading `'`; empty -> null."""
    e = pl.col(col).str.strip_chars(" \t\r\n\u3000")
    e = (
        pl.when(e.str.starts_with('="') & e.str.ends_with('"'))
        .then(e.str.slice(2).str.strip_suffix('"'))
        .otherwise(e)
    )
    e = e.str.strip_prefix("'").str.strip_chars(" \t\r\n")
    return pl.when(e.is_in(EMPTY_MARKERS) | e.is_null()).then(None).otherwise(e)


def clean(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    return frame.with_columns(text(col).alias(col) for col in dict.fromkeys(columns))


def money_text(col: str) -> pl.Expr:
    """Money cell with decorations removed (`元`, `¥`, thousands `,`, `(12.00)` -> `-12.00`)."""
    e = pl.col(col).str.replace_all(r"[元¥￥,\s]", "")
    e = (
        pl.when(e.str.starts_with("(") & e.str.ends_with(")"))
        .then(pl.lit("-") + e.str.slice(1).str.strip_suffix(")"))
        .otherwise(e)
    )
    return pl.when(e.is_in([*NO_REFUND_MARKERS, ""])).then(None).otherwise(e)


def money_problem(col: str) -> pl.Expr:
    """`amount_not_numeric`, `amount_negative` or null for a good or empty money cell."""
    e = money_text(col)
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
    e = money_text(col)
    return pl.when(e.str.contains(MONEY_RE)).then(fen_of(e)).otherwise(None)


def fen_of(e: pl.Expr) -> pl.Expr:
    """Decimal text -> fen, exactly: integer part * 100 + two decimals, half up on the third."""
    negative = e.str.starts_with("-")
    digits = e.str.strip_prefix("-")
    whole = digits.str.extract(r"^(\d*)", 1)
    frac = digits.str.extract(r"\.(\d*)$", 1).fill_null("")
    whole_fen = (
        pl.when(whole == "").then(pl.lit(0, pl.Int64)).otherwise(whole.cast(pl.Int64, strict=False))
        * 100
    )
    cents = (frac + "000").str.slice(0, 2).cast(pl.Int64, strict=False)
    round_up = ((frac + "000").str.slice(2, 1).cast(pl.Int64, strict=False) >= 5).cast(pl.Int64)
    value = whole_fen + cents + round_up
    return pl.when(negative).then(-value).otherwise(value)


def integer(col: str) -> pl.Expr:
    """Counts such as 购买数量 (`1\\t`, `2.0` from Excel); null when not a whole number."""
    e = money_text(col)
    return (
        pl.when(e.str.contains(r"^\d+(\.0*)?$"))
        .then(e.str.extract(r"^(\d+)", 1).cast(pl.Int64, strict=False))
        .otherwise(None)
    )


def integer_problem(col: str) -> pl.Expr:
    e = money_text(col)
    return (
        pl.when(e.is_null() | e.str.contains(r"^\d+(\.0*)?$"))
        .then(None)
        .otherwise(pl.lit("quantity_not_numeric"))
    )


def local_time(col: str) -> pl.Expr:
    """Naive Shanghai wall time from the formats exports use (incl. Excel's `2024/4/27 23:10`)."""
    e = pl.col(col)
    tries = [e.str.to_datetime(f, strict=False, time_unit="us") for f in TIME_FORMATS]
    tries += [e.str.to_date(f, strict=False).cast(pl.Datetime("us")) for f in DATE_FORMATS]
    return pl.coalesce(tries)


def time_problem(col: str, limit: datetime | None) -> pl.Expr:
    """`timestamp_invalid` for unreadable text, `timestamp_in_future` after the export time."""
    parsed = local_time(col)
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
    return local.dt.replace_time_zone(
        SHANGHAI, ambiguous="earliest", non_existent="null"
    ).dt.convert_time_zone("UTC")


def masked(e: pl.Expr) -> pl.Expr:
    """True when a personal-data value is a mask (`张**`, `138****1234`, `pl***@163.com`)."""
    return e.str.contains("*", literal=True)
