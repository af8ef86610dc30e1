"""Import endpoints: upload marketplace exports, follow the job, read the rejected rows."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, File, Form, Header, Request, UploadFile
from fastapi.responses import JSONResponse

from app.deps import ClockDep, CurrentKey, ReadSession, RuntimeDep, Session
from app.errors import PayloadTooLarge
from app.lean_route import LeanRoute
from app.problems import responses
from app.routers.orders import IdempotencyKey
from app.schemas.common import Cursor, Limit, Page
from app.schemas.imports import ImportOut, RejectionOut
from app.services.imports import jobs, pipeline

router = APIRouter(route_class=LeanRoute, prefix="/api/v1/imports", tags=["imports"])


@router.post(
    "",
    status_code=202,
    summary="Upload one export (Tmall: order list + detail; Pinduoduo: orders) and import it",
    description=(
        "The files are stored and checked at once (platform, layout, required columns): a file "
        "that cannot be imported is a 422 naming it and the missing columns. The import itself "
        "runs as a job: poll the `Location` for its status, progress and counts. `dry_run` "
        "computes the counts and writes nothing."
    ),
    response_model=ImportOut,
    responses=responses(401, 403, 413, 422),
)
async def create_import(
    request: Request,
    session: Session,
    runtime: RuntimeDep,
    actor: CurrentKey,
    clock: ClockDep,
    background: BackgroundTasks,
    files: Annotated[list[UploadFile], File(description="The export files.")],
    platform: Annotated[Literal["tmall", "pinduoduo"], Form(description="Export format.")],
    shop_id: Annotated[uuid.UUID, Form(description="The shop the orders belong to.")],
    dry_run: Annotated[bool, Form(description="Count only, write nothing.")] = False,
    content_length: Annotated[int | None, Header()] = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    if content_length is not None and content_length > runtime.settings.max_upload_bytes + 65536:
        raise PayloadTooLarge("the upload is larger than the configured limit")
    created = await pipeline.create_import(
        session,
        runtime.settings,
        actor,
        files,
        platform,
        shop_id,
        dry_run,
        clock(),
        idempotency_key,
    )
    if created.import_id is not None:
        # Deferred once the request's transaction has committed: the job finds its import.
        background.add_task(jobs.defer_import, runtime, actor.tenant_id, created.import_id)
    location = f"/api/v1/imports/{created.body['id']}"
    return JSONResponse(
        created.body, status_code=created.status_code, headers={"Location": location}
    )


@router.get("", summary="Import jobs, newest first", responses=responses(401, 403, 422))
async def list_imports(
    session: ReadSession, actor: CurrentKey, limit: Limit = 50, cursor: Cursor = None
) -> Page[ImportOut]:
    rows, next_cursor = await pipeline.list_imports(session, actor, limit, cursor)
    return Page(items=[pipeline.import_out(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{import_id}",
    summary="An import: status, progress, counts, timings, and why it failed",
    responses=responses(401, 403, 404),
)
async def get_import(session: ReadSession, actor: CurrentKey, import_id: uuid.UUID) -> ImportOut:
    return pipeline.import_out(await pipeline.get_import(session, actor, import_id))


@router.get(
    "/{import_id}/rejections",
    summary="Rows the import refused: file, line, column, reason and the raw text",
    responses=responses(401, 403, 404, 422),
)
async def list_rejections(
    session: ReadSession,
    actor: CurrentKey,
    import_id: uuid.UUID,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[RejectionOut]:
    rows, next_cursor = await pipeline.list_rejections(session, actor, import_id, limit, cursor)
    return Page(items=[RejectionOut.model_validate(r) for r in rows], next_cursor=next_cursor)
