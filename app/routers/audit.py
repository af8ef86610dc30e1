"""The audit trail of personal-data access."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import CurrentKey, ReadSession
from app.lean_route import LeanRoute
from app.problems import responses
from app.schemas.common import Cursor, Limit, Page
from app.schemas.privacy import AuditEventOut
from app.services import privacy

router = APIRouter(route_class=LeanRoute, prefix="/api/v1/audit-events", tags=["privacy"])


@router.get(
    "",
    summary="Audit records (reveals, exports, erasures, merges), newest first (owner, admin)",
    responses=responses(401, 403, 422),
)
async def list_audit_events(
    session: ReadSession,
    actor: CurrentKey,
    resource_id: Annotated[uuid.UUID | None, Query(description="Only this resource.")] = None,
    action: Annotated[str | None, Query(description="Only this action, e.g. `reveal`.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AuditEventOut]:
    rows, next_cursor = await privacy.list_audit_events(
        session, actor, resource_id, action, limit, cursor
    )
    return Page(items=[AuditEventOut.model_validate(r) for r in rows], next_cursor=next_cursor)
