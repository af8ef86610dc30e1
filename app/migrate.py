"""Schema migrations: apply them, and tell whether a database is at the code's head."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """The job queue's tables belong to procrastinate's schema script, not to our models."""
    return not (type_ == "table" and (name or "").startswith("procrastinate_"))


def alembic_config(plain_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = plain_url
    return config


def head_revisions() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config(""))
    return set(script.get_heads())


def upgrade(plain_url: str, target: str = "heads") -> None:
    """Blocking: run from a thread or a CLI, never on a running event loop."""
    command.upgrade(alembic_config(plain_url), target)


def downgrade(plain_url: str, target: str = "base") -> None:
    command.downgrade(alembic_config(plain_url), target)


async def upgrade_async(plain_url: str, target: str = "heads") -> None:
    await asyncio.to_thread(upgrade, plain_url, target)


async def current_revisions(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        heads = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads())
    return set(heads)


class SchemaBehind(RuntimeError):
    """The database is at an older migration than this code."""


async def ensure_at_head(engine: AsyncEngine) -> None:
    current, expected = await current_revisions(engine), head_revisions()
    if current != expected:
        raise SchemaBehind(
            f"database schema is at {sorted(current) or 'nothing'} but this code needs "
            f"{sorted(expected)}: run `kezhan migrate` first"
        )
