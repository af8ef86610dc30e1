"""customer rollups: one rebuild for a writer that changes most of a tenant's customers

A tenant's first big import writes its customers, then their facts, in statements that each
rebuild the tenant's rollups from scratch (migration 0013): two or three rebuilds where the last
one alone gives the same rows (1-2 s each at 300,000-600,000 customers). Such a writer now
defers the upkeep: `customer_rollups_defer` takes the tenant's lock exclusively (no other writer
can change its customers until commit) and names the tenant in the transaction-local setting
`kezhan.rollups_rebuild`; while it is set, the triggers leave the tenant's rollups alone, and
`customer_rollups_finish` rebuilds them once before the writer commits. A writer that aborts
leaves nothing behind: the setting, like its writes, ends with the transaction.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27 04:00:00.000000+00:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rollups_migration() -> ModuleType:
    """Migration 0013, whose rebuild query and thresholds these functions keep."""
    spec = importlib.util.spec_from_file_location(
        "kezhan_migration_0013", Path(__file__).with_name("0013_customer_rollups.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_M0013 = _rollups_migration()
_LARGE = _M0013._LARGE

DEFERRED_FUNCTION = """
CREATE FUNCTION customer_rollups_deferred() RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('kezhan.rollups_rebuild', true), '')::uuid
$$
"""

REBUILD_FUNCTION = f"""
CREATE FUNCTION customer_rollups_rebuild(live uuid[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM customer_rollups WHERE tenant_id = ANY(live);
    {_M0013._BACKFILL_ROWS} AND c.tenant_id = ANY(live) GROUP BY {_M0013._KEY};
END $$
"""

# 0013's, with the deferred tenant skipped and the rebuild in its own function.
PREPARE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION customer_rollups_prepare(touched uuid[], n bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    live uuid[];
BEGIN
    SELECT array_agg(id ORDER BY id) INTO live FROM tenants WHERE id = ANY(touched);
    IF live IS NULL OR n = 0 OR live = ARRAY[customer_rollups_deferred()] THEN
        RETURN true;
    END IF;
    PERFORM customer_rollups_lock(t, n >= {_LARGE}) FROM unnest(live) t;
    IF n >= {_LARGE} AND n * 2 >= (SELECT coalesce(sum(customers), 0) FROM customer_rollups
                                   WHERE tenant_id = ANY(live)) THEN
        PERFORM customer_rollups_rebuild(live);
        RETURN true;
    END IF;
    RETURN false;
END $$
"""

# Defers when the writer is about to change `n` customers, n being large and at least half the
# tenant (when its statements would rebuild the rollups anyway); true while deferred.
DEFER_FUNCTION = f"""
CREATE FUNCTION customer_rollups_defer(tenant uuid, n bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF customer_rollups_deferred() IS NOT DISTINCT FROM tenant THEN
        RETURN true;
    END IF;
    IF customer_rollups_deferred() IS NOT NULL OR n < {_LARGE} THEN
        RETURN false;
    END IF;
    IF n * 2 < (SELECT coalesce(sum(customers), 0) FROM customer_rollups
                WHERE tenant_id = tenant) THEN
        RETURN false;
    END IF;
    PERFORM customer_rollups_lock(tenant, true);
    PERFORM set_config('kezhan.rollups_rebuild', tenant::text, true);
    RETURN true;
END $$
"""

FINISH_FUNCTION = """
CREATE FUNCTION customer_rollups_finish(tenant uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF customer_rollups_deferred() IS NOT DISTINCT FROM tenant THEN
        PERFORM set_config('kezhan.rollups_rebuild', '', true);
        PERFORM customer_rollups_rebuild(ARRAY[tenant]);
    END IF;
END $$
"""

NEW_FUNCTIONS = [
    ("customer_rollups_deferred", DEFERRED_FUNCTION),
    ("customer_rollups_rebuild", REBUILD_FUNCTION),
    ("customer_rollups_defer", DEFER_FUNCTION),
    ("customer_rollups_finish", FINISH_FUNCTION),
]


def upgrade() -> None:
    for _, function in NEW_FUNCTIONS:
        op.execute(function)
    op.execute(PREPARE_FUNCTION)


def downgrade() -> None:
    op.execute(_M0013.PREPARE_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
    for function, _ in reversed(NEW_FUNCTIONS):
        op.execute(f"DROP FUNCTION {function}")
