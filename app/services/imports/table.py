"""A CSV export as a table of string cells, each record with its physical line number.

The text is split into physical lines by polars; a record continues over line breaks while its
double quotes are unbalanced (line breaks inside quoted 买家留言). That gives every record its
first physical line (header = 1, blank lines and in-cell breaks counted), its field count (bad
counts are rejected, not guessed at) and exact-duplicate detection, all columnar. The good records
are then parsed by polars' CSV reader.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import polars as pl

from app.services.imports.decode import undecodable_utf8
from app.services.imports.export import REJECTION_SCHEMA, ExportFileError
from app.services.imports.headers import looks_like_header, unique_names

HEADER_SEARCH_RECORDS = 30
RAW_LIMIT = 2000
LINE = "__line"
RAW = "__raw"
FIELD_RE = r'(?:[^,"]|"(?:[^"]|"")*")*'
BLANK_RE = r"^[\s,]*$"


@dataclass(frozen=True)
class RawTable:
    """Cells of one export file as written (strings), plus LINE and RAW columns."""

    file: str
    header: list[str]  # normalised, unique column names
    frame: pl.DataFrame  # good records: one String column per header name, LINE, RAW
    bad: pl.DataFrame  # records with the wrong field count: LINE, RAW
    records: int  # data records read (blank lines excluded, duplicates and bad ones included)
    blank_lines: int
    duplicates: int

    def field_of_bad(self, column: str) -> pl.Expr:
        """A column's cell extracted from the raw text of a bad record (for the rejection)."""
        index = self.header.index(column)
        pattern = rf"^(?:{FIELD_RE},){{{index}}}({FIELD_RE})"
        return pl.col(RAW).str.extract(pattern, 1)


def read_csv_table(file: str, data: bytes) -> RawTable:
    try:
        text = pl.Series("t", [data], dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.ComputeError as exc:
        raise undecodable_utf8(file, data) from exc
    ends_with_newline = data.endswith(b"\n")
    del data
    lines = (
        text.to_frame()
        .select(pl.col("t").str.split("\n"))
        .explode("t")
        .with_row_index(LINE, offset=1)
        .with_columns(pl.col(LINE).cast(pl.Int64), pl.col("t").str.strip_suffix("\r"))
    )
    del text
    if ends_with_newline:
        lines = lines.slice(0, lines.height - 1)
    if lines.height == 0 or lines.select(pl.col("t").str.contains(BLANK_RE).all()).item():
        raise ExportFileError("empty", f"{file} is empty", file)
    records = _records(file, lines)
    del lines
    records = records.with_columns(pl.col(RAW).str.contains(BLANK_RE).alias("blank"))
    blank_lines = records.filter(pl.col("blank")).height
    records = records.filter(~pl.col("blank")).drop("blank")
    header_at, header_cells = _find_header(records)
    header = unique_names(header_cells)
    records = records.slice(header_at + 1)
    if records.height == 0:
        raise ExportFileError("empty", f"{file} has a header but no rows", file)
    records = records.with_columns(
        (
            pl.col(RAW).str.replace_all(r'"[^"]*"', "").str.count_matches(",", literal=True) + 1
        ).alias("fields")
    )
    last = records.row(records.height - 1, named=True)
    if not ends_with_newline and last["fields"] < len(header):
        raise ExportFileError(
            "truncated", f"{file} ends in the middle of a row (line {last[LINE]})", file
        )
    total = records.height
    first = records.select(pl.col(RAW).is_first_distinct()).to_series()
    duplicates = total - int(first.sum())
    records = records.filter(first)
    good_mask = pl.col("fields") == len(header)
    bad = records.filter(~good_mask).select(LINE, RAW)
    good = records.filter(good_mask).select(LINE, RAW)
    del records
    frame = _parse_records(file, good, header)
    return RawTable(file, header, frame, bad, total, blank_lines, duplicates)


def _records(file: str, lines: pl.DataFrame) -> pl.DataFrame:
    """Group physical lines into CSV records: a record ends where its quotes balance."""
    lines = lines.with_columns(
        (pl.col("t").str.count_matches('"', literal=True).cum_sum() % 2).alias("open")
    )
    if lines.get_column("open").item(-1) != 0:
        raise ExportFileError(
            "truncated", f"{file} ends inside a quoted cell: the file is cut short", file
        )
    if not (lines.get_column("open") != 0).any():
        return lines.select(LINE, pl.col("t").alias(RAW))
    record = (pl.col("open") == 0).cast(pl.Int64).cum_sum().shift(1, fill_value=0)
    return (
        lines.with_columns(record.alias("record"))
        .group_by("record", maintain_order=True)
        .agg(pl.col(LINE).first(), pl.col("t").str.join("\n").alias(RAW))
        .drop("record")
    )


def _find_header(records: pl.DataFrame) -> tuple[int, list[str]]:
    """The first record that looks like an export header (may not be line 1); else record 1."""
    head = records.get_column(RAW).head(HEADER_SEARCH_RECORDS).to_list()
    parsed = [next(csv.reader(io.StringIO(text)), []) for text in head]
    for i, cells in enumerate(parsed):
        if looks_like_header(cells):
            return i, cells
    return 0, parsed[0]


def _parse_records(file: str, good: pl.DataFrame, header: list[str]) -> pl.DataFrame:
    if good.height == 0:
        return pl.DataFrame(
            {name: pl.Series([], dtype=pl.String) for name in header}
            | {LINE: pl.Series([], dtype=pl.Int64), RAW: pl.Series([], dtype=pl.String)}
        )
    blob = good.select(pl.col(RAW).str.join("\n").cast(pl.Binary)).item() + b"\n"
    cells = pl.read_csv(
        io.BytesIO(blob),
        has_header=False,
        new_columns=header,
        schema_overrides=dict.fromkeys(header, pl.String),
        infer_schema=False,
        quote_char='"',
        truncate_ragged_lines=True,
    )
    del blob
    if cells.height != good.height:
        raise ExportFileError("not_a_table", f"{file}: rows could not be read as CSV records", file)
    return cells.with_columns(good.get_column(LINE), good.get_column(RAW).str.slice(0, RAW_LIMIT))


def bad_rejections(table: RawTable, order_column: str | None) -> pl.DataFrame:
    """Rejections for records whose field count differs from the header's."""
    order_no = (
        table.field_of_bad(order_column)
        .str.strip_chars(" \t")
        .str.replace(r'^="?(.*?)"?$', "$1")
        .str.strip_chars("\"' \t")
        if order_column
        else pl.lit(None, pl.String)
    )
    return table.bad.select(
        pl.lit(table.file).alias("file"),
        pl.col(LINE).alias("line"),
        pl.lit(None, pl.String).alias("column"),
        pl.lit("column_count_mismatch").alias("reason"),
        order_no.alias("order_no"),
        pl.col(RAW).str.slice(0, RAW_LIMIT).alias("raw"),
    ).cast(REJECTION_SCHEMA)  # type: ignore[arg-type]
