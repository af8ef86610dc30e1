"""Per-day pre-aggregates for the summary report, rebuilt by an idempotent job.

Each local day (tenant time zone) of a tenant's tickets is stored once per report dimension
(kind, category, channel, priority, staff, and `all` for the periods) with additive counts and
the sorted first-response and resolution minutes (packed big-endian float8s: `unpack` reads
them at C speed, where a `float8[]` costs the driver a Python object per value), so the report
adds counts and merges sorted runs instead of scanning and sorting every ticket.

A statement trigger on `tickets` records the creation hour of every changed ticket in
`ticket_rollup_dirty` inside the writing transaction; `refresh` rebuilds the days those hours
touch. The report reads a day from the rollups only if it is built in the current time zone
and has no dirty hour, and reads every other day straight from `tickets`, so its answers never
depend on the job having run.
"""

from __future__ import annotations

import sys
import uuid
from array import array
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import Date, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.tickets import config

# Dimensions stored; the periods (day, week, month) are read from `all`.
DIMENSIONS: dict[str, str] = {
    "kind": "kind",
    "category": "category",
    "channel": "channel",
    "priority": "priority",
    "staff": "coalesce(assignee_id::text, '')",
    "all": "''",
}
# Days rebuilt per statement: bounds the memory of one build (a day is ~3,000 tickets at 1M/yr).
DAYS_PER_BATCH = 31

_DAYS = ARRAY(Date)

_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:lock, 0))")

_DIRTY_DAYS = text(
    """
    WITH hours AS (DELETE FROM ticket_rollup_dirty WHERE tenant_id = :t RETURNING hour)
    SELECT DISTINCT d FROM hours, LATERAL (VALUES
        ((hour AT TIME ZONE :tz)::date),
        (((hour + interval '1 hour' - interval '1 microsecond') AT TIME ZONE :tz)::date)) v(d)
    ORDER BY d
    """
)


def _packed(value: str) -> str:
    """The non-null values, sorted, as concatenated big-endian float8s ('' when none)."""
    return (
        f"coalesce(string_agg(float8send({value}), ''::bytea ORDER BY {value}) "
        f"FILTER (WHERE {value} IS NOT NULL), ''::bytea)"
    )


_VALUES = ", ".join(f"('{name}', {expression})" for name, expression in DIMENSIONS.items())

_BUILD = text(
    f"""
    INSERT INTO ticket_rollups (tenant_id, dimension, key, day, tickets, breached, reopened,
        ever_resolved, csat_sum, csat_count, first_response_minutes, resolution_minutes)
    SELECT :t, g.dimension, g.key, s.day, count(*),
        count(*) FILTER (WHERE s.first_response_breached OR s.resolution_breached),
        count(*) FILTER (WHERE s.reopen_count > 0),
        count(*) FILTER (WHERE s.resolved_at IS NOT NULL OR s.reopen_count > 0),
        coalesce(sum(s.csat_score), 0), count(s.csat_score),
        {_packed("s.fr")}, {_packed("s.res")}
    FROM (
        SELECT t.*, (t.created_at AT TIME ZONE :tz)::date AS day,
            date_part('epoch', t.first_responded_at - t.created_at) / 60 AS fr,
            date_part('epoch', t.resolved_at - t.created_at) / 60 AS res
        FROM tickets t
        WHERE t.tenant_id = :t
          AND t.created_at >= (CAST(:first AS timestamp) AT TIME ZONE :tz) - interval '1 day'
          AND t.created_at
              < ((CAST(:last AS date) + 1)::timestamp AT TIME ZONE :tz) + interval '1 day'
          AND (t.created_at AT TIME ZONE :tz)::date = ANY(:days)
    ) s
    CROSS JOIN LATERAL (VALUES {_VALUES}) g(dimension, key)
    GROUP BY g.dimension, g.key, s.day
    """
).bindparams(
    bindparam("days", type_=_DAYS), bindparam("first", type_=Date), bindparam("last", type_=Date)
)


def unpack(packed: bytes) -> array[float]:
    """Packed big-endian float8s (`float8send` output, concatenated) as doubles, bit for bit."""
    values = array("d", packed)
    if sys.byteorder == "little":
        values.byteswap()
    return values


async def dirty_tenants(session: AsyncSession) -> list[uuid.UUID]:
    """Tenants with ticket changes not yet in their rollups, or whose time zone changed since
    their days were built (maintenance, across tenants)."""
    query = text(
        """
        SELECT tenant_id FROM ticket_rollup_dirty
        UNION
        SELECT d.tenant_id FROM ticket_rollup_days d
        LEFT JOIN ticket_settings s ON s.tenant_id = d.tenant_id
        WHERE d.timezone <> coalesce(s.timezone, :default)
        """
    )
    result = await session.execute(query, {"default": config.settings_out(None).timezone})
    return [row[0] for row in result]


async def refresh(session: AsyncSession, tenant_id: uuid.UUID, now: datetime) -> list[date]:
    """Rebuild the tenant's days with changed tickets (all days after a time zone change).

    Idempotent and safe to run concurrently: runs for one tenant take turns on an advisory lock,
    and the dirty hours are taken (deleted) before the days are read again, so a change that
    commits meanwhile leaves its own dirty hour behind for the next run. Returns the days built.
    """
    t = tenant_id
    await session.execute(_LOCK, {"lock": f"ticket_rollups:{tenant_id}"})
    timezone = config.settings_out(await config.load_settings(session, tenant_id)).timezone
    stale = await session.scalar(
        text("SELECT 1 FROM ticket_rollup_days WHERE tenant_id = :t AND timezone <> :tz LIMIT 1"),
        {"t": t, "tz": timezone},
    )
    if stale is not None:
        await session.execute(text("DELETE FROM ticket_rollups WHERE tenant_id = :t"), {"t": t})
        await session.execute(text("DELETE FROM ticket_rollup_days WHERE tenant_id = :t"), {"t": t})
        await session.execute(
            text(
                "INSERT INTO ticket_rollup_dirty (tenant_id, hour) SELECT DISTINCT tenant_id, "
                "date_trunc('hour', created_at) FROM tickets WHERE tenant_id = :t"
            ),
            {"t": t},
        )
    days: list[date] = list((await session.scalars(_DIRTY_DAYS, {"t": t, "tz": timezone})).all())
    for start in range(0, len(days), DAYS_PER_BATCH):
        await _build(session, t, timezone, days[start : start + DAYS_PER_BATCH], now)
    return days


async def _build(
    session: AsyncSession, t: uuid.UUID, timezone: str, days: Sequence[date], now: datetime
) -> None:
    params = {"t": t, "days": list(days)}
    delete = text("DELETE FROM ticket_rollups WHERE tenant_id = :t AND day = ANY(:days)")
    await session.execute(delete.bindparams(bindparam("days", type_=_DAYS)), params)
    await session.execute(_BUILD, {**params, "tz": timezone, "first": days[0], "last": days[-1]})
    mark = text(
        """
        INSERT INTO ticket_rollup_days (tenant_id, day, timezone, built_at)
        SELECT :t, d, :tz, :now FROM unnest(:days) d
        ON CONFLICT (tenant_id, day) DO UPDATE
        SET timezone = excluded.timezone, built_at = excluded.built_at
        """
    ).bindparams(bindparam("days", type_=_DAYS))
    await session.execute(mark, {**params, "tz": timezone, "now": now})
