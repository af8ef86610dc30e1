"""XLSX exports: zip-bomb guard, then the first sheet as a table of string cells via fastexcel.

fastexcel (calamine) reads the cells themselves, so a wrong `<dimension ref="A1"/>` does not hide
rows (openpyxl read-only would need `reset_dimensions()`). Numbers come back as their shortest
decimal text (`313.9`), which the money parser turns into fen exactly. Line numbers are sheet row
numbers, assuming the used range starts in row 1 (exports always write their header there or
below a title row).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import fastexcel
import polars as pl

from app.services.imports.export import ExportFileError
from app.services.imports.headers import looks_like_header, unique_names
from app.services.imports.table import HEADER_SEARCH_RECORDS, LINE, RAW, RawTable

MAX_UNCOMPRESSED_BYTES = 1024 * 1024 * 1024
MAX_RATIO = 100
RATIO_CHECK_FROM_BYTES = 64 * 1024 * 1024


def check_zip(path: Path) -> None:
    """Refuse archives that expand beyond the limits before any XML is parsed."""
    name = path.name
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise ExportFileError("truncated", f"{name} is a damaged or cut-short xlsx", name) from exc
    expanded = sum(info.file_size for info in infos)
    packed = sum(info.compress_size for info in infos) or 1
    if expanded > MAX_UNCOMPRESSED_BYTES or (
        expanded > RATIO_CHECK_FROM_BYTES and expanded / packed > MAX_RATIO
    ):
        raise ExportFileError(
            "too_large",
            f"{name} expands to {expanded:,} bytes ({expanded / packed:.0f}x its size): "
            "refused as a zip bomb",
            name,
        )
    if not any(info.filename.startswith("xl/worksheets/") for info in infos):
        raise ExportFileError("not_a_table", f"{name} is a zip archive but not an xlsx", name)


def read_xlsx_table(path: Path, max_rows: int | None = None) -> RawTable:
    check_zip(path)
    name = path.name
    try:
        reader = fastexcel.read_excel(path)
        sheet = reader.load_sheet(0, header_row=None, dtypes="string", n_rows=max_rows)
        cells = sheet.to_polars()
    except Exception as exc:  # calamine raises its own error types for damaged workbooks
        raise ExportFileError("truncated", f"{name}: the workbook cannot be read", name) from exc
    if cells.height == 0 or cells.width == 0:
        raise ExportFileError("empty", f"{name} has no cells", name)
    columns = cells.columns
    cells = cells.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64))
    blank = pl.all_horizontal(
        pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in columns
    )
    cells = cells.with_columns(blank.alias("blank"))
    header_at = 0
    head = cells.filter(~pl.col("blank")).head(HEADER_SEARCH_RECORDS)
    for row in head.iter_rows(named=True):
        if looks_like_header([row[c] or "" for c in columns]):
            header_at = row[LINE]
            break
    else:
        header_at = head.get_column(LINE).item(0) if head.height else 0
    header_row = cells.filter(pl.col(LINE) == header_at).row(0, named=True)
    header = unique_names([header_row[c] or "" for c in columns])
    body = cells.filter(pl.col(LINE) > header_at)
    blank_lines = body.filter(pl.col("blank")).height
    body = body.filter(~pl.col("blank")).drop("blank")
    if body.height == 0:
        raise ExportFileError("empty", f"{name} has a header but no rows", name)
    body = body.rename(dict(zip(columns, header, strict=True))).with_columns(
        pl.col(h).fill_null("") for h in header
    )
    key = pl.concat_str([pl.col(h) for h in header], separator=",")
    first = body.select(key.is_first_distinct()).to_series()
    total = body.height
    body = body.filter(first)
    empty_bad = pl.DataFrame(
        {LINE: pl.Series([], dtype=pl.Int64), RAW: pl.Series([], dtype=pl.String)}
    )
    duplicates = total - int(first.sum())
    # the workbook is read whole anyway (xlsx exports are small): one batch
    return RawTable(name, header, header, iter([body]), empty_bad, total, blank_lines, duplicates)
