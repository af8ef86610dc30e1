"""What a parsed marketplace export is: canonical, columnar frames that the loader upserts.

Parsers (`tmall.py`, `pinduoduo.py`) turn files of any generation, encoding and quirk into these
exact schemas; the loader never sees a platform's own column names. Money is integer fen, times are
UTC, personal data is still plaintext here and is encrypted by the loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

UTC_TIME = pl.Datetime("us", "UTC")

ORDER_SCHEMA: dict[str, pl.DataType] = {
    "order_no": pl.String(),
    "status": pl.String(),  # canonical: pending_payment, paid, shipped, completed, closed, ...
    "raw_status": pl.String(),
    "after_sale_status": pl.String(),
    "buyer_key": pl.String(),  # the platform's buyer identity as written (see the format notes)
    "buyer_key_masked": pl.Boolean(),  # True when the identity is a masked value (never matched)
    "receiver_name": pl.String(),
    "receiver_phone": pl.String(),
    "receiver_address": pl.String(),  # street part; province/city/district separately
    "province": pl.String(),
    "city": pl.String(),
    "district": pl.String(),
    "postal_code": pl.String(),
    "goods_total_fen": pl.Int64(),
    "shipping_fen": pl.Int64(),
    "discount_fen": pl.Int64(),
    "paid_fen": pl.Int64(),
    "received_fen": pl.Int64(),
    "refund_fen": pl.Int64(),
    "ordered_at": UTC_TIME,
    "paid_at": UTC_TIME,
    "shipped_at": UTC_TIME,
    "completed_at": UTC_TIME,
    "buyer_message": pl.String(),
    "seller_memo": pl.String(),
    "item_count": pl.Int32(),
    "file": pl.String(),
    "line": pl.Int64(),  # physical line in the file (header = 1)
}

ITEM_SCHEMA: dict[str, pl.DataType] = {
    "order_no": pl.String(),
    "line_no": pl.Int32(),  # 1.. within the order, stable across re-exports
    "sub_order_no": pl.String(),
    "title": pl.String(),
    "sku": pl.String(),
    "merchant_code": pl.String(),
    "product_id": pl.String(),
    "quantity": pl.Int32(),
    "unit_price_fen": pl.Int64(),
    "paid_fen": pl.Int64(),
    "refund_status": pl.String(),
    "refund_fen": pl.Int64(),
    "file": pl.String(),
    "line": pl.Int64(),
}

REJECTION_SCHEMA: dict[str, pl.DataType] = {
    "file": pl.String(),
    "line": pl.Int64(),
    "column": pl.String(),
    "reason": pl.String(),  # short snake_case code, e.g. bad_amount, bad_order_no, field_count
    "order_no": pl.String(),
    "raw": pl.String(),
}


@dataclass(frozen=True)
class ExportFile:
    """What sniffing a file's first bytes tells: enough to refuse it before any work."""

    path: Path
    platform: str  # tmall | pinduoduo
    kind: str  # order_list | order_items | orders
    layout: str  # e.g. tmall-2019, tmall-detail-old, pdd-2020, pdd-2023
    container: str  # csv | xlsx
    encoding: str
    export_time: datetime | None  # from the file name, UTC


@dataclass(frozen=True)
class ParsedExport:
    """One export snapshot: a Tmall list with its detail file, or one Pinduoduo file."""

    platform: str
    export_time: datetime | None
    files: list[ExportFile]
    rows_read: int
    orders: pl.DataFrame  # ORDER_SCHEMA, one row per order number (exact duplicates removed)
    items: pl.DataFrame  # ITEM_SCHEMA
    rejections: pl.DataFrame  # REJECTION_SCHEMA
    duplicates: int = 0  # exact duplicate records dropped
    blank_lines: int = 0
    notes: list[str] = field(default_factory=list)
    has_items: bool = True  # False: a Tmall list without its detail file; items say nothing


class ExportFileError(Exception):
    """The whole file is unusable: nothing of it may be written.

    `code`: not_a_table, undecodable, empty, truncated, missing_columns, platform_mismatch,
    unknown_layout, too_large (zip bomb), unpaired_detail ...
    """

    def __init__(
        self, code: str, detail: str, file: str | None = None, columns: list[str] | None = None
    ) -> None:
        super().__init__(detail)
        self.code, self.detail, self.file, self.columns = code, detail, file, columns or []
