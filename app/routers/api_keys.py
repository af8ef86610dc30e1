"""API key endpoints: create (secret shown once), list, revoke."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from app.deps import CurrentKey, RuntimeDep, Session
from app.lean_route import LeanRoute
from app.problems import responses
from app.schemas.auth import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from app.services import auth

router = APIRouter(route_class=LeanRoute, prefix="/api/v1/api-keys", tags=["api keys"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (owner, admin); the secret is in `key`, shown only here",
    responses=responses(401, 403, 422),
)
async def create_api_key(session: Session, actor: CurrentKey, body: ApiKeyCreate) -> ApiKeyCreated:
    issued = await auth.create_key(session, actor, body.name, body.role)
    return ApiKeyCreated.model_validate(
        {**ApiKeyOut.model_validate(issued.key).model_dump(), "key": issued.secret}
    )


@router.get("", summary="List the tenant's API keys", responses=responses(401, 403))
async def list_api_keys(session: Session, actor: CurrentKey) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(k) for k in await auth.list_keys(session, actor)]


@router.delete(
    "/{key_id}",
    summary="Revoke an API key; it stops working at once",
    responses=responses(401, 403, 404, 422),
)
async def revoke_api_key(
    session: Session, runtime: RuntimeDep, actor: CurrentKey, key_id: uuid.UUID
) -> ApiKeyOut:
    key = await auth.revoke_key(session, actor, key_id)
    runtime.keys.forget(key_id)
    return ApiKeyOut.model_validate(key)
