"""Identity resolution across channels: merge suggestions with evidence, and customer merges.

Imports never merge people on their own. Buyers who look alike across platforms (same masked
phone, same masked name's family name, same city) become suggestions a person accepts or
dismisses; `merge_customers` then moves everything of one customer onto another, atomically.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import FieldError, NotFound, ValidationFailed
from app.models import Customer, MergeSuggestion
from app.services import privacy
from app.services.auth import Principal
from app.services.facts import refresh_customer_facts
from app.services.imports.load import UUID7_SQL
from app.services.paging import cursor_id, encode_cursor

MergeHook = Callable[[AsyncSession, uuid.UUID, uuid.UUID, uuid.UUID, datetime], Awaitable[None]]

# Other domains (loyalty, tickets...) append `async (session, tenant_id, survivor_id, merged_id,
# now)` here at import time; each runs inside the merge transaction, before the merged customer
# is deleted, and moves that domain's rows to the survivor.
MERGE_HOOKS: list[MergeHook] = []

SUGGESTION_RULE = (
    "same masked receiver phone, same masked receiver name and same city on two platforms"
)

# An order's platform is its shop's, which never changes: the shops with orders tell, without
# reading the orders, whether the tenant sells on more than one platform.
_PLATFORMS_WITH_ORDERS = """
SELECT count(DISTINCT s.platform) FROM shops s
WHERE s.tenant_id = :tenant_id
  AND EXISTS (SELECT FROM orders o WHERE o.tenant_id = :tenant_id AND o.shop_id = s.id)
"""

# The columns the suggestions filter and join orders on.
_ANALYZE_ORDERS = (
    "ANALYZE orders (tenant_id, customer_id, platform, receiver_phone_masked, "
    "receiver_name_masked, province, city)"
)

_SUGGEST = f"""
WITH mine AS (
    SELECT DISTINCT o.customer_id, o.platform, left(o.receiver_name_masked, 1) AS surname,
           o.receiver_name_masked AS name, o.receiver_phone_masked AS phone, o.province, o.city
    FROM orders o
    WHERE o.tenant_id = :tenant_id AND o.customer_id = ANY(CAST(:customer_ids AS uuid[]))
      AND o.receiver_phone_masked IS NOT NULL AND o.receiver_name_masked IS NOT NULL
      AND o.city IS NOT NULL
), theirs AS (
    SELECT DISTINCT o.customer_id, o.platform, left(o.receiver_name_masked, 1) AS surname,
           o.receiver_name_masked AS name, o.receiver_phone_masked AS phone, o.province, o.city
    FROM orders o
    WHERE o.tenant_id = :tenant_id AND o.customer_id IS NOT NULL
      AND o.receiver_name_masked IS NOT NULL AND o.city IS NOT NULL
      -- Only orders that can pair with one of mine (same phone, surname and city, another
      -- platform) are sorted for DISTINCT: a first import of a tenant's only platform has none.
      AND EXISTS (SELECT FROM mine m
                  WHERE m.phone = o.receiver_phone_masked
                    AND m.surname = left(o.receiver_name_masked, 1)
                    AND m.city = o.city AND m.platform <> o.platform)
), pairs AS (
    SELECT DISTINCT ON (a_id, b_id) * FROM (
        SELECT CASE WHEN m.platform < t.platform THEN m.customer_id ELSE t.customer_id END AS a_id,
               CASE WHEN m.platform < t.platform THEN t.customer_id ELSE m.customer_id END AS b_id,
               CASE WHEN m.platform < t.platform THEN m.platform ELSE t.platform END AS a_platform,
               CASE WHEN m.platform < t.platform THEN t.platform ELSE m.platform END AS b_platform,
               CASE WHEN m.platform < t.platform THEN m.name ELSE t.name END AS a_name,
               CASE WHEN m.platform < t.platform THEN t.name ELSE m.name END AS b_name,
               m.phone, m.province, m.city
        FROM mine m JOIN theirs t
          ON t.phone = m.phone AND t.surname = m.surname AND t.city = m.city
         AND t.platform <> m.platform AND t.customer_id <> m.customer_id
    ) p
    ORDER BY a_id, b_id
)
INSERT INTO merge_suggestions AS ms (tenant_id, id, customer_id, other_customer_id, status,
                                     evidence, created_at)
SELECT :tenant_id, {UUID7_SQL}, a_id, b_id, 'open',
       jsonb_build_object(
           'rule', CAST(:rule AS text),
           'platforms', jsonb_build_array(a_platform, b_platform),
           'receiver_names', jsonb_build_array(a_name, b_name),
           'receiver_phone', phone, 'province', province, 'city', city),
       :now
FROM pairs
ON CONFLICT (tenant_id, customer_id, other_customer_id) DO NOTHING
"""


_PLANNER_SETTINGS = "SELECT current_setting('enable_mergejoin'), current_setting('jit')"
_SET_PLANNER = (
    "SELECT set_config('enable_mergejoin', :mergejoin, true), set_config('jit', :jit, true)"
)


async def suggest_merges(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_ids: Sequence[uuid.UUID],
    now: datetime,
    fresh: bool = False,
) -> None:
    """Record look-alike pairs involving `customer_ids`; dismissed pairs stay dismissed.

    `fresh`: the caller's transaction has just written many orders (10,000 or more)."""
    if not customer_ids:
        return
    platforms = await session.scalar(text(_PLATFORMS_WITH_ORDERS), {"tenant_id": tenant_id})
    if (platforms or 0) < 2:
        return  # a pair needs orders on two platforms
    if fresh:
        # Orders written by an open transaction are invisible to autovacuum; planned on the
        # statistics of a smaller table, a 40,000-order first import's suggestions ran for over
        # 10 minutes. ANALYZE in the same transaction samples them.
        await session.execute(text(_ANALYZE_ORDERS))
    # Hash joins, not the merge joins the planner picks on its row estimates of the platform
    # inequality: those sorted all the tenant's orders on disk (a 1M-order Pinduoduo import
    # next to 1M Tmall orders: 8.6 s, with hash joins 4.4 s). No JIT: compiling it took
    # 1.0-1.2 s there, and it ran 0.7-0.9 s faster without. For this statement only.
    previous = (await session.execute(text(_PLANNER_SETTINGS))).one()
    await session.execute(text(_SET_PLANNER), {"mergejoin": "off", "jit": "off"})
    await session.execute(
        text(_SUGGEST),
        {
            "tenant_id": tenant_id,
            "customer_ids": list(customer_ids),
            "rule": SUGGESTION_RULE,
            "now": now,
        },
    )
    await session.execute(text(_SET_PLANNER), {"mergejoin": previous[0], "jit": previous[1]})


async def list_suggestions(
    session: AsyncSession,
    actor: Principal,
    status: str | None,
    customer_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[MergeSuggestion], str | None]:
    actor.require("customers:read")
    query = select(MergeSuggestion).where(MergeSuggestion.tenant_id == actor.tenant_id)
    if status:
        query = query.where(MergeSuggestion.status == status)
    if customer_id:
        query = query.where(
            (MergeSuggestion.customer_id == customer_id)
            | (MergeSuggestion.other_customer_id == customer_id)
        )
    if cursor:
        query = query.where(MergeSuggestion.id > cursor_id(cursor))
    rows = list((await session.scalars(query.order_by(MergeSuggestion.id).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor({"id": str(rows[-1].id)}) if more else None


async def dismiss_suggestion(
    session: AsyncSession, actor: Principal, suggestion_id: uuid.UUID, now: datetime
) -> MergeSuggestion:
    actor.require("customers:merge")
    suggestion = await session.get(
        MergeSuggestion, (actor.tenant_id, suggestion_id), with_for_update=True
    )
    if suggestion is None:
        raise NotFound("no such merge suggestion")
    if suggestion.status != "dismissed":
        suggestion.status = "dismissed"
        suggestion.resolved_at = now
        await session.flush()
    return suggestion


_MOVE = [
    # Contacts and addresses keep their order after the survivor's own; a contact the survivor
    # already has (same kind and lookup hash) is dropped rather than duplicated.
    """DELETE FROM customer_contacts m USING customer_contacts s
       WHERE m.tenant_id = :tenant_id AND m.customer_id = :merged
         AND s.tenant_id = :tenant_id AND s.customer_id = :survivor
         AND s.kind = m.kind AND s.value_hash = m.value_hash""",
    """UPDATE customer_contacts SET customer_id = :survivor,
           position = position + 1 + coalesce((SELECT max(position) FROM customer_contacts
                                                WHERE tenant_id = :tenant_id
                                                  AND customer_id = :survivor), -1)
       WHERE tenant_id = :tenant_id AND customer_id = :merged""",
    """UPDATE customer_addresses SET customer_id = :survivor, is_default = false,
           position = position + 1 + coalesce((SELECT max(position) FROM customer_addresses
                                                WHERE tenant_id = :tenant_id
                                                  AND customer_id = :survivor), -1)
       WHERE tenant_id = :tenant_id AND customer_id = :merged""",
    """UPDATE customer_identities SET customer_id = :survivor
       WHERE tenant_id = :tenant_id AND customer_id = :merged""",
    """UPDATE orders SET customer_id = :survivor
       WHERE tenant_id = :tenant_id AND customer_id = :merged""",
    """UPDATE interactions SET customer_id = :survivor
       WHERE tenant_id = :tenant_id AND customer_id = :merged""",
]

_MOVED_COUNTS = """
SELECT (SELECT count(*) FROM customer_identities
         WHERE tenant_id = :tenant_id AND customer_id = :merged) AS identities,
       (SELECT count(*) FROM orders WHERE tenant_id = :tenant_id AND customer_id = :merged)
           AS orders,
       (SELECT count(*) FROM interactions WHERE tenant_id = :tenant_id AND customer_id = :merged)
           AS interactions
"""


async def merge_customers(
    session: AsyncSession,
    actor: Principal,
    survivor_id: uuid.UUID,
    merged_id: uuid.UUID,
    now: datetime,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Move everything of `merged_id` onto `survivor_id`, delete it, and audit the merge."""
    actor.require("customers:merge")
    if survivor_id == merged_id:
        raise ValidationFailed(
            "a customer cannot be merged into itself",
            [FieldError(["body", "other_customer_id"], "must be another customer")],
        )
    tenant_id = actor.tenant_id
    first, second = sorted([survivor_id, merged_id])
    locked = {
        c.id: c
        for c in (
            await session.scalars(
                select(Customer)
                .where(Customer.tenant_id == tenant_id, Customer.id.in_([first, second]))
                .order_by(Customer.id)
                .with_for_update()
            )
        ).all()
    }
    survivor, merged = locked.get(survivor_id), locked.get(merged_id)
    if survivor is None:
        raise NotFound("no such customer")
    if merged is None:
        raise NotFound(
            "no such customer to merge",
            [FieldError(["body", "other_customer_id"], "no such customer")],
        )
    params = {"tenant_id": tenant_id, "survivor": survivor_id, "merged": merged_id}
    moved = dict((await session.execute(text(_MOVED_COUNTS), params)).one()._mapping)
    for statement in _MOVE:
        await session.execute(text(statement), params)
    for hook in MERGE_HOOKS:
        await hook(session, tenant_id, survivor_id, merged_id, now)
    survivor.tags = list(dict.fromkeys([*survivor.tags, *merged.tags]))
    survivor.attributes = {**merged.attributes, **survivor.attributes}
    for name in ("display_name", "gender", "birthday", "province", "city", "district"):
        if getattr(survivor, name) is None:
            setattr(survivor, name, getattr(merged, name))
    survivor.version += 1
    survivor.updated_at = now
    await session.flush()
    deleted = await _delete_or_tombstone(session, merged, survivor_id, now)
    # Both: the survivor gains the orders; a merged customer kept as a tombstone loses them
    # (its facts and months become empty); a deleted one is skipped by the refresh.
    await refresh_customer_facts(session, tenant_id, [survivor_id, merged_id])
    await privacy.record(
        session,
        actor,
        "customer.merge",
        "customer",
        survivor_id,
        request_id=request_id,
        details={"merged_customer_id": str(merged_id), "moved": moved, "deleted": deleted},
    )
    return {"customer_id": survivor_id, "merged_customer_id": merged_id, "moved": moved}


async def _delete_or_tombstone(
    session: AsyncSession, merged: Customer, survivor_id: uuid.UUID, now: datetime
) -> bool:
    """Delete the emptied customer, unless a domain keeps history naming it (a loyalty ledger
    is append-only): then it stays as an empty record pointing at the survivor, which every
    customer read, list, segment and report leaves out."""
    try:
        async with session.begin_nested():
            await session.execute(
                delete(Customer).where(
                    Customer.tenant_id == merged.tenant_id, Customer.id == merged.id
                )
            )
    except IntegrityError:
        merged.tags, merged.attributes, merged.merged_into_id = [], {}, survivor_id
        merged.version += 1
        merged.updated_at = now
        await session.flush()
        return False
    session.expunge(merged)
    return True
