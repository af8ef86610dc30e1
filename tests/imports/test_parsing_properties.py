"""Property-based tests: cell normalisation (money, ids, times) and generated exports that
round-trip through the parser."""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services.demo_exports import write_pdd_export, write_tmall_export
from app.services.imports import cells
from app.services.imports.parse import parse_export
from app.services.imports.rows import id_problem

AMOUNTS = st.decimals(min_value=0, max_value=Decimal("9999999999.99"), places=2)


def cell_frame(values: list[str], times: bool = False) -> pl.DataFrame:
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})
    return cells.clean(frame, ["v"], ["v"], ["v"] if times else [])


def money(values: list[str]) -> list[tuple[int | None, str | None]]:
    frame = cell_frame(values)
    return frame.select(cells.money_fen("v"), cells.money_problem("v").alias("p")).rows()


@given(AMOUNTS, st.sampled_from(["{:.2f}", "{:,.2f}", "¥{:.2f}", "{:.2f}元", "\t{:.2f}\t"]))
def test_money_text_becomes_exact_fen(amount: Decimal, pattern: str) -> None:
    assert money([pattern.format(amount)]) == [(int(amount * 100), None)]


@given(AMOUNTS)
def test_money_with_fewer_or_more_decimals_is_exact_or_rounded_half_up(amount: Decimal) -> None:
    fen = int(amount * 100)
    excel_float = f"{amount}4999"  # `17.80` written by Excel as `17.804999`
    excel_up = f"{amount}5"
    assert money([excel_float, excel_up]) == [(fen, None), (fen + 1, None)]
    if fen % 10 == 0:
        assert money([f"{amount:.1f}"]) == [(fen, None)]


@given(AMOUNTS.filter(lambda a: a > 0), st.sampled_from(["-{:.2f}", "({:.2f})", "-{:,.2f}元"]))
def test_negative_money_is_rejected(amount: Decimal, pattern: str) -> None:
    assert money([pattern.format(amount)])[0][1] == "amount_negative"


@given(
    st.one_of(
        st.sampled_from(["--", "待定", "12.3.4", "NaN", "1e5", "0x1F", "十二"]),
        st.text(alphabet="abcxyz0123456789.-+", min_size=1, max_size=12).filter(
            lambda s: not _looks_numeric(s)
        ),
    )
)
def test_text_that_is_no_number_is_rejected(value: str) -> None:
    assert money([value]) == [(None, "amount_not_numeric")]


def _looks_numeric(value: str) -> bool:
    return re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)", value) is not None or value in ("-", "")


@given(
    st.from_regex(r"[1-9][0-9]{0,24}", fullmatch=True),
    st.sampled_from(['="{}"', "'{}", "{}\t", " {} ", "\t{}", "{}"]),
)
def test_order_numbers_are_cleaned_to_their_digits(digits: str, pattern: str) -> None:
    frame = cell_frame([pattern.format(digits)])
    result = frame.select(pl.col("v"), id_problem("v", r"^\d+$").problem.alias("p")).row(0)
    assert result == (digits, None)


@given(
    st.integers(1, 9),
    st.integers(0, 99999),
    st.integers(10, 19),
)
def test_scientific_notation_order_numbers_are_recognised_as_excel_damage(
    lead: int, mantissa: int, exponent: int
) -> None:
    value = f"{lead}.{mantissa}E+{exponent}"
    frame = cell_frame([value])
    problem = frame.select(id_problem("v", r"^\d+$").problem).item()
    assert problem == "order_no_scientific_notation"


@given(st.datetimes(min_value=datetime(2010, 1, 1), max_value=datetime(2035, 12, 31)))
def test_times_are_read_in_export_and_excel_formats(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    excel = f"{moment.year}/{moment.month}/{moment.day} {moment.hour}:{moment.minute:02d}"
    frame = cell_frame([moment.strftime("%Y-%m-%d %H:%M:%S"), excel], times=True)
    parsed = frame.get_column(cells.TIME + "v").to_list()
    assert parsed == [moment, moment.replace(second=0)]


@settings(max_examples=8, deadline=None)
@given(n_orders=st.integers(1, 400), seed=st.integers(0, 10_000))
def test_generated_tmall_exports_round_trip_through_the_parser(n_orders: int, seed: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        written = write_tmall_export(Path(folder), n_orders, seed, chunk_orders=97)
        (snapshot,) = parse_export(written.files, "tmall")
    assert snapshot.rejections.height == 0
    assert snapshot.orders.height == written.orders == n_orders
    assert snapshot.items.height == written.items
    assert snapshot.orders.get_column("buyer_key").n_unique() == written.distinct_buyers
    assert snapshot.orders.get_column("paid_fen").sum() == written.paid_total_fen
    raw = Counter(snapshot.orders.get_column("raw_status").to_list())
    assert raw == written.raw_status_counts
    assert not snapshot.orders.get_column("buyer_key_masked").any()
    assert snapshot.orders.get_column("receiver_phone").str.contains(r"^1\d\d\*{4}\d{4}$").all()


@settings(max_examples=8, deadline=None)
@given(n_orders=st.integers(1, 400), seed=st.integers(0, 10_000))
def test_generated_pinduoduo_exports_round_trip_through_the_parser(
    n_orders: int, seed: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        written = write_pdd_export(Path(folder), n_orders, seed, chunk_orders=97)
        (snapshot,) = parse_export(written.files, "pinduoduo")
    assert snapshot.rejections.height == 0
    assert snapshot.orders.height == written.orders == n_orders
    assert snapshot.items.height == n_orders
    assert snapshot.orders.get_column("buyer_key").n_unique() == written.distinct_buyers
    assert snapshot.orders.get_column("buyer_key_masked").all()
    assert snapshot.orders.get_column("paid_fen").sum() == written.paid_total_fen
    raw = Counter(snapshot.orders.get_column("raw_status").to_list())
    assert raw == written.raw_status_counts


def test_generated_files_do_not_depend_on_the_chunk_size(tmp_path: Path) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    small.mkdir()
    large.mkdir()
    a = write_tmall_export(small, 250, seed=5, chunk_orders=16)
    b = write_tmall_export(large, 250, seed=5)
    assert [f.read_bytes() for f in a.files] == [f.read_bytes() for f in b.files]
    c = write_pdd_export(small, 250, seed=5, chunk_orders=16)
    d = write_pdd_export(large, 250, seed=5)
    assert c.files[0].read_bytes() == d.files[0].read_bytes()


def test_generated_exports_hold_returning_buyers_multi_item_orders_and_every_stage(
    tmp_path: Path,
) -> None:
    written = write_tmall_export(tmp_path, 3000, seed=1)
    (snapshot,) = parse_export(written.files, "tmall")
    per_buyer = snapshot.orders.group_by("buyer_key").len()
    assert per_buyer.get_column("len").max() >= 20  # some buyers come back dozens of times
    per_order = snapshot.items.group_by("order_no").len()
    assert per_order.filter(pl.col("len") > 1).height > 600
    statuses = set(snapshot.orders.get_column("status"))
    assert statuses == {
        "pending_payment",
        "paid",
        "shipped",
        "completed",
        "closed",
        "refunded",
        "partially_refunded",
    }
    messages = snapshot.orders.get_column("buyer_message").drop_nulls()
    assert messages.str.contains("\n").any()
    assert messages.str.contains(",").any()
