"""Import jobs and their rejected rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from app.schemas.common import Schema


class ImportStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class ImportProgress(Schema):
    rows_done: int
    rows_total: int | None


class ImportOut(Schema):
    id: uuid.UUID
    kind: str = Field(description="`file` (uploaded exports) or `batch`.")
    status: ImportStatus
    platform: str
    shop_id: uuid.UUID
    dry_run: bool
    files: list[dict[str, Any]]
    progress: ImportProgress
    counts: dict[str, Any] = Field(
        description="rows_read, orders_created / updated / unchanged / stale, items, "
        "customers_created / matched, rejected, anonymous, duplicates."
    )
    timings: dict[str, Any]
    error: dict[str, Any] | None = Field(description="Why a failed import failed.")
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RejectionOut(Schema):
    seq: int
    file: str
    line: int | None = Field(description="Physical line in the file (the header is line 1).")
    column: str | None
    reason: str
    order_no: str | None
    raw: str | None
