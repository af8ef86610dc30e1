"""Import jobs end to end: store the upload, refuse bad files at once, then parse and load.

`create_import` runs in the request: files go to disk under `data_dir/uploads/<tenant>/<import>/`,
each is sniffed (platform, layout, required columns) so a wrong file is a 422 before any job
exists, and an `imports` row is written (queued). `run_import` is the job: it parses in a worker
thread and loads every snapshot in ONE transaction that also marks the import succeeded, so a
crash at any point leaves either nothing or everything, and a retried job ends in the same state.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import FieldError, NotFound, PayloadTooLarge, ValidationFailed
from app.models import Import, ImportRejection
from app.models.base import new_id
from app.runtime import Runtime
from app.schemas.imports import ImportOut, ImportProgress, ImportStatus
from app.services import idempotency
from app.services.auth import Principal
from app.services.imports import parse
from app.services.imports.export import ExportFileError, ParsedExport
from app.services.imports.load import LoadTarget, Snapshot, load_snapshots
from app.services.orders import loyalty_hook, shop_of
from app.services.paging import cursor_id, cursor_values, encode_cursor
from app.services.segments.jobs import schedule_recompute

IMPORT_TASK = "kezhan:import_orders"
IMPORT_SCOPE = "imports.create"

# Which shops may take which export format.
FORMAT_SHOPS = {"tmall": {"tmall", "taobao"}, "pinduoduo": {"pinduoduo"}}

_CHUNK = 1024 * 1024


class Upload(Protocol):
    """What an uploaded file offers (FastAPI's UploadFile, or a file opened by the CLI)."""

    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


def upload_dir(settings: Settings, tenant_id: uuid.UUID, import_id: uuid.UUID) -> Path:
    return settings.data_dir / "uploads" / str(tenant_id) / str(import_id)


def _file_problem(exc: ExportFileError, index: int, name: str) -> ValidationFailed:
    message = exc.detail
    if exc.columns:
        message = f"{exc.detail} (missing: {', '.join(exc.columns)})"
    return ValidationFailed(
        f"{name}: {exc.detail}",
        [FieldError(["body", "files", index], message, type=exc.code, input=name)],
        extra={"code": exc.code, "file": name, "missing_columns": exc.columns},
    )


async def _store(upload: Upload, target: Path, budget: int) -> tuple[int, str]:
    """Copy the upload to disk in chunks; refuse once the total passes the budget."""
    written = 0
    digest = hashlib.sha256()
    with target.open("wb") as out:
        while chunk := await upload.read(_CHUNK):
            written += len(chunk)
            if written > budget:
                raise PayloadTooLarge("the upload is larger than the configured limit")
            digest.update(chunk)
            await asyncio.to_thread(out.write, chunk)
    return written, digest.hexdigest()


def _safe_name(upload: Upload, index: int) -> str:
    name = Path(upload.filename or f"file{index}").name.strip()
    if not name or name in {".", ".."}:
        name = f"file{index}"
    return name


@dataclass(frozen=True)
class Created:
    """The response to an upload; `import_id` is None when an Idempotency-Key replayed it."""

    status_code: int
    body: dict[str, Any]
    import_id: uuid.UUID | None


def import_out(row: Import) -> ImportOut:
    return ImportOut(
        id=row.id,
        kind=row.kind,
        status=ImportStatus(row.status),
        platform=row.platform,
        shop_id=row.shop_id,
        dry_run=row.dry_run,
        files=row.files,
        progress=ImportProgress(rows_done=row.rows_done, rows_total=row.rows_total),
        counts=row.counts,
        timings=row.timings,
        error=row.error,
        attempts=row.attempts,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


async def create_import(
    session: AsyncSession,
    settings: Settings,
    actor: Principal,
    uploads: Sequence[Upload],
    platform: str,
    shop_id: uuid.UUID,
    dry_run: bool,
    now: datetime,
    idempotency_key: str | None = None,
) -> Created:
    """Store and preflight the files, then record a queued import (the caller defers the job).

    With an Idempotency-Key, the same files (by SHA-256) and options return the first response.
    """
    actor.require("orders:import")
    shop = await shop_of(session, actor.tenant_id, shop_id)
    if shop.platform not in FORMAT_SHOPS.get(platform, set()):
        raise ValidationFailed(
            f"{platform} exports cannot be imported into a {shop.platform} shop",
            [FieldError(["body", "shop_id"], f"pick a shop of platform {platform}")],
        )
    if not uploads:
        raise ValidationFailed("no files", [FieldError(["body", "files"], "upload one or more")])
    import_id = new_id()
    folder = upload_dir(settings, actor.tenant_id, import_id)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        files = await _store_and_sniff(settings, uploads, folder, platform)
        replay = await _claim_key(
            session, actor, idempotency_key, platform, shop.id, dry_run, files
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if replay is not None:
        shutil.rmtree(folder, ignore_errors=True)
        return Created(replay.status_code, replay.body, None)
    row = Import(
        tenant_id=actor.tenant_id,
        id=import_id,
        kind="file",
        status="queued",
        platform=platform,
        shop_id=shop.id,
        dry_run=dry_run,
        files=files,
        rows_done=0,
        counts={},
        timings={},
        attempts=0,
        api_key_id=actor.key_id,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    body = import_out(row).model_dump(mode="json")
    if idempotency_key is not None:
        await idempotency.remember(
            session, actor.tenant_id, IMPORT_SCOPE, idempotency_key, 202, body
        )
    return Created(202, body, import_id)


async def _claim_key(
    session: AsyncSession,
    actor: Principal,
    key: str | None,
    platform: str,
    shop_id: uuid.UUID,
    dry_run: bool,
    files: list[dict[str, Any]],
) -> idempotency.Replay | None:
    if key is None:
        return None
    payload = {
        "platform": platform,
        "shop_id": str(shop_id),
        "dry_run": dry_run,
        "files": [[f["name"], f["sha256"]] for f in files],
    }
    return await idempotency.claim(session, actor.tenant_id, IMPORT_SCOPE, key, payload)


async def _store_and_sniff(
    settings: Settings, uploads: Sequence[Upload], folder: Path, platform: str
) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = []
    budget = settings.max_upload_bytes
    for index, upload in enumerate(uploads):
        name = _safe_name(upload, index)
        if any(f["name"] == name for f in files):
            raise ValidationFailed(
                "two files have the same name",
                [FieldError(["body", "files", index], "file names must differ", input=name)],
            )
        path = folder / name
        size, sha256 = await _store(upload, path, budget)
        budget -= size
        try:
            sniffed = await asyncio.to_thread(parse.sniff, path, platform)
        except ExportFileError as exc:
            raise _file_problem(exc, index, name) from exc
        files.append(
            {
                "name": name,
                "bytes": size,
                "sha256": sha256,
                "platform": sniffed.platform,
                "kind": sniffed.kind,
                "layout": sniffed.layout,
                "container": sniffed.container,
                "encoding": sniffed.encoding,
                "export_time": sniffed.export_time.isoformat() if sniffed.export_time else None,
            }
        )
    return files


# --- the job -----------------------------------------------------------------------------------


async def _set(runtime: Runtime, tenant_id: uuid.UUID, import_id: uuid.UUID, **values: Any) -> None:
    """A change to the import row in its own short transaction (visible during the load)."""
    async with runtime.sessions() as session:
        await session.execute(
            update(Import)
            .where(Import.tenant_id == tenant_id, Import.id == import_id)
            .values(**values)
        )
        await session.commit()


async def _claim(runtime: Runtime, tenant_id: uuid.UUID, import_id: uuid.UUID) -> Import | None:
    """Mark the import running (once more after a crash); None when it already finished."""
    async with runtime.sessions() as session:
        row = await session.get(Import, (tenant_id, import_id), with_for_update=True)
        if row is None or row.status in {"succeeded", "failed"}:
            return None
        row.status = "running"
        row.attempts += 1
        row.started_at = runtime.clock()
        row.error = None
        await session.commit()
        return row


def _snapshots(parsed: list[ParsedExport], now: datetime) -> list[Snapshot]:
    return [
        Snapshot(
            source_time=p.export_time,
            orders=p.orders,
            items=p.items,
            rejections=p.rejections,
            rows_read=p.rows_read,
            duplicates=p.duplicates,
        )
        for p in parsed
    ]


ProgressHook = Callable[[int, int | None], Awaitable[None]]


async def run_import(
    runtime: Runtime,
    tenant_id: uuid.UUID,
    import_id: uuid.UUID,
    on_progress: ProgressHook | None = None,
) -> None:
    """The import job: idempotent, one load transaction, ends succeeded or failed."""
    row = await _claim(runtime, tenant_id, import_id)
    if row is None:
        return
    folder = upload_dir(runtime.settings, tenant_id, import_id)
    paths = [folder / f["name"] for f in row.files]
    started = time.perf_counter()
    try:
        parsed = await asyncio.to_thread(parse.parse_export, paths, row.platform)
    except ExportFileError as exc:
        await _fail(runtime, tenant_id, import_id, exc.code, exc.detail, exc.file, exc.columns)
        return
    parse_s = time.perf_counter() - started
    total = sum(p.rows_read for p in parsed)
    await _set(runtime, tenant_id, import_id, rows_total=total, rows_done=0)

    async def progress(done: int) -> None:
        await _set(runtime, tenant_id, import_id, rows_done=done)
        if on_progress is not None:
            await on_progress(done, total)

    target = LoadTarget(tenant_id, row.shop_id, await _shop_platform(runtime, row), import_id)
    now = runtime.clock()
    async with runtime.sessions() as session:
        counts = await load_snapshots(
            session,
            runtime.vault,
            target,
            _snapshots(parsed, now),
            now,
            progress=progress,
            orders_changed=loyalty_hook(),
        )
        timings = {"parse_s": round(parse_s, 3)} | {
            k: round(v, 3) for k, v in counts.timings.items()
        }
        timings["total_s"] = round(time.perf_counter() - started, 3)
        finished = {
            "status": "succeeded",
            "rows_total": total,
            "rows_done": total,
            "counts": counts.as_dict(),
            "timings": timings,
            "finished_at": runtime.clock(),
        }
        if row.dry_run:
            await session.rollback()
        else:
            await session.execute(
                update(Import)
                .where(Import.tenant_id == tenant_id, Import.id == import_id)
                .values(**finished)
            )
            await session.commit()
    if row.dry_run:
        await _set(runtime, tenant_id, import_id, **finished)
    else:
        await schedule_recompute(runtime, tenant_id)
    # The files are only needed until the import is final (a retry re-reads them).
    shutil.rmtree(folder, ignore_errors=True)


async def _shop_platform(runtime: Runtime, row: Import) -> str:
    async with runtime.read_sessions() as session:
        shop = await shop_of(session, row.tenant_id, row.shop_id)
        return shop.platform


async def _fail(
    runtime: Runtime,
    tenant_id: uuid.UUID,
    import_id: uuid.UUID,
    code: str,
    detail: str,
    file: str | None = None,
    columns: list[str] | None = None,
) -> None:
    error = {"code": code, "detail": detail, "file": file, "missing_columns": columns or []}
    await _set(
        runtime,
        tenant_id,
        import_id,
        status="failed",
        error=error,
        finished_at=runtime.clock(),
    )
    shutil.rmtree(upload_dir(runtime.settings, tenant_id, import_id), ignore_errors=True)


async def fail_import(
    runtime: Runtime, tenant_id: uuid.UUID, import_id: uuid.UUID, reason: str
) -> None:
    """Record an unexpected failure (the job's transaction has already rolled back)."""
    await _fail(runtime, tenant_id, import_id, "internal_error", reason)


# --- reading -----------------------------------------------------------------------------------


async def get_import(session: AsyncSession, actor: Principal, import_id: uuid.UUID) -> Import:
    actor.require("imports:read")
    row = await session.get(Import, (actor.tenant_id, import_id))
    if row is None:
        raise NotFound("no such import")
    return row


async def list_imports(
    session: AsyncSession, actor: Principal, limit: int, cursor: str | None
) -> tuple[list[Import], str | None]:
    actor.require("imports:read")
    query = select(Import).where(Import.tenant_id == actor.tenant_id)
    if cursor:
        query = query.where(Import.id < cursor_id(cursor))
    rows = list((await session.scalars(query.order_by(Import.id.desc()).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor({"id": str(rows[-1].id)}) if more else None


async def list_rejections(
    session: AsyncSession, actor: Principal, import_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[ImportRejection], str | None]:
    await get_import(session, actor, import_id)
    query = select(ImportRejection).where(
        ImportRejection.tenant_id == actor.tenant_id, ImportRejection.import_id == import_id
    )
    if cursor:
        (after,) = _seq_cursor(cursor)
        query = query.where(ImportRejection.seq > after)
    rows = list((await session.scalars(query.order_by(ImportRejection.seq).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor({"seq": str(rows[-1].seq)}) if more else None


def _seq_cursor(cursor: str) -> tuple[int]:
    (value,) = cursor_values(cursor, "seq")
    if not value.isdigit():
        raise ValidationFailed(
            "invalid cursor", [FieldError(["query", "cursor"], "use a next_cursor")]
        )
    return (int(value),)
