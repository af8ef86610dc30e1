"""The schema comes only from migrations: they match the models and run down and up again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from app.migrate import downgrade, head_revisions, include_object, upgrade
from app.models import Base
from tests.conftest import _create_database, _drop_database


@pytest.fixture
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"kezhan_migrations_{uuid.uuid4().hex[:10]}"
    url = asyncio.run(_create_database(server_url, name))
    yield url
    asyncio.run(_drop_database(server_url, name))


def _differences(url: str) -> list[object]:
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": include_object}
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_models_and_migrations_agree(database_url: str) -> None:
    assert _differences(database_url) == []


def test_downgrade_to_base_and_upgrade_again(scratch_database: str) -> None:
    upgrade(scratch_database)
    downgrade(scratch_database, "base")
    upgrade(scratch_database)
    assert _differences(scratch_database) == []


async def test_app_refuses_to_start_on_a_database_behind(scratch_database: str) -> None:
    from app.config import Settings
    from app.main import create_app
    from app.migrate import SchemaBehind

    app = create_app(Settings(environment="test", database_url=scratch_database))
    with pytest.raises(SchemaBehind, match="kezhan migrate"):
        async with app.router.lifespan_context(app):
            pass
    assert head_revisions()
