"""A CSV export as a table of string cells, each record with its physical line number.

Polars' streaming engine scans the file's physical lines once and keeps only numbers per line:
a record continues over line breaks while its double quotes are unbalanced (line breaks inside
quoted 买家留言), which gives every record its first physical line (header = 1, blank lines and
in-cell breaks counted), its field count (bad counts are rejected, not guessed at) and a hash for
exact-duplicate detection. Polars' CSV reader then reads the cells of the wanted columns, one
batch of records at a time from the batch's first physical line (its records line up with ours
one for one), so a parser cleans each batch before the next is read and the raw cells of a large
file never coexist. Record texts are read back only where needed (the header, rejected records,
records spanning several lines).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import polars as pl

from app.services.imports.decode import CHUNK_BYTES, undecodable_utf8
from app.services.imports.export import REJECTION_SCHEMA, ExportFileError
from app.services.imports.headers import looks_like_header, unique_names

HEADER_SEARCH_RECORDS = 30
# Lines whose text the first scan keeps for the header search (title rows, blank lines).
HEAD_LINES = 200
RAW_LIMIT = 2000
LINE = "__line"
INDEX = "__record"
END = "__end_line"
UNIT_SEPARATOR = "\x1f"  # never in exports: reading with it gives whole physical lines
RAW = "__raw"
FIELD_RE = r'(?:[^,"]|"(?:[^"]|"")*")*'
BLANK_RE = r"^[\s,]*$"
# Records whose raw cells are held at once: a batch of a 55-column export is ~100 MB of strings
# before cleaning; smaller batches save little more and cost time per read.
BATCH_RECORDS = 200_000

T = TypeVar("T")


@dataclass
class RawTable:
    """Cells of one export file as written (strings) with each record's physical LINE."""

    file: str
    header: list[str]  # normalised, unique column names
    columns: list[str]  # the header names whose cells are read, in header order
    # good records in file order, batch by batch (read once): a String column per name in
    # `columns`, and LINE
    batches: Iterator[pl.DataFrame]
    bad: pl.DataFrame  # records with the wrong field count: LINE, RAW
    records: int  # data records read (blank lines excluded, duplicates and bad ones included)
    blank_lines: int
    duplicates: int

    def field_of_bad(self, column: str) -> pl.Expr:
        """A column's cell extracted from the raw text of a bad record (for the rejection)."""
        index = self.header.index(column)
        pattern = rf"^(?:{FIELD_RE},){{{index}}}({FIELD_RE})"
        return pl.col(RAW).str.extract(pattern, 1)

    def parse_batches(self, parse: Callable[[pl.DataFrame], T]) -> list[T]:
        """`parse` of every batch of cells, each batch let go before the next is read."""
        results = []
        for batch in self.batches:
            results.append(parse(batch))
            del batch  # else the loop variable holds it while the next one is read
        return results

    def raw_of_cells(self) -> pl.Expr:
        """A record rebuilt from the cells read (the columns Kezhan uses), comma-joined: holding
        every record's text for the few rejected ones would double a large import's memory."""
        cells = [pl.col(name).fill_null("") for name in self.columns]
        return pl.concat_str(cells, separator=",").str.slice(0, RAW_LIMIT)


def read_csv_table(
    file: str, path: Path, wanted: Callable[[list[str]], list[str]] | None = None
) -> RawTable:
    """Read a UTF-8 CSV file (BOM allowed). Polars reads it twice: once as physical lines
    (record boundaries, line numbers, field counts, duplicates), once as cells, BATCH_RECORDS
    good records at a time while the table's batches are consumed (the file must still exist
    then); the two agree record for record, so no Python object per row is ever built.
    `wanted(header)` names the columns to keep (all by default): a 61-column export is mostly
    columns no one reads, and skipping them halves the memory of a large file."""
    records, kept, ends_with_newline = _record_stats(file, path)
    blank_lines = records.filter(pl.col("blank")).height
    head = _texts(file, path, records.filter(~pl.col("blank")).head(HEADER_SEARCH_RECORDS), kept)
    header_at, _, header_cells = _find_header(head)
    header = unique_names(header_cells)
    columns = sorted(set(wanted(header) if wanted else header), key=header.index)
    records = records.filter(~pl.col("blank") & (pl.col(INDEX) > header_at))
    if records.height == 0:
        raise ExportFileError("empty", f"{file} has a header but no rows", file)
    last = records.row(records.height - 1, named=True)
    if not ends_with_newline and last["fields"] < len(header):
        raise ExportFileError(
            "truncated", f"{file} ends in the middle of a row (line {last[LINE]})", file
        )
    total = records.height
    records = records.filter(_first_copies(file, path, records, kept))
    duplicates = total - records.height
    good_mask = pl.col("fields") == len(header)
    bad = _texts(file, path, records.filter(~good_mask), kept).select(LINE, RAW)
    good = records.filter(good_mask).select(INDEX, LINE, END)
    del records, kept
    batches = _cell_batches(file, path, header, columns, good, BATCH_RECORDS)
    return RawTable(file, header, columns, batches, bad, total, blank_lines, duplicates)


def _lines(path: Path) -> pl.LazyFrame:
    """The file's physical lines (LINE from 1, text `t`), lazily: never all held at once."""
    return (
        pl.scan_csv(
            path,
            has_header=False,
            separator=UNIT_SEPARATOR,
            quote_char=None,
            infer_schema=False,
            schema={"t": pl.String},
            truncate_ragged_lines=True,
            raise_if_empty=False,
        )
        .with_row_index(LINE, offset=1)
        .with_columns(pl.col(LINE).cast(pl.Int64), pl.col("t").fill_null(""))
    )


def _stats(text: pl.Expr) -> list[pl.Expr]:
    return [
        # commas outside quoted cells: one regex pass (dropping the quoted runs) and a literal
        # count took 1.1 s on a 1M-line list, counting two regexes' matches 1.6 s
        (text.str.replace_all(r'"[^"]*"', "").str.count_matches(",", literal=True) + 1)
        .cast(pl.Int64)
        .alias("fields"),
        text.str.contains(BLANK_RE).alias("blank"),
        text.hash().alias("hash"),
    ]


def _record_stats(file: str, path: Path) -> tuple[pl.DataFrame, pl.DataFrame, bool]:
    """One small row per record: INDEX, first LINE, last line END, field count, blank flag and
    a 64-bit hash of its text (exact-duplicate detection); and the texts (LINE, RAW) of the
    lines kept from the same scan: the first HEAD_LINES (the header search) and every line with
    an odd number of double quotes, which opens or closes a record spanning several lines (line
    breaks in quoted cells). The other line texts are dropped as the file streams by; a record
    is measured as a whole from its kept lines, or re-read when it has lines in between."""
    t = pl.col("t")
    quotes = pl.col("quotes")
    try:
        lines = (
            _lines(path)
            .with_columns(t.str.count_matches('"', literal=True).alias("quotes"))
            .select(
                LINE,
                "quotes",
                *_stats(t),
                pl.when((quotes % 2 == 1) | (pl.col(LINE) <= HEAD_LINES)).then(t).alias(RAW),
            )
            .collect(engine="streaming")
        )
    except pl.exceptions.ComputeError as exc:
        raise undecodable_utf8(file, path.read_bytes()) from exc
    ends_with_newline = _ends_with_newline(path)
    if lines.height == 0 or lines.get_column("blank").all():
        raise ExportFileError("empty", f"{file} is empty", file)
    if lines.get_column("quotes").sum() % 2 != 0:
        raise ExportFileError(
            "truncated", f"{file} ends inside a quoted cell: the file is cut short", file
        )
    # A record starts on each line after one where the quotes so far are balanced.
    balanced = (quotes.cum_sum() % 2 == 0).cast(pl.Int64)
    lines = lines.with_columns(
        balanced.cum_sum().shift(1, fill_value=0).cast(pl.UInt32).alias(INDEX)
    )
    kept = lines.filter(pl.col(RAW).is_not_null()).select(INDEX, LINE, RAW)
    # Lines are consecutive: a record ends on the line before the next record's first line.
    records = lines.filter(pl.col(INDEX).is_first_distinct()).select(
        INDEX,
        LINE,
        (pl.col(LINE).shift(-1, fill_value=lines.height + 1) - 1).alias(END),
        "fields",
        "blank",
        "hash",
    )
    del lines
    multi = records.filter(pl.col(END) > pl.col(LINE))
    if multi.height:
        joined = _texts(file, path, multi, kept).select(INDEX, *_stats(pl.col(RAW)))
        records = records.update(joined, on=INDEX)
    return records, kept, ends_with_newline


def _first_copies(file: str, path: Path, records: pl.DataFrame, kept: pl.DataFrame) -> pl.Series:
    """True for each record that is not an exact copy of an earlier one. Hashes find the
    candidates; records sharing a hash are compared by their text, so a hash collision can never
    drop a row."""
    first = records.get_column("hash").is_first_distinct()
    repeated = records.filter(~first).select("hash").unique()
    if repeated.height == 0:
        return first
    group = records.join(repeated, on="hash", how="semi")
    texts = _texts(file, path, group.select(INDEX, LINE, END), kept).join(
        group.select(INDEX, "hash"), on=INDEX
    )
    exact = texts.select(INDEX, pl.struct("hash", RAW).is_first_distinct().alias("exact"))
    marked = records.select(INDEX).with_columns(first.alias("first"))
    marked = marked.join(exact, on=INDEX, how="left", maintain_order="left")
    return marked.select(pl.coalesce("exact", "first")).to_series()


def _texts(
    file: str, path: Path, records: pl.DataFrame, kept: pl.DataFrame | None = None
) -> pl.DataFrame:
    """INDEX, LINE, RAW of the given records (INDEX, LINE, END): joined from the `kept` line
    texts (LINE, RAW) when they hold every line of a record, else read back from the file."""
    if records.height == 0:
        return pl.DataFrame(
            {
                INDEX: pl.Series([], dtype=pl.UInt32),
                LINE: pl.Series([], dtype=pl.Int64),
                RAW: pl.Series([], dtype=pl.String),
            }
        )
    wanted = (
        records.select(INDEX, pl.int_ranges(LINE, pl.col(END) + 1).alias(LINE))
        .explode(LINE)
        .with_columns(pl.col(LINE).cast(pl.Int64))
    )
    if kept is not None:
        found = wanted.join(kept.select(LINE, RAW), on=LINE, how="left", maintain_order="left")
        missing = found.filter(pl.col(RAW).is_null()).get_column(INDEX).unique().implode()
        texts = _joined(found.filter(~pl.col(INDEX).is_in(missing)))
        if missing.list.len().item() == 0:
            return texts
        rest = _texts(file, path, records.filter(pl.col(INDEX).is_in(missing)))
        return pl.concat([texts, rest]).sort(INDEX)
    last = wanted.get_column(LINE).max()
    found = (
        _lines(path)
        .head(last if isinstance(last, int) else 0)  # the reader stops after the last one
        # a filter streams; a join held every line's text of the file at once
        .filter(pl.col(LINE).is_in(wanted.get_column(LINE).implode()))
        .collect(engine="streaming")
        .join(wanted, on=LINE, how="inner")
        .rename({"t": RAW})
    )
    return _joined(found)


def _joined(lines: pl.DataFrame) -> pl.DataFrame:
    """INDEX, first LINE and text of each record from its lines' INDEX, LINE, RAW."""
    return (
        lines.sort(LINE)
        .group_by(INDEX, maintain_order=True)
        .agg(pl.col(LINE).first(), pl.col(RAW).str.join("\n"))
        .with_columns(pl.col(INDEX).cast(pl.UInt32))
    )


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return False
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"


def _cell_batches(
    file: str,
    path: Path,
    header: list[str],
    columns: list[str],
    good: pl.DataFrame,
    batch_records: int,
) -> Iterator[pl.DataFrame]:
    """The cells of the good records (INDEX, LINE, END, in file order), `batch_records` at a
    time; always at least one (maybe empty) frame."""
    if good.height == 0:
        yield pl.DataFrame(
            {name: pl.Series([], dtype=pl.String) for name in columns}
            | {LINE: pl.Series([], dtype=pl.Int64)}
        )
        return
    with path.open("rb") as fh:
        lines = _Lines(fh)
        for start in range(0, good.height, batch_records):
            yield _batch(file, path, header, columns, good.slice(start, batch_records), lines)


class _Lines:
    """A file read forward by physical lines (from 1): only the bytes asked for are held."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.line = 1  # the physical line `rest` starts with
        self.rest = b""

    def read(self, first: int, last: int) -> bytes:
        """The bytes of physical lines `first` to `last` (`first` not before the lines read)."""
        self._take(first - self.line)
        return self._take(last + 1 - first)

    def _take(self, count: int) -> bytes:
        parts: list[bytes] = []
        while count > 0:
            if not self.rest:
                self.rest = self.fh.read(CHUNK_BYTES)
                if not self.rest:
                    break
            found = self.rest.count(b"\n")
            if found < count:  # the whole chunk
                parts.append(self.rest)
                self.rest = b""
                count -= found
                self.line += found
                continue
            end = -1
            for _ in range(count):
                end = self.rest.index(b"\n", end + 1)
            parts.append(self.rest[: end + 1])
            self.rest = self.rest[end + 1 :]
            self.line += count
            count = 0
        return b"".join(parts)


def _batch(
    file: str,
    path: Path,
    header: list[str],
    columns: list[str],
    good: pl.DataFrame,
    lines: _Lines,
) -> pl.DataFrame:
    cells = _cells(header, columns, good, lines)
    if cells is None:  # polars split records differently (odd quoting): parse our records
        texts = _texts(file, path, good).select(LINE, RAW)
        cells = _parse_records(file, texts, header).select(*columns, LINE)
    return cells


def _cells(
    header: list[str], columns: list[str], good: pl.DataFrame, lines: _Lines
) -> pl.DataFrame | None:
    """Cells of some good records by polars' CSV reader over the file's bytes from the first
    one's physical line to the last one's end (records between that are blank, bad or repeated
    are read and dropped; the file is not memory-mapped, whose pages read would all count as
    resident); None when its records do not line up with ours."""
    indexes = good.get_column(INDEX)
    first, last = int(indexes[0]), int(indexes[-1])  # records come in file order
    count = last - first + 1
    text = lines.read(int(good.get_column(LINE)[0]), int(good.get_column(END)[-1]))
    cells = pl.read_csv(
        text,
        has_header=False,
        n_rows=count,
        columns=[header.index(name) for name in columns],
        infer_schema=False,
        quote_char='"',
        truncate_ragged_lines=True,
        raise_if_empty=False,
    )
    del text
    cells.columns = columns
    if cells.height < count:
        return None
    if count != good.height:  # by position: a join on the index held a second copy of every cell
        cells = cells.select(pl.all().gather(indexes - first))
    # Compacted: string work on views into the reader's buffers kept both the buffers and the
    # results alive (0.4 GB more at the peak of a 1,000,000-order export).
    return cells.rechunk().with_columns(good.get_column(LINE))


def _find_header(records: pl.DataFrame) -> tuple[int, int, list[str]]:
    """(record index, physical line, cells) of the first record that looks like an export
    header (it may sit below a title row); else of the first record."""
    head = records.head(HEADER_SEARCH_RECORDS).select(INDEX, LINE, RAW).rows()
    parsed = [(index, line, next(csv.reader(io.StringIO(text)), [])) for index, line, text in head]
    for found in parsed:
        if looks_like_header(found[2]):
            return found
    return parsed[0]


def _parse_records(file: str, good: pl.DataFrame, header: list[str]) -> pl.DataFrame:
    if good.height == 0:
        return pl.DataFrame(
            {name: pl.Series([], dtype=pl.String) for name in header}
            | {LINE: pl.Series([], dtype=pl.Int64)}
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
    return cells.with_columns(good.get_column(LINE))


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
