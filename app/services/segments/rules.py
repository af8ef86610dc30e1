"""Tenant rules behind the facts: lifecycle thresholds and the product category mapping."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import FieldError, NotFound, ValidationFailed
from app.models import ProductCategoryRule, SegmentSettings
from app.models.base import new_id, utcnow
from app.services.auth import Principal
from app.services.paging import check_if_match


@dataclass(frozen=True)
class Thresholds:
    """New within N days, loyal from K orders, at risk after X days, churned after Y days."""

    new_days: int = 30
    loyal_orders: int = 5
    at_risk_days: int = 90
    churned_days: int = 180
    version: int = 0


async def thresholds(session: AsyncSession, tenant_id: uuid.UUID) -> Thresholds:
    row = await session.get(SegmentSettings, tenant_id)
    if row is None:
        return Thresholds()
    return Thresholds(
        row.new_days, row.loyal_orders, row.at_risk_days, row.churned_days, row.version
    )


async def get_thresholds(session: AsyncSession, actor: Principal) -> Thresholds:
    actor.require("segments:read")
    return await thresholds(session, actor.tenant_id)


async def set_thresholds(
    session: AsyncSession, actor: Principal, values: Thresholds, if_match: str | None
) -> Thresholds:
    """Replace the thresholds; the next recompute moves customers to their new stages."""
    actor.require("segments:configure")
    if not 0 < values.at_risk_days < values.churned_days:
        raise ValidationFailed(
            "at_risk_days must be below churned_days",
            [FieldError(["body", "at_risk_days"], "must be positive and below churned_days")],
        )
    row = await session.get(SegmentSettings, actor.tenant_id, with_for_update=True)
    check_if_match(if_match, row.version if row else 0)
    if row is None:
        row = SegmentSettings(tenant_id=actor.tenant_id, version=0)
        session.add(row)
    row.new_days, row.loyal_orders = values.new_days, values.loyal_orders
    row.at_risk_days, row.churned_days = values.at_risk_days, values.churned_days
    row.version += 1
    row.updated_at = utcnow()
    await session.flush()
    return await thresholds(session, actor.tenant_id)


async def list_category_rules(session: AsyncSession, actor: Principal) -> list[ProductCategoryRule]:
    actor.require("segments:read")
    rows = await session.scalars(
        select(ProductCategoryRule)
        .where(ProductCategoryRule.tenant_id == actor.tenant_id)
        .order_by(ProductCategoryRule.category, ProductCategoryRule.id)
    )
    return list(rows)


async def add_category_rule(
    session: AsyncSession, actor: Principal, category: str, match: str, pattern: str
) -> ProductCategoryRule:
    """A new rule; facts pick it up on the next rebuild (the caller schedules one)."""
    actor.require("segments:configure")
    rule = ProductCategoryRule(
        tenant_id=actor.tenant_id,
        id=new_id(),
        category=category.strip(),
        match=match,
        pattern=pattern.strip(),
        created_at=utcnow(),
    )
    session.add(rule)
    await session.flush()
    return rule


async def delete_category_rule(session: AsyncSession, actor: Principal, rule_id: uuid.UUID) -> None:
    actor.require("segments:configure")
    rule = await session.get(ProductCategoryRule, (actor.tenant_id, rule_id))
    if rule is None:
        raise NotFound("no such category rule")
    await session.delete(rule)
    await session.flush()


async def category_patterns(
    session: AsyncSession, tenant_id: uuid.UUID
) -> dict[str, list[tuple[str, str]]]:
    """Each category's (match, pattern) rules, for compiling `ordered` category conditions."""
    rows = await session.execute(
        select(
            ProductCategoryRule.category, ProductCategoryRule.match, ProductCategoryRule.pattern
        ).where(ProductCategoryRule.tenant_id == tenant_id)
    )
    patterns: dict[str, list[tuple[str, str]]] = {}
    for category, match, pattern in rows:
        patterns.setdefault(category, []).append((match, pattern))
    return patterns
