"""Shops: a tenant's sales channels."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, NotFound
from app.models import CustomerIdentity, Shop
from app.models.base import utcnow
from app.schemas.shops import ShopCreate, ShopUpdate
from app.services.auth import Principal
from app.services.paging import check_if_match, cursor_id, encode_cursor


async def create_shop(session: AsyncSession, actor: Principal, data: ShopCreate) -> Shop:
    actor.require("shops:write")
    if data.external_id is not None:
        await _ensure_external_id_free(session, actor.tenant_id, data.platform, data.external_id)
    shop = Shop(tenant_id=actor.tenant_id, **data.model_dump(), version=1)
    session.add(shop)
    await session.flush()
    return shop


async def _ensure_external_id_free(
    session: AsyncSession, tenant_id: uuid.UUID, platform: str, external_id: str
) -> None:
    taken = await session.scalar(
        select(Shop.id).where(
            Shop.tenant_id == tenant_id,
            Shop.platform == platform,
            Shop.external_id == external_id,
        )
    )
    if taken is not None:
        raise Conflict(
            f"a {platform} shop with external_id {external_id!r} exists already",
            extra={"shop_id": str(taken)},
        )


async def get_shop(session: AsyncSession, actor: Principal, shop_id: uuid.UUID) -> Shop:
    actor.require("shops:read")
    shop = await session.get(Shop, (actor.tenant_id, shop_id))
    if shop is None:
        raise NotFound("no such shop")
    return shop


async def list_shops(
    session: AsyncSession, actor: Principal, limit: int, cursor: str | None
) -> tuple[Sequence[Shop], str | None]:
    actor.require("shops:read")
    query = select(Shop).where(Shop.tenant_id == actor.tenant_id)
    if cursor:
        query = query.where(Shop.id > cursor_id(cursor))
    rows = (await session.scalars(query.order_by(Shop.id).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor({"id": rows[-1].id}) if more else None


async def update_shop(
    session: AsyncSession,
    actor: Principal,
    shop_id: uuid.UUID,
    data: ShopUpdate,
    if_match: str | None,
) -> Shop:
    actor.require("shops:write")
    shop = await session.get(Shop, (actor.tenant_id, shop_id), with_for_update=True)
    if shop is None:
        raise NotFound("no such shop")
    check_if_match(if_match, shop.version)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("external_id") not in (None, shop.external_id):
        await _ensure_external_id_free(
            session, actor.tenant_id, shop.platform, changes["external_id"]
        )
    for name, value in changes.items():
        setattr(shop, name, value)
    shop.version += 1
    shop.updated_at = utcnow()
    await session.flush()
    return shop


async def delete_shop(session: AsyncSession, actor: Principal, shop_id: uuid.UUID) -> None:
    shop = await get_shop(session, actor, shop_id)
    actor.require("shops:write")
    in_use = await session.scalar(
        select(
            exists().where(
                CustomerIdentity.tenant_id == actor.tenant_id,
                CustomerIdentity.shop_id == shop_id,
            )
        )
    )
    if in_use:
        raise Conflict("customer identities refer to this shop; it cannot be deleted")
    await session.delete(shop)
    await session.flush()
