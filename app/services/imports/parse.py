"""Public entry points: `sniff` a file before accepting it, `parse_export` a set of files.

Both are synchronous and keep no shared state (safe in worker threads). `parse_export` groups
files into snapshots (a Tmall order list with the detail file of the same export time; one
Pinduoduo file each), oldest first, and returns canonical frames (see export.py).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from app.services.imports import pinduoduo, tmall
from app.services.imports.decode import (
    SNIFF_BYTES,
    Encoding,
    container_of,
    detect_encoding,
    read_head,
    utf8_file,
)
from app.services.imports.export import (
    REJECTION_SCHEMA,
    ExportFile,
    ExportFileError,
    ParsedExport,
)
from app.services.imports.headers import (
    Detected,
    detect,
    kind_hint,
    looks_like_header,
    platform_name,
    unique_names,
)
from app.services.imports.rows import empty_rejections
from app.services.imports.table import HEADER_SEARCH_RECORDS, RawTable, read_csv_table
from app.services.imports.xlsx import read_xlsx_table

SHANGHAI = ZoneInfo("Asia/Shanghai")
BOM_LENGTHS = {"utf-8-sig": 3, "utf-16-le": 2, "utf-16-be": 2, "utf-32-le": 4, "utf-32-be": 4}


@dataclass(frozen=True)
class ExportTime:
    at: datetime | None  # UTC
    limit: datetime | None  # naive Shanghai wall time no file row may be later than


def export_time_of(name: str) -> ExportTime:
    """`ExportOrderList202406301830.csv` -> 18:30 that day; `...orders_export2024-07-14.csv` ->
    the end of that day (the name holds only the date)."""
    minute = re.search(r"List(\d{12})", name)
    if minute:
        try:
            local = datetime.strptime(minute.group(1), "%Y%m%d%H%M")
        except ValueError:
            return ExportTime(None, None)
        return ExportTime(_utc(local), local + timedelta(seconds=59))
    day = re.search(r"orders_export(\d{4}-\d{2}-\d{2})", name)
    if day:
        try:
            local = datetime.strptime(day.group(1), "%Y-%m-%d") + timedelta(days=1)
        except ValueError:
            return ExportTime(None, None)
        return ExportTime(_utc(local), local)
    return ExportTime(None, None)


def _utc(local: datetime) -> datetime:
    return local.replace(tzinfo=SHANGHAI).astimezone(ZoneInfo("UTC"))


def sniff(path: Path, declared_platform: str | None = None) -> ExportFile:
    """Identify a file from its first bytes/rows, or raise ExportFileError (nothing is read
    beyond the first 64 KiB of a CSV or the first rows of an xlsx)."""
    name = path.name
    head = read_head(path)
    if not head:
        raise ExportFileError("empty", f"{name} is empty", name)
    container = container_of(head, name)
    if container == "xlsx":
        table = read_xlsx_table(path, max_rows=HEADER_SEARCH_RECORDS + 10)
        det = detect(table.header, name, declared_platform, kind_hint(name))
        encoding = "xlsx"
    else:
        complete = len(head) < SNIFF_BYTES
        enc = detect_encoding(head, name, complete)
        header = _csv_head_header(head, enc, name, complete)
        det = detect(header, name, declared_platform, kind_hint(name))
        encoding = enc.name
    return ExportFile(
        path=path,
        platform=det.platform,
        kind=det.kind,
        layout=det.layout,
        container=container,
        encoding=encoding,
        export_time=export_time_of(name).at,
    )


def _csv_head_header(head: bytes, enc: Encoding, name: str, complete: bool) -> list[str]:
    decoder = codecs.getincrementaldecoder(enc.name)("strict")
    text = decoder.decode(head[enc.bom :], final=complete)
    if not text.strip():
        raise ExportFileError("empty", f"{name} is empty", name)
    lines = text.splitlines(keepends=True)
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut by the sniff window
    rows = [row for row in csv.reader(io.StringIO("".join(lines))) if any(c.strip() for c in row)]
    if not rows or max(len(r) for r in rows) < 2:
        raise ExportFileError("not_a_table", f"{name} is not a comma-separated table", name)
    for row in rows[:HEADER_SEARCH_RECORDS]:
        if looks_like_header(row):
            return unique_names(row)
    return unique_names(rows[0])


def parse_export(paths: list[Path], declared_platform: str) -> list[ParsedExport]:
    """Parse every file; file-level problems raise ExportFileError before anything is returned."""
    platform = platform_name(declared_platform)
    files = [sniff(path, platform) for path in paths]
    if platform == "pinduoduo":
        snapshots = [_pdd_snapshot(f) for f in files]
    else:
        snapshots = [_tmall_snapshot(lst, det) for lst, det in _pair_tmall(files)]
    # Oldest first; at the same export time a list without its detail (an xlsx twin) goes
    # first, so the more complete snapshot is the one that ends up describing the orders.
    return sorted(
        snapshots,
        key=lambda s: (s.export_time is None, s.export_time or datetime.min, s.has_items),
    )


@contextmanager
def _open_table(file: ExportFile) -> Iterator[RawTable]:
    """The file as a table, whose cell batches are read while the block runs (a transcoded
    copy of a GB18030 file lives only that long)."""
    if file.container == "xlsx":
        yield read_xlsx_table(file.path)
        return
    enc = Encoding(file.encoding, BOM_LENGTHS.get(file.encoding, 0))
    name = file.path.name

    def used(header: list[str]) -> list[str]:
        return list(detect(header, name, file.platform, file.kind).fields.values())

    with utf8_file(file.path, enc) as path:
        yield read_csv_table(name, path, used)


def _detected(table: RawTable, file: ExportFile) -> Detected:
    return detect(table.header, file.path.name, file.platform, file.kind)


def _pair_tmall(files: list[ExportFile]) -> list[tuple[ExportFile, ExportFile | None]]:
    """Each detail file joins the list of the same export time (a CSV list first when the
    xlsx twin is also given); a detail without a list fails the whole set."""
    lists = [f for f in files if f.kind == "order_list"]
    details = [f for f in files if f.kind == "order_items"]
    pairs: list[tuple[ExportFile, ExportFile | None]] = []
    taken: set[int] = set()
    for lst in sorted(lists, key=lambda f: (f.container != "csv", f.path.name)):
        match = next(
            (
                i
                for i, d in enumerate(details)
                if i not in taken
                and (d.export_time == lst.export_time or (len(lists) == len(details) == 1))
            ),
            None,
        )
        if match is not None:
            taken.add(match)
        pairs.append((lst, details[match] if match is not None else None))
    for i, detail in enumerate(details):
        if i not in taken:
            name = detail.path.name
            raise ExportFileError(
                "unpaired_detail",
                f"{name}: no order list (ExportOrderList) of the same export time was given",
                name,
            )
    return pairs


def _tmall_snapshot(list_file: ExportFile, detail_file: ExportFile | None) -> ParsedExport:
    limit = export_time_of(list_file.path.name).limit
    with _open_table(list_file) as list_table:
        orders, rejected, rejected_orders = tmall.parse_list(
            list_table, _detected(list_table, list_file), limit
        )
    orders, duplicated = _first_per_order(orders, "订单编号")
    notes: list[str] = []
    items = None
    item_rejections = empty_rejections()
    counts = [(list_table.records, list_table.duplicates, list_table.blank_lines)]
    if detail_file is not None:
        with _open_table(detail_file) as detail_table:
            items, item_rejections = tmall.parse_items(
                detail_table, _detected(detail_table, detail_file), orders.get_column("order_no")
            )
        counts.append((detail_table.records, detail_table.duplicates, detail_table.blank_lines))
    else:
        notes.append(f"{list_file.path.name}: no detail file, order lines not included")
    canonical, lines, orphans = tmall.join(orders, rejected_orders, items)
    rejections = pl.concat([rejected, duplicated, item_rejections, orphans])
    files = [list_file] + ([detail_file] if detail_file else [])
    return ParsedExport(
        platform="tmall",
        export_time=list_file.export_time,
        files=files,
        rows_read=sum(c[0] for c in counts),
        orders=canonical,
        items=lines,
        rejections=_sorted(rejections),
        duplicates=sum(c[1] for c in counts),
        blank_lines=sum(c[2] for c in counts),
        notes=notes,
        has_items=detail_file is not None,
    )


def _pdd_snapshot(file: ExportFile) -> ParsedExport:
    with _open_table(file) as table:
        orders, items, rejected = pinduoduo.parse_orders(
            table, _detected(table, file), export_time_of(file.path.name).limit
        )
    orders, duplicated = _first_per_order(orders, "订单号")
    # one item per order row, on the same line (a semi join held a copy of every item)
    items = items.filter(pl.col("line").is_in(orders.get_column("line").implode()))
    return ParsedExport(
        platform="pinduoduo",
        export_time=file.export_time,
        files=[file],
        rows_read=table.records,
        orders=orders,
        items=items,
        rejections=_sorted(pl.concat([rejected, duplicated])),
        duplicates=table.duplicates,
        blank_lines=table.blank_lines,
    )


def _first_per_order(orders: pl.DataFrame, column: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """An order number twice with different content: the first row wins, later ones are
    rejected (exact duplicates were already dropped)."""
    first = orders.select(pl.col("order_no").is_first_distinct()).to_series()
    later = orders.filter(~first).select(
        "file",
        "line",
        pl.lit(column).alias("column"),
        pl.lit("order_no_duplicated").alias("reason"),
        "order_no",
        pl.lit(None, pl.String).alias("raw"),
    )
    return orders.filter(first), later.cast(REJECTION_SCHEMA)  # type: ignore[arg-type]


def _sorted(rejections: pl.DataFrame) -> pl.DataFrame:
    return rejections.cast(REJECTION_SCHEMA).sort("file", "line")  # type: ignore[arg-type]
