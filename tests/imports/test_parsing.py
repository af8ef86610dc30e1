"""Parsers against the sample sets: every file parses to what its truth.json says."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from app.services.imports.export import ITEM_SCHEMA, ORDER_SCHEMA, REJECTION_SCHEMA, ParsedExport
from app.services.imports.parse import parse_export, sniff

SAMPLES = Path(__file__).parent / "samples"
SETS = ["set1-tmall2019-pdd2020", "set2-tmall2016-pdd2023"]
PLATFORMS = {"tmall": "tmall", "pdd": "pinduoduo"}


def truth(sample_set: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((SAMPLES / sample_set / "truth.json").read_text())
    return result


def files_of(sample_set: str, folder: str) -> list[Path]:
    return sorted((SAMPLES / sample_set / folder).iterdir())


def expected_orders(sample_set: str, folder: str) -> dict[str, dict[str, str]]:
    """expected_orders.csv; a few Tmall status texts carry an unquoted ASCII comma."""
    lines = (SAMPLES / sample_set / "expected_orders.csv").read_text().splitlines()
    header = next(csv.reader([lines[0]]))
    result = {}
    for line in lines[1:]:
        cells = line.split(",")
        if len(cells) == len(header) + 1:
            cells = [*cells[:2], f"{cells[2]},{cells[3]}", *cells[4:]]
        row = dict(zip(header, cells, strict=True))
        if row["platform"] == folder:
            result[row["order_no"]] = row
    return result


def final_state(snapshots: list[ParsedExport]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """What importing the snapshots in order ends with: the newest snapshot of each order."""
    orders = (
        pl.concat([s.orders.with_columns(pl.lit(i).alias("snap")) for i, s in enumerate(snapshots)])
        .sort("snap")
        .unique("order_no", keep="last")
    )
    with_items = [
        s.items.with_columns(pl.lit(i).alias("snap"))
        for i, s in enumerate(snapshots)
        if s.has_items
    ]
    items = pl.concat(with_items)
    newest = items.group_by("order_no").agg(pl.col("snap").max())
    return orders, items.join(newest, on=["order_no", "snap"])


@pytest.fixture(scope="module", params=[(s, f) for s in SETS for f in PLATFORMS])
def parsed(request: pytest.FixtureRequest) -> tuple[str, str, list[ParsedExport]]:
    sample_set, folder = request.param
    return sample_set, folder, parse_export(files_of(sample_set, folder), PLATFORMS[folder])


def test_sniff_identifies_every_sample_file() -> None:
    for sample_set in SETS:
        for spec in truth(sample_set)["files"]:
            platform = PLATFORMS[spec["platform"]]
            found = sniff(SAMPLES / sample_set / spec["path"], platform)
            assert (found.platform, found.kind, found.layout) == (
                platform,
                spec["kind"],
                spec["layout"],
            )
            assert found.container == spec["format"]
            if spec["format"] == "csv":
                assert found.encoding == {"gbk": "gb18030"}.get(spec["encoding"], spec["encoding"])
            assert found.export_time is not None


def test_snapshots_come_out_oldest_first_with_frames_in_the_contract_schemas(
    parsed: tuple[str, str, list[ParsedExport]],
) -> None:
    _, _, snapshots = parsed
    times = [s.export_time for s in snapshots]
    assert times == sorted(t for t in times if t is not None)
    for snapshot in snapshots:
        assert dict(snapshot.orders.schema) == ORDER_SCHEMA
        assert dict(snapshot.items.schema) == ITEM_SCHEMA
        assert dict(snapshot.rejections.schema) == REJECTION_SCHEMA
        assert snapshot.orders.get_column("order_no").is_unique().all()


def test_every_valid_order_ends_in_its_expected_state(
    parsed: tuple[str, str, list[ParsedExport]],
) -> None:
    sample_set, folder, snapshots = parsed
    orders, items = final_state(snapshots)
    expected = expected_orders(sample_set, folder)
    assert set(orders.get_column("order_no")) == set(expected)
    lines = Counter(items.get_column("order_no").to_list())
    for row in orders.iter_rows(named=True):
        want = expected[row["order_no"]]
        assert row["status"] == want["final_status"], row["order_no"]
        assert row["raw_status"] == want["final_raw_status"], row["order_no"]
        assert (row["after_sale_status"] or "") == want["final_after_sale"]
        assert (row["buyer_key"] or "") == want["buyer_key"]
        assert row["paid_fen"] == int(want["paid_fen"])
        if want["refund_fen"]:
            assert row["refund_fen"] == int(want["refund_fen"]), row["order_no"]
        received = "" if row["received_fen"] is None else str(row["received_fen"])
        assert received == want["received_fen"], row["order_no"]
        assert lines[row["order_no"]] == int(want["item_lines"]), row["order_no"]


def test_totals_and_counts_match_the_truth(parsed: tuple[str, str, list[ParsedExport]]) -> None:
    sample_set, folder, snapshots = parsed
    want = truth(sample_set)["platforms"][folder]
    orders, items = final_state(snapshots)
    assert orders.height == want["distinct_orders"]
    assert dict(Counter(orders.get_column("status").to_list())) == want["final_status_counts"]
    assert (
        dict(Counter(orders.get_column("raw_status").to_list())) == want["final_raw_status_counts"]
    )
    paid_by_status = orders.group_by("status").agg(pl.col("paid_fen").sum())
    assert dict(paid_by_status.iter_rows()) == want["paid_total_fen_by_status"]
    if want["received_total_fen_by_status"] is not None:
        received = orders.group_by("status").agg(pl.col("received_fen").sum())
        assert dict(received.iter_rows()) == want["received_total_fen_by_status"]
    if want["refund_total_fen"] is not None:
        assert orders.get_column("refund_fen").sum() == want["refund_total_fen"]
    assert orders.filter(pl.col("paid_fen") == 0).height == want["zero_payment_orders"]
    assert items.height == want["item_lines"]
    per_order = items.group_by("order_no").len()
    assert per_order.filter(pl.col("len") > 1).height == want["multi_item_orders"]
    if "final_after_sale_counts" in want:
        after_sale = Counter(orders.get_column("after_sale_status").to_list())
        assert dict(after_sale) == want["final_after_sale_counts"]


def test_identity_keys_are_the_platform_buyer_identity(
    parsed: tuple[str, str, list[ParsedExport]],
) -> None:
    sample_set, folder, snapshots = parsed
    want = truth(sample_set)["platforms"][folder]
    orders, _ = final_state(snapshots)
    keys = orders.get_column("buyer_key")
    if want["distinct_identity_keys"] is None:
        assert keys.null_count() == orders.height  # the 2023 layout has no buyer at all
        assert orders.get_column("buyer_key_masked").null_count() == orders.height
    else:
        assert keys.drop_nulls().n_unique() == want["distinct_identity_keys"]
        masked = orders.filter(pl.col("buyer_key").str.contains("*", literal=True))
        assert masked.get_column("buyer_key_masked").all()
    if want.get("distinct_identity_keys_with_region"):
        regional = orders.select(
            pl.concat_str(["buyer_key", "province", "city", "district"], separator="|")
        )
        assert regional.n_unique() == want["distinct_identity_keys_with_region"]


def test_rejections_match_the_truth_line_by_line(
    parsed: tuple[str, str, list[ParsedExport]],
) -> None:
    sample_set, folder, snapshots = parsed
    want = truth(sample_set)["platforms"][folder]
    got = pl.concat([s.rejections for s in snapshots])
    assert got.height == want["rejected_records"]
    found = {
        (f"{folder}/{r['file']}", r["line"], r["reason"], r["column"], r["order_no"])
        for r in got.iter_rows(named=True)
    }
    expected = {
        (r["file"], r["line"], r["reason"], r["column"], r["order_no"]) for r in want["rejections"]
    }
    assert found == expected
    assert got.filter(pl.col("raw").is_null()).height == 0


def test_duplicates_and_blank_lines_are_counted_per_snapshot(
    parsed: tuple[str, str, list[ParsedExport]],
) -> None:
    sample_set, folder, snapshots = parsed
    per_file = truth(sample_set)["platforms"][folder]["per_file"]
    for snapshot in snapshots:
        names = [f"{folder}/{f.path.name}" for f in snapshot.files]
        if not all(name in per_file for name in names):
            continue  # the xlsx twin has no entry of its own
        stats = [per_file[name] for name in names]
        assert snapshot.duplicates == sum(s.get("duplicate_records", 0) for s in stats)
        assert snapshot.blank_lines == sum(s.get("blank_lines", 0) for s in stats)
        valid = sum(s["valid_records"] for s in stats)
        rejected = sum(s["rejected_records"] for s in stats)
        duplicates = sum(s.get("duplicate_records", 0) for s in stats)
        assert snapshot.rows_read == valid + rejected + duplicates


@pytest.mark.parametrize("sample_set", SETS)
def test_xlsx_twin_holds_the_same_orders_as_its_csv(sample_set: str) -> None:
    tmall = SAMPLES / sample_set / "tmall"
    from_xlsx = parse_export([tmall / "ExportOrderList202406301830.xlsx"], "tmall")[0]
    from_csv = parse_export([tmall / "ExportOrderList202406301830.csv"], "tmall")[0]
    assert not from_xlsx.has_items
    assert from_xlsx.rejections.height == 0
    columns = [c for c in ORDER_SCHEMA if c not in ("file", "line", "item_count")]
    xlsx_orders = from_xlsx.orders.select(columns).sort("order_no")
    csv_orders = from_csv.orders.select(columns).sort("order_no")
    assert xlsx_orders.equals(csv_orders)


def test_list_with_detail_and_its_xlsx_twin_parse_as_separate_snapshots() -> None:
    tmall = SAMPLES / SETS[0] / "tmall"
    snapshots = parse_export(sorted(tmall.glob("*202406301830*")), "tmall")
    assert [(len(s.files), s.has_items) for s in snapshots] == [(1, False), (2, True)]


def test_times_are_utc_from_shanghai_wall_time() -> None:
    pdd = SAMPLES / SETS[0] / "pdd"
    snapshot = parse_export(sorted(pdd.iterdir())[:1], "pinduoduo")[0]
    row = snapshot.orders.filter(pl.col("order_no") == "240630-400000003161690").row(0, named=True)
    assert row["paid_at"].isoformat() == "2024-06-30T10:09:17+00:00"  # 18:09:17 in Shanghai


def test_pinduoduo_orders_without_any_time_take_the_date_of_their_number() -> None:
    pdd = SAMPLES / SETS[1] / "pdd"
    orders, _ = final_state(parse_export(sorted(pdd.iterdir()), "pinduoduo"))
    cancelled = orders.filter(pl.col("paid_at").is_null() & (pl.col("raw_status") == "已取消"))
    assert cancelled.height > 0
    for row in cancelled.iter_rows(named=True):
        local = row["ordered_at"].astimezone(ZoneInfo("Asia/Shanghai"))
        assert local.strftime("%y%m%d") == row["order_no"][:6]
        assert (local.hour, local.minute) == (0, 0)
