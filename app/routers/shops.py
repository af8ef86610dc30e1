"""Shop endpoints."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from app.deps import CurrentKey, IfMatch, ReadSession, Session
from app.lean_route import LeanRoute
from app.problems import responses
from app.schemas.common import Cursor, Limit, Page
from app.schemas.shops import ShopCreate, ShopOut, ShopUpdate
from app.services import shops
from app.services.paging import etag

router = APIRouter(route_class=LeanRoute, prefix="/api/v1/shops", tags=["shops"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a shop (a marketplace store, offline or O2O store, group buy)",
    responses=responses(401, 403, 409, 422),
)
async def create_shop(
    session: Session, actor: CurrentKey, body: ShopCreate, response: Response
) -> ShopOut:
    shop = await shops.create_shop(session, actor, body)
    response.headers["ETag"] = etag(shop.version)
    response.headers["Location"] = f"/api/v1/shops/{shop.id}"
    return ShopOut.model_validate(shop)


@router.get("", summary="List shops", responses=responses(401, 403, 422))
async def list_shops(
    session: ReadSession, actor: CurrentKey, limit: Limit = 50, cursor: Cursor = None
) -> Page[ShopOut]:
    rows, next_cursor = await shops.list_shops(session, actor, limit, cursor)
    return Page(items=[ShopOut.model_validate(s) for s in rows], next_cursor=next_cursor)


@router.get("/{shop_id}", summary="Get a shop", responses=responses(401, 403, 404))
async def get_shop(
    session: ReadSession, actor: CurrentKey, shop_id: uuid.UUID, response: Response
) -> ShopOut:
    shop = await shops.get_shop(session, actor, shop_id)
    response.headers["ETag"] = etag(shop.version)
    return ShopOut.model_validate(shop)


@router.patch(
    "/{shop_id}",
    summary="Rename a shop or change its external id (`If-Match` guards concurrent edits)",
    responses=responses(401, 403, 404, 409, 412, 422),
)
async def update_shop(
    session: Session,
    actor: CurrentKey,
    shop_id: uuid.UUID,
    body: ShopUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> ShopOut:
    shop = await shops.update_shop(session, actor, shop_id, body, if_match)
    response.headers["ETag"] = etag(shop.version)
    return ShopOut.model_validate(shop)


@router.delete(
    "/{shop_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a shop nothing refers to",
    responses=responses(401, 403, 404, 409),
)
async def delete_shop(session: Session, actor: CurrentKey, shop_id: uuid.UUID) -> None:
    await shops.delete_shop(session, actor, shop_id)
