"""Cells are read and cleaned in batches of records: any batch size gives the same parse."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from app.services.imports import table
from app.services.imports.export import ParsedExport
from app.services.imports.parse import parse_export
from tests.imports.helpers import SETS, sample_files


def messy_copy(source: Path, target: Path) -> None:
    """The export with, among its records: exact copies of earlier ones, records with too few
    and too many fields, blank lines, an order number again with other content, a bad amount,
    and cells holding line breaks (CRLF files keep CRLF, as exports do)."""
    raw = source.read_bytes()
    encoding = "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "gb18030"
    newline = "\r\n" if b"\r\n" in raw else "\n"
    header, *body = list(csv.reader(io.StringIO(raw.decode(encoding), newline="")))
    rows: list[list[str]] = [header]
    for i, row in enumerate(body):
        rows.append(row)
        if len(row) != len(header):  # the sample's own odd records stay as they are
            continue
        other = list(row)
        match i % 9:
            case 0:
                rows.append(list(rows[1 + i // 2]))
            case 1:
                rows.append(row[:-3])
            case 2:
                rows.append([*row, "x"])
            case 3:
                rows.append([])
            case 4:
                other[2] += "x"
                rows.append(other)
            case 5:
                other[3] = "abc"
                rows.append(other)
            case 6:
                other[0] += "\nmore\r\nlines"
                rows.append(other)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    target.write_bytes(buffer.getvalue().encode(encoding))


def assert_same_parse(batched: list[ParsedExport], whole: list[ParsedExport]) -> None:
    assert len(batched) == len(whole)
    for got, expected in zip(batched, whole, strict=True):
        assert_frame_equal(got.orders, expected.orders)
        assert_frame_equal(got.items, expected.items)
        assert_frame_equal(got.rejections, expected.rejections)
        counts = (got.rows_read, got.duplicates, got.blank_lines, got.notes)
        assert counts == (expected.rows_read, expected.duplicates, expected.blank_lines, [])


@pytest.mark.parametrize("sample_set", SETS)
@pytest.mark.parametrize(("platform", "folder"), [("tmall", "tmall"), ("pinduoduo", "pdd")])
def test_a_batched_parse_gives_the_same_orders_items_and_rejections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_set: str, platform: str, folder: str
) -> None:
    paths = []
    for source in sample_files(sample_set, folder):
        paths.append(tmp_path / source.name)
        messy_copy(source, paths[-1])
    whole = parse_export(paths, platform)
    assert all(p.orders.height < table.BATCH_RECORDS for p in whole)  # one batch
    assert any(p.duplicates for p in whole)
    reasons = {r for p in whole for r in p.rejections.get_column("reason")}
    assert {"column_count_mismatch", "order_no_duplicated"} <= reasons
    monkeypatch.setattr(table, "BATCH_RECORDS", 11)  # batch ends fall on every kind of record
    assert_same_parse(parse_export(paths, platform), whole)
