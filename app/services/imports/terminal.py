"""`kezhan import`: the same import pipeline as the API, from files on disk, with a progress bar."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, BinaryIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.config import Settings
from app.main import create_app
from app.models import Import
from app.services.imports import pipeline


class DiskUpload:
    """A file on disk offered like an uploaded file."""

    def __init__(self, path: Path, handle: BinaryIO) -> None:
        self.filename: str | None = path.name
        self._handle = handle

    async def read(self, size: int = -1) -> bytes:
        return self._handle.read(size)


async def import_files(
    settings: Settings,
    paths: list[Path],
    platform: str,
    shop_id: uuid.UUID,
    key: str,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Create the import as the API does, then run its job here, showing progress."""
    console = Console(stderr=True)
    settings = settings.model_copy(update={"job_worker_in_process": False})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        actor = await runtime.keys.verify(key)
        handles = [path.open("rb") for path in paths]
        try:
            async with runtime.sessions() as session:
                created = await pipeline.create_import(
                    session,
                    settings,
                    actor,
                    [DiskUpload(p, h) for p, h in zip(paths, handles, strict=True)],
                    platform,
                    shop_id,
                    dry_run,
                    runtime.clock(),
                )
                await session.commit()
            import_id = created.import_id
            assert import_id is not None
        finally:
            for handle in handles:
                handle.close()
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("parsing", total=None)

            async def progress(done: int, total: int | None) -> None:
                bar.update(task, description="loading", completed=done, total=total)

            await pipeline.run_import(runtime, actor.tenant_id, import_id, on_progress=progress)
            bar.update(task, description="done")
        async with runtime.read_sessions() as session:
            finished = await session.get(Import, (actor.tenant_id, import_id))
        assert finished is not None
        _report(console, finished)
        return {"id": str(finished.id), "status": finished.status, "counts": finished.counts}


def _report(console: Console, row: Import) -> None:
    if row.status != "succeeded":
        console.print(f"[red]import {row.id} {row.status}[/red]: {row.error}")
        return
    table = Table(title=f"import {row.id}" + (" (dry run)" if row.dry_run else ""))
    table.add_column("count")
    table.add_column("value", justify="right")
    for name, value in row.counts.items():
        table.add_row(name, str(value))
    console.print(table)
