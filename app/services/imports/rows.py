"""Row validation shared by the platform parsers: the first problem of a row rejects it.

A check is a polars expression giving a reason code (or null) and the header it is about; rows
with a reason become rejections, the others go on. Valid rows are never held back by bad ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from app.services.imports.cells import SCIENTIFIC_RE
from app.services.imports.export import REJECTION_SCHEMA
from app.services.imports.table import LINE

REASON = "__reason"
COLUMN = "__column"


@dataclass(frozen=True)
class Check:
    problem: pl.Expr  # reason code or null
    column: str | None  # header name as written (normalised), None for the whole record


def id_problem(column: str, pattern: str) -> Check:
    """Order numbers: present, a plain id, not Excel's scientific notation (`5.57627E+18`)."""
    value = pl.col(column)
    problem = (
        pl.when(value.is_null())
        .then(pl.lit("order_no_missing"))
        .when(value.str.contains(SCIENTIFIC_RE))
        .then(pl.lit("order_no_scientific_notation"))
        .when(~value.str.contains(pattern))
        .then(pl.lit("order_no_invalid"))
        .otherwise(None)
    )
    return Check(problem, column)


def status_problem(status: pl.Expr, column: str, known: tuple[str, ...]) -> Check:
    """Statuses: present and one the platform's notes list (cleaned text in `status`)."""
    problem = (
        pl.when(status.is_null())
        .then(pl.lit("status_missing"))
        .when(~status.is_in(known))
        .then(pl.lit("status_unknown"))
        .otherwise(None)
    )
    return Check(problem, column)


def split_valid(
    frame: pl.DataFrame, checks: list[Check], file: str, order_no: pl.Expr, raw: pl.Expr
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows without problems, REJECTION_SCHEMA rows for the others)."""
    if not checks:
        return frame, empty_rejections()
    # Each check gets its own column first: one big nested expression makes polars' planner slow.
    names = [f"__check{i}" for i in range(len(checks))]
    marked = frame.with_columns(c.problem.alias(n) for c, n in zip(checks, names, strict=True))
    reason = pl.coalesce([pl.col(n) for n in names])
    column = pl.coalesce(
        [
            pl.when(pl.col(n).is_not_null()).then(pl.lit(c.column, pl.String))
            for c, n in zip(checks, names, strict=True)
        ]
    )
    marked = marked.with_columns(reason.alias(REASON), column.alias(COLUMN)).drop(names)
    bad = marked.filter(pl.col(REASON).is_not_null())
    rejections = bad.select(
        pl.lit(file).alias("file"),
        pl.col(LINE).alias("line"),
        pl.col(COLUMN).alias("column"),
        pl.col(REASON).alias("reason"),
        order_no.alias("order_no"),
        raw.alias("raw"),
    ).cast(REJECTION_SCHEMA)  # type: ignore[arg-type]
    valid = marked.filter(pl.col(REASON).is_null()).drop(REASON, COLUMN)
    return valid, rejections


def empty_rejections() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECTION_SCHEMA)


def in_header_order(header: list[str], columns: list[str]) -> list[str]:
    return sorted(columns, key=header.index)
