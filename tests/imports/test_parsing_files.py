"""Parsers on hand-made files: every bad-file case, every status value, header quirks."""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from pathlib import Path

import polars as pl
import pytest

from app.services.imports import decode, table
from app.services.imports.decode import Encoding
from app.services.imports.export import ExportFileError
from app.services.imports.parse import parse_export, sniff

SAMPLES = Path(__file__).parent / "samples"
SET1 = SAMPLES / "set1-tmall2019-pdd2020"
SET2 = SAMPLES / "set2-tmall2016-pdd2023"
TMALL_LIST = SET1 / "tmall" / "ExportOrderList202406301830.csv"
TMALL_DETAIL_2021 = SET2 / "tmall" / "ExportOrderDetailList202406301830.csv"
TMALL_XLSX = SET1 / "tmall" / "ExportOrderList202406301830.xlsx"
PDD = SET1 / "pdd" / "621fde3841e6e9c17ceba6a64c8fe731orders_export2024-06-30.csv"
LIST_NAME = "ExportOrderList202406301830.csv"
DETAIL_NAME = "ExportOrderDetailList202406301830.csv"
PDD_NAME = "0123456789abcdef0123456789abcdeforders_export2024-06-30.csv"


def rows_of(path: Path, encoding: str) -> list[list[str]]:
    with path.open(encoding=encoding, newline="") as fh:
        return [row for row in csv.reader(fh) if row]


def write_rows(path: Path, rows: list[list[str]], encoding: str, newline: str = "\r\n") -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def tmall_rows() -> tuple[list[str], list[str]]:
    header, template, *_ = rows_of(TMALL_LIST, "gb18030")
    return header, template


def tmall_list(tmp_path: Path, changes: list[dict[str, str]]) -> Path:
    """A 2019 order list with one row per change set, each based on the sample's first row."""
    header, template = tmall_rows()
    names = [h.strip() for h in header]
    rows = [header]
    for i, change in enumerate(changes):
        row = list(template)
        row[names.index("订单编号")] = f'="{1000000000000000000 + i}"'
        row[names.index("主订单编号")] = row[names.index("订单编号")]
        for name, value in change.items():
            row[names.index(name)] = value
        rows.append(row)
    return write_rows(tmp_path / LIST_NAME, rows, "gb18030")


def pdd_file(tmp_path: Path, changes: list[dict[str, str]], name: str = PDD_NAME) -> Path:
    header, template, *_ = rows_of(PDD, "utf-8-sig")
    rows = [header]
    for i, change in enumerate(changes):
        row = list(template)
        row[header.index("订单号")] = f"240630-{100000000000000 + i}\t"
        for column, value in change.items():
            row[header.index(column)] = value
        rows.append(row)
    return write_rows(tmp_path / name, rows, "utf-8-sig", "\n")


def error_of(paths: list[Path], platform: str) -> ExportFileError:
    with pytest.raises(ExportFileError) as caught:
        parse_export(paths, platform)
    return caught.value


# --- file-level failures ------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 old xls",
        b"abc\x00\x01\x02\x03 binary",
        "这不是表格，只是一段说明文字。\n第二行也没有逗号\n".encode(),
    ],
)
def test_a_file_that_is_not_a_table_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / LIST_NAME
    path.write_bytes(content)
    assert error_of([path], "tmall").code == "not_a_table"


def test_bytes_that_are_neither_utf8_nor_gb18030_are_undecodable(tmp_path: Path) -> None:
    path = tmp_path / LIST_NAME
    path.write_bytes("订单编号,订单状态\r\n".encode("gb18030") + b"\x80\xff\xfe,\x80\r\n")
    assert error_of([path], "tmall").code == "undecodable"


def test_bad_bytes_after_the_sniffed_head_fail_the_whole_file(tmp_path: Path) -> None:
    data = TMALL_LIST.read_bytes()
    path = tmp_path / LIST_NAME
    path.write_bytes(data + b"\x80\xff\r\n")
    assert sniff(path, "tmall").encoding == "gb18030"
    error = error_of([path], "tmall")
    assert error.code == "undecodable"
    assert "line 410" in error.detail


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xef\xbb\xbf",
        b"\r\n\r\n  \r\n",
        "订单编号,订单状态,买家实际支付金额,订单创建时间\r\n".encode(),
    ],
)
def test_an_empty_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / LIST_NAME
    path.write_bytes(content)
    assert error_of([path], "tmall").code == "empty"


def test_a_file_cut_inside_a_quoted_cell_is_truncated(tmp_path: Path) -> None:
    text = TMALL_LIST.read_text(encoding="gb18030")
    cut = text.rindex(',"') + 3  # just after the opening quote of the last quoted cell
    path = tmp_path / LIST_NAME
    path.write_bytes(text[:cut].encode("gb18030"))
    assert error_of([path], "tmall").code == "truncated"


def test_a_file_cut_in_the_middle_of_its_last_row_is_truncated(tmp_path: Path) -> None:
    text = PDD.read_text(encoding="utf-8-sig").rstrip("\n")
    path = tmp_path / PDD_NAME
    path.write_bytes(text[: text.rindex("\n") + 60].encode("utf-8-sig"))
    assert error_of([path], "pinduoduo").code == "truncated"


def test_missing_required_columns_are_listed(tmp_path: Path) -> None:
    header, template = tmall_rows()
    header = [
        "状态" if h == "订单状态" else "实付" if h == "买家实际支付金额" else h for h in header
    ]
    path = write_rows(tmp_path / LIST_NAME, [header, template], "gb18030")
    with pytest.raises(ExportFileError) as caught:
        sniff(path, "tmall")
    assert caught.value.code == "missing_columns"
    assert caught.value.columns == ["订单状态", "买家实际支付金额"]


def test_headers_of_the_other_platform_are_a_mismatch() -> None:
    with pytest.raises(ExportFileError) as caught:
        sniff(PDD, "tmall")
    assert caught.value.code == "platform_mismatch"
    with pytest.raises(ExportFileError) as caught:
        sniff(TMALL_LIST, "pinduoduo")
    assert caught.value.code == "platform_mismatch"
    assert sniff(PDD).platform == "pinduoduo"  # without a declaration the headers decide


def test_an_unknown_platform_name_is_refused() -> None:
    assert error_of([PDD], "jd").code == "unknown_platform"


def test_a_detail_file_without_its_order_list_is_refused() -> None:
    detail = SET1 / "tmall" / "ExportOrderDetailList202406301830.csv"
    assert error_of([detail], "tmall").code == "unpaired_detail"


def test_an_xlsx_that_expands_enormously_is_refused_as_a_zip_bomb(tmp_path: Path) -> None:
    path = tmp_path / "ExportOrderList202406301830.xlsx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            block = b"0" * (1024 * 1024)
            for _ in range(80):
                sheet.write(block)
    assert path.stat().st_size < 1024 * 1024
    with pytest.raises(ExportFileError) as caught:
        sniff(path, "tmall")
    assert caught.value.code == "too_large"


def test_a_cut_short_xlsx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ExportOrderList202406301830.xlsx"
    path.write_bytes(TMALL_XLSX.read_bytes()[:20000])
    assert error_of([path], "tmall").code == "truncated"


# --- rows -----------------------------------------------------------------------------


def test_excel_damaged_order_numbers_are_rejected_row_by_row(tmp_path: Path) -> None:
    path = tmall_list(tmp_path, [{}, {"订单编号": "1.23E+18"}, {}, {"订单编号": "12ab"}])
    snapshot = parse_export([path], "tmall")[0]
    assert snapshot.orders.height == 2
    reasons = snapshot.rejections.select("line", "reason", "order_no").rows()
    assert reasons == [
        (3, "order_no_scientific_notation", "1.23E+18"),
        (5, "order_no_invalid", "12ab"),
    ]


def test_bad_amounts_and_future_times_reject_only_their_rows(tmp_path: Path) -> None:
    path = pdd_file(
        tmp_path,
        [
            {"用户实付金额(元)": "待定"},
            {"用户实付金额(元)": "12.3.4"},
            {"用户实付金额(元)": "NaN"},
            {"商家实收金额(元)": "-5.00\t"},
            {"用户实付金额(元)": "(3.00)"},
            {"支付时间": "2024-07-01 00:00:01\t"},
            {"支付时间": "not a time"},
            {"用户实付金额(元)": "1,299.00", "支付时间": "2024/6/1 9:05"},
        ],
    )
    snapshot = parse_export([path], "pinduoduo")[0]
    reasons = snapshot.rejections.select("reason", "column").rows()
    assert reasons == [
        ("amount_not_numeric", "用户实付金额(元)"),
        ("amount_not_numeric", "用户实付金额(元)"),
        ("amount_not_numeric", "用户实付金额(元)"),
        ("amount_negative", "商家实收金额(元)"),
        ("amount_negative", "用户实付金额(元)"),
        ("timestamp_in_future", "支付时间"),
        ("timestamp_invalid", "支付时间"),
    ]
    good = snapshot.orders.row(0, named=True)
    assert good["paid_fen"] == 129900
    assert good["paid_at"].isoformat() == "2024-06-01T01:05:00+00:00"


def test_the_header_may_sit_below_a_title_row(tmp_path: Path) -> None:
    path = tmp_path / LIST_NAME
    path.write_bytes("订单报表（导出）\r\n".encode("gb18030") + TMALL_LIST.read_bytes())
    snapshot = parse_export([path], "tmall")[0]
    assert snapshot.orders.height == 400
    lines = snapshot.rejections.get_column("line").to_list()
    assert lines == [51, 321, 385, 402]  # one more than in the original file


def test_utf16_exports_parse_like_their_utf8_original(tmp_path: Path) -> None:
    path = tmp_path / PDD_NAME
    path.write_bytes(PDD.read_text(encoding="utf-8-sig").encode("utf-16"))
    assert sniff(path, "pinduoduo").encoding == "utf-16-le"
    utf16 = parse_export([path], "pinduoduo")[0]
    original = parse_export([PDD], "pinduoduo")[0]
    assert utf16.orders.drop("file").equals(original.orders.drop("file"))


def test_a_pinduoduo_header_with_full_width_parentheses_is_matched(tmp_path: Path) -> None:
    text = PDD.read_text(encoding="utf-8-sig").replace("商品总价(元)", "商品总价（元）", 1)
    path = tmp_path / PDD_NAME
    path.write_text(text, encoding="utf-8-sig")
    assert parse_export([path], "pinduoduo")[0].orders.height == 400


# --- statuses -------------------------------------------------------------------------

TMALL_CASES = [
    (
        {"订单状态": "等待买家付款", "订单付款时间": "", "买家实际支付金额": "0.00"},
        "pending_payment",
    ),
    ({"订单状态": "等待买家确认货到付款订单信息"}, "pending_payment"),
    ({"订单状态": "没有创建支付宝交易"}, "pending_payment"),
    ({"订单状态": "买家已付款，等待卖家发货"}, "paid"),
    ({"订单状态": "买家已付款,等待卖家发货"}, "paid"),
    ({"订单状态": "卖家部分发货"}, "shipped"),
    ({"订单状态": "卖家已发货，等待买家确认"}, "shipped"),
    ({"订单状态": "买家已签收"}, "shipped"),
    ({"订单状态": "买家已签收，回款至卖家"}, "completed"),
    ({"订单状态": "交易成功", "退款金额": "0.00"}, "completed"),
    ({"订单状态": "交易成功", "退款金额": "10.00"}, "partially_refunded"),
    ({"订单状态": "交易成功", "退款金额": "313.90"}, "refunded"),
    (
        {
            "订单状态": "交易关闭",
            "订单关闭原因": "买家未付款",
            "订单付款时间": "",
            "买家实际支付金额": "0.00",
        },
        "closed",
    ),
    ({"订单状态": "交易关闭", "订单关闭原因": "退款", "退款金额": "313.90"}, "refunded"),
    ({"订单状态": "交易被淘宝关闭", "订单付款时间": "", "买家实际支付金额": "0.00"}, "closed"),
]


def test_every_tmall_status_value_is_normalised(tmp_path: Path) -> None:
    path = tmall_list(tmp_path, [change for change, _ in TMALL_CASES])
    snapshot = parse_export([path], "tmall")[0]
    assert snapshot.rejections.height == 0
    assert snapshot.orders.get_column("status").to_list() == [s for _, s in TMALL_CASES]


def test_an_open_refund_request_on_a_tmall_line_makes_the_order_refunding(tmp_path: Path) -> None:
    header, *rows = rows_of(TMALL_DETAIL_2021, "gb18030")
    detail = [header]
    orders: list[dict[str, str]] = []
    for i, status in enumerate(["没有申请退款", "买家已经申请退款，等待卖家同意", "卖家拒绝退款"]):
        row = list(rows[0])
        order_no = f'="{1000000000000000000 + i}"'
        row[header.index("主订单编号")] = row[header.index("子订单编号")] = order_no
        row[header.index("退款状态")] = status
        detail.append(row)
        orders.append({"订单状态": "卖家已发货，等待买家确认"})
    list_path = tmall_list(tmp_path, orders)
    detail_path = write_rows(tmp_path / DETAIL_NAME, detail, "gb18030")
    snapshot = parse_export([list_path, detail_path], "tmall")[0]
    assert snapshot.orders.sort("order_no").get_column("status").to_list() == [
        "shipped",
        "refunding",
        "shipped",
    ]


PDD_CASES = [
    ("待支付", "无售后或售后取消", "pending_payment"),
    ("待发货", "无售后或售后取消", "paid"),
    ("已发货，待签收", "无售后或售后取消", "shipped"),
    ("已发货，待收货", "", "shipped"),
    ("已签收", "无售后或售后取消", "completed"),
    ("已收货", "无售后或售后取消", "completed"),
    ("未发货，退款成功", "退款成功", "refunded"),
    ("已发货，退款成功", "退款成功", "refunded"),
    ("已签收，退款成功", "退款成功", "refunded"),
    ("已收货，退款成功", "退款成功", "refunded"),
    ("已取消，退款成功", "退款成功", "refunded"),
    ("未成交，退款成功", "退款成功", "refunded"),
    ("已取消", "无售后或售后取消", "closed"),
    ("已签收", "售后处理中", "refunding"),
    ("待发货", "退款中", "refunding"),
    ("已发货，待签收", "买家申请退款，待商家处理", "refunding"),
    ("已签收", "退货退款，待商家处理", "refunding"),
    ("已签收", "部分退款成功", "partially_refunded"),
    ("已签收", "商家拒绝退款，退款关闭", "completed"),
]


def test_every_pinduoduo_status_and_after_sale_value_is_normalised(tmp_path: Path) -> None:
    path = pdd_file(tmp_path, [{"订单状态": raw, "售后状态": after} for raw, after, _ in PDD_CASES])
    snapshot = parse_export([path], "pinduoduo")[0]
    assert snapshot.rejections.height == 0
    got = snapshot.orders.select("raw_status", "after_sale_status", "status").rows()
    assert [g[2] for g in got] == [want for _, _, want in PDD_CASES]
    refunded = snapshot.orders.filter(pl.col("status") == "refunded")
    assert (refunded.get_column("refund_fen") == refunded.get_column("paid_fen")).all()


def test_an_unknown_status_text_rejects_the_row(tmp_path: Path) -> None:
    path = pdd_file(tmp_path, [{"订单状态": "火星订单"}, {}])
    snapshot = parse_export([path], "pinduoduo")[0]
    assert snapshot.rejections.select("reason", "column").rows() == [("status_unknown", "订单状态")]
    assert snapshot.orders.height == 1


def test_tmall_address_is_split_into_region_street_and_postal_code() -> None:
    snapshot = parse_export([TMALL_LIST], "tmall")[0]
    row = snapshot.orders.filter(pl.col("order_no") == "8410434207721493029").row(0, named=True)
    assert (row["province"], row["city"], row["district"]) == ("山东省", "青岛市", "市南区")
    assert (row["receiver_address"], row["postal_code"]) == ("团结路****", "266071")
    assert row["receiver_phone"] == "153****8686"  # the leading ' Excel guard is gone
    assert row["ordered_at"].isoformat() == "2024-06-30T05:25:44+00:00"


def test_records_sharing_a_hash_are_compared_by_text_so_no_row_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n3,4\n1,2\n", encoding="utf-8")
    colliding = pl.DataFrame(
        {
            table.INDEX: pl.Series([1, 2, 3], dtype=pl.UInt32),
            table.LINE: [2, 3, 4],
            table.END: [2, 3, 4],
            "hash": pl.Series([7, 7, 7], dtype=pl.UInt64),  # as if all three collided
        }
    )
    _, lines, _ = table._record_stats("t.csv", path)
    assert lines.height == 4  # a short file's lines are all kept from the first scan
    none_kept = lines.clear()  # the texts read back from the file instead
    for kept in (lines, none_kept):
        first = table._first_copies("t.csv", path, colliding, kept)
        assert first.to_list() == [True, True, False]


def test_a_record_over_several_lines_is_measured_whole_from_kept_or_re_read_lines(
    tmp_path: Path,
) -> None:
    """Lines with an odd number of quotes open and close a multi-line record and are kept by
    the first scan; a record with lines in between (not kept) is re-read from the file."""
    body = "".join(f'{n},x,"y"\n' for n in range(300))
    path = tmp_path / "t.csv"
    path.write_text(
        "a,b,c\n" + body + '1,"two\nlines",z\n2,"three\nline\nrecord",z\n3,ok,z\n',
        encoding="utf-8",
    )
    records, kept, _ = table._record_stats("t.csv", path)
    tail = records.tail(3).select(table.LINE, table.END, "fields").rows()
    assert tail == [(302, 303, 3), (304, 306, 3), (307, 307, 3)]
    assert 305 not in kept.get_column(table.LINE).to_list()  # no quote: not kept
    texts = table._texts("t.csv", path, records.tail(3).head(2), kept)
    assert texts.get_column(table.RAW).to_list() == [
        '1,"two\nlines",z',
        '2,"three\nline\nrecord",z',
    ]


@pytest.mark.parametrize("iconv", [True, False], ids=["iconv", "python-codec"])
def test_both_transcoders_give_the_same_utf8_and_the_same_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, iconv: bool
) -> None:
    """`iconv` transcodes where the system has it; Python's codec where it has not, and to
    name the line of bytes `iconv` refused."""
    if not iconv:
        monkeypatch.setattr(decode.shutil, "which", lambda _: None)
    elif decode.shutil.which("iconv") is None:
        pytest.skip("no iconv on this machine")
    gb = TMALL_LIST.read_bytes()
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes(codecs.BOM_UTF16_LE + gb.decode("gb18030").encode("utf-16-le"))
    for path, encoding in ((TMALL_LIST, Encoding("gb18030", 0)), (utf16, Encoding("utf-16-le", 2))):
        with decode.utf8_file(path, encoding) as utf8:
            assert utf8.read_bytes() == gb.decode("gb18030").encode()
    broken = tmp_path / LIST_NAME
    cut = gb.index(b"\n", 2000) + 1
    broken.write_bytes(gb[:cut] + b"\x80\xff" + gb[cut:])
    line = gb[:cut].count(b"\n") + 1
    with (
        pytest.raises(ExportFileError, match=f"line {line} are not valid gb18030"),
        decode.utf8_file(broken, Encoding("gb18030", 0)),
    ):
        pass
