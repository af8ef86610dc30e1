"""The tenant's catalogue of ticket categories, seeded with defaults on first use."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import FieldError, NotFound, ValidationFailed
from app.models import TicketCategory
from app.schemas.tickets import CategoryCreate, CategoryUpdate
from app.services.auth import Principal

DEFAULTS: tuple[tuple[str, str], ...] = (
    ("product_quality", "商品质量"),
    ("wrong_or_missing_item", "错发漏发"),
    ("logistics", "物流"),
    ("service_attitude", "服务态度"),
    ("price", "价格"),
    ("description_mismatch", "描述不符"),
    ("other", "其他"),
)


async def ensure_defaults(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """A tenant with no categories gets the default catalogue (idempotent, race-safe)."""
    seeded = await session.scalar(select(exists().where(TicketCategory.tenant_id == tenant_id)))
    if seeded:
        return
    await session.execute(
        insert(TicketCategory)
        .values(
            [
                {"tenant_id": tenant_id, "code": code, "name": name, "active": True, "position": i}
                for i, (code, name) in enumerate(DEFAULTS)
            ]
        )
        .on_conflict_do_nothing()
    )


async def list_categories(
    session: AsyncSession, actor: Principal, include_inactive: bool
) -> Sequence[TicketCategory]:
    actor.require("tickets:read")
    await ensure_defaults(session, actor.tenant_id)
    query = select(TicketCategory).where(TicketCategory.tenant_id == actor.tenant_id)
    if not include_inactive:
        query = query.where(TicketCategory.active)
    return (
        await session.scalars(query.order_by(TicketCategory.position, TicketCategory.code))
    ).all()


async def create_category(
    session: AsyncSession, actor: Principal, data: CategoryCreate
) -> TicketCategory:
    actor.require("tickets:manage")
    await ensure_defaults(session, actor.tenant_id)
    category = TicketCategory(tenant_id=actor.tenant_id, **data.model_dump())
    session.add(category)
    await session.flush()
    return category


async def update_category(
    session: AsyncSession, actor: Principal, code: str, data: CategoryUpdate
) -> TicketCategory:
    """Rename, reorder or retire a category; its code never changes (tickets refer to it)."""
    actor.require("tickets:manage")
    await ensure_defaults(session, actor.tenant_id)
    category = await session.get(TicketCategory, (actor.tenant_id, code), with_for_update=True)
    if category is None:
        raise NotFound("no such category")
    for name, value in data.model_dump(exclude_unset=True).items():
        if value is None:
            raise ValidationFailed("invalid update", [FieldError(["body", name], "cannot be null")])
        setattr(category, name, value)
    await session.flush()
    return category


async def ensure_usable(
    session: AsyncSession, tenant_id: uuid.UUID, code: str, loc: list[str | int]
) -> None:
    await ensure_defaults(session, tenant_id)
    category = await session.get(TicketCategory, (tenant_id, code))
    if category is None or not category.active:
        raise ValidationFailed(
            "unknown category",
            [FieldError(loc, "not an active category (GET /api/v1/ticket-categories)", input=code)],
        )
