"""The `kezhan` command: serve, migrate, manage tenants."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer

from app.config import Settings, get_settings
from app.db import create_engine, create_sessionmaker, libpq_url
from app.migrate import ensure_at_head, upgrade

app = typer.Typer(
    help="Kezhan (客栈): customer data for marketplace sellers.", no_args_is_help=True
)
tenant_app = typer.Typer(help="Manage tenants.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
facts_app = typer.Typer(
    help="Customer facts, RFM scores and lifecycle stages.", no_args_is_help=True
)
app.add_typer(facts_app, name="facts")


def _say(message: str) -> None:
    """Human messages go to stderr so stdout stays clean for scripts."""
    typer.echo(message, err=True)


def _prepare(settings: Settings) -> str:
    """Start the embedded database if configured and bring it to the code's schema."""
    url = libpq_url(settings)
    if settings.embedded:
        upgrade(url)
    return url


async def _create_tenant(settings: Settings, url: str, name: str) -> str:
    from app.services.auth import create_tenant

    engine = create_engine(url, settings)
    try:
        await ensure_at_head(engine)
        async with create_sessionmaker(engine)() as session:
            _, issued = await create_tenant(session, name)
            await session.commit()
            return issued.secret
    finally:
        await engine.dispose()


async def _ensure_demo(settings: Settings, url: str) -> str | None:
    """On the first start of an empty embedded database, a demo tenant to try the API with."""
    from app.services.auth import any_tenant
    from app.services.demo import seed_demo_tenant

    key_file = settings.data_dir / "demo-key.txt"
    engine = create_engine(url, settings)
    try:
        async with create_sessionmaker(engine)() as session:
            if await any_tenant(session):
                return key_file.read_text().strip() if key_file.exists() else None
            key = await seed_demo_tenant(session, settings)
            await session.commit()
    finally:
        await engine.dispose()
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return key


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the API (migrating the embedded database first)."""
    import uvicorn

    from app.main import create_app

    settings = get_settings()
    url = _prepare(settings)
    if settings.embedded and settings.demo_data:
        key = asyncio.run(_ensure_demo(settings, url))
        if key:
            _say(
                f"\n  Kezhan is starting on http://{host}:{port}  (API docs: /docs)\n"
                f"  Demo tenant API key: {key}\n"
                f"  (kept in {settings.data_dir / 'demo-key.txt'}; use it in /docs → Authorize)\n"
            )
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)


@app.command()
def migrate() -> None:
    """Apply every pending schema migration."""
    settings = get_settings()
    upgrade(libpq_url(settings))
    _say("database schema is up to date")


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Argument(help="The seller organisation's name.")],
) -> None:
    """Create a tenant; prints only its owner API key, so `KEY=$(kezhan tenant create x)` works."""
    settings = get_settings()
    url = _prepare(settings)
    key = asyncio.run(_create_tenant(settings, url, name))
    sys.stdout.write(key + "\n")


async def _rebuild_facts(settings: Settings, url: str, tenant: uuid.UUID | None) -> int:
    from app.models.base import utcnow
    from app.services.segments.jobs import rebuild, tenant_ids

    engine = create_engine(url, settings)
    try:
        await ensure_at_head(engine)
        sessions = create_sessionmaker(engine)
        targets = [tenant] if tenant else await tenant_ids(sessions)
        for tenant_id in targets:
            await rebuild(sessions, tenant_id, utcnow())
            _say(f"rebuilt facts, RFM and lifecycle for tenant {tenant_id}")
        return len(targets)
    finally:
        await engine.dispose()


@facts_app.command("rebuild")
def facts_rebuild(
    tenant: Annotated[
        uuid.UUID | None, typer.Option(help="Only this tenant (default: every tenant).")
    ] = None,
) -> None:
    """Recompute every customer's facts from the orders, then RFM and lifecycle stages."""
    settings = get_settings()
    url = _prepare(settings)
    count = asyncio.run(_rebuild_facts(settings, url, tenant))
    _say(f"done: {count} tenant(s)")


@app.command("import")
def import_command(
    files: Annotated[list[Path], typer.Argument(help="Export files (Tmall: list + detail).")],
    platform: Annotated[str, typer.Option(help="Export format: tmall or pinduoduo.")],
    shop: Annotated[uuid.UUID, typer.Option(help="The shop's id (GET /api/v1/shops).")],
    key: Annotated[
        str, typer.Option(envvar="KEZHAN_API_KEY", help="An API key of the tenant (importer role).")
    ],
    dry_run: Annotated[bool, typer.Option(help="Count only, write nothing.")] = False,
) -> None:
    """Import marketplace export files, as POST /api/v1/imports does, with a progress bar."""
    import json

    from app.services.imports.terminal import import_files

    settings = get_settings()
    _prepare(settings)
    result = asyncio.run(import_files(settings, files, platform, shop, key, dry_run))
    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    if result["status"] != "succeeded":
        raise typer.Exit(1)


@app.command()
def worker(
    queue: Annotated[
        list[str] | None, typer.Option(help="Only these queues (default: all).")
    ] = None,
) -> None:
    """Run the job worker (imports, recomputes) as its own process."""
    from app.worker import run_worker

    settings = get_settings()
    _prepare(settings)
    asyncio.run(run_worker(settings, queue))


if __name__ == "__main__":
    app()
