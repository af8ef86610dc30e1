"""`customer_rollups` upkeep outside the triggers: the tenant lock taken up front by large
writers, and compaction (a tenant's delta rows folded into one row per key).

A trigger on a statement of `LARGE` rows or more takes the tenant's rollup lock exclusively
(migration 0013), after its statement has written and locked its rows. A smaller writer holding
the lock shared that then waits for one of those rows would deadlock with it, so a caller that
knows it is about to write that many customers' rows takes the lock first (`lock_rollups`).

Triggers append one row per key and statement (app/models/analytics.py), so the table grows with
every write until compacted; the sums never change. Compaction deletes the rows it can see and
inserts their sums in one statement: rows other transactions add meanwhile are not in its
snapshot and stay for the next one. It holds the tenant's lock exclusively, like a rebuild, so
two of them never fold the same rows.

A writer that changes most of a tenant's customers in several large statements (a first big
import: customers, then their facts) would rebuild the rollups at each; it defers them instead
and rebuilds once before it commits (`defer_rollups`, `finish_rollups`).
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

LARGE = 10_000  # as `_LARGE` in migrations/versions/0013_customer_rollups.py

# The triggers' own lock function (migration 0013), taken exclusively.
_LOCK = text("SELECT customer_rollups_lock(:t, true)")

_DEFER = text("SELECT customer_rollups_defer(:t, :n)")
_FINISH = text("SELECT customer_rollups_finish(:t)")

_KEY = "tenant_id, province, city, rfm_r, rfm_f, rfm_group, stage"

_COMPACT = text(
    f"""
    WITH gone AS (
        DELETE FROM customer_rollups WHERE tenant_id = :tenant_id
        RETURNING {_KEY}, customers, buyers, spent_fen
    )
    INSERT INTO customer_rollups ({_KEY}, customers, buyers, spent_fen)
    SELECT {_KEY}, sum(customers), sum(buyers), sum(spent_fen)
    FROM gone
    GROUP BY {_KEY}
    HAVING sum(customers) <> 0 OR sum(buyers) <> 0 OR sum(spent_fen) <> 0
    """
)


async def lock_rollups(session: AsyncSession, tenant_id: uuid.UUID, rows: int) -> None:
    """Before writing `rows` customers' facts, scores or profiles in one statement: for a large
    statement, the tenant's rollup lock now, before any row lock (held until commit)."""
    if rows >= LARGE:
        await session.execute(_LOCK, {"t": tenant_id})


async def defer_rollups(session: AsyncSession, tenant_id: uuid.UUID, customers: int) -> bool:
    """Before a writer's statements change `customers` of the tenant's customers: when that is
    `LARGE` or more and at least half the tenant (each statement would rebuild the rollups),
    takes the tenant's lock and leaves its rollups alone until `finish_rollups`, which the
    writer must call before it commits (migration 0016). True while deferred."""
    deferred = await session.scalar(_DEFER, {"t": tenant_id, "n": customers})
    return bool(deferred)


async def finish_rollups(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """The one rebuild of a tenant whose rollups `defer_rollups` left alone (else nothing)."""
    await session.execute(_FINISH, {"t": tenant_id})


async def compact_rollups(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    # Under the tenant's lock: a rebuild by a large statement elsewhere (which deletes every row
    # it can see and inserts the sums from scratch) must not run beside a compaction, or the
    # compaction's sums, invisible to the rebuild, would be counted twice.
    await session.execute(_LOCK, {"t": tenant_id})
    await session.execute(_COMPACT, {"tenant_id": tenant_id})
