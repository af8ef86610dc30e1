"""The loader's COPY stream: frames of several tables, sliced into files produced in a worker
thread one ahead of the database. Rows land in their tables in order; a producer that fails
stops the stream with its error, is closed, and leaves no file behind."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import text

from app.runtime import Runtime
from app.services.imports import load


@pytest.fixture
def small_slices(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Slices of two rows (so every frame here spans several files), written under tmp_path."""
    monkeypatch.setattr(load, "_COPY_ROWS", 2)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


async def test_frames_land_in_their_tables_in_order(runtime: Runtime, small_slices: Path) -> None:
    empty = pl.DataFrame(schema={"n": pl.Int64(), "label": pl.String()})
    parts = [
        ("copy_a", pl.DataFrame({"n": [0, 1, 2, 3, 4], "label": ["a", "b,c", 'd"e', None, "f"]})),
        ("copy_b", pl.DataFrame({"n": [9]})),
        ("copy_a", empty),
        ("copy_a", pl.DataFrame({"n": [5, 6], "label": ["g", "h"]})),
    ]
    async with runtime.sessions() as session:
        await session.execute(text("CREATE TEMP TABLE copy_a (n int, label text)"))
        await session.execute(text("CREATE TEMP TABLE copy_b (n int)"))
        spent = await load._copy(session, parts)
        a = (await session.execute(text("SELECT n, label FROM copy_a ORDER BY ctid"))).all()
        b = (await session.execute(text("SELECT n FROM copy_b"))).scalars().all()
        await session.rollback()
    assert [tuple(row) for row in a] == [
        (0, "a"), (1, "b,c"), (2, 'd"e'), (3, None), (4, "f"), (5, "g"), (6, "h")
    ]  # fmt: skip
    assert b == [9]
    assert set(spent) == {"copy_a", "copy_b"}
    assert all(seconds >= 0 for seconds in spent.values())
    assert list(small_slices.iterdir()) == []


def _producer(
    parts: list[tuple[str, pl.DataFrame]], closed: list[bool], error: Exception | None = None
) -> Iterator[tuple[str, pl.DataFrame]]:
    """`parts`, then `error` if given; notes in `closed` when it is let go."""
    try:
        yield from parts
        if error is not None:
            raise error
    finally:
        closed.append(True)


async def test_a_failing_producer_stops_the_stream(runtime: Runtime, small_slices: Path) -> None:
    closed: list[bool] = []
    parts = _producer(
        [("copy_c", pl.DataFrame({"n": [1, 2, 3]}))], closed, RuntimeError("sealing failed")
    )
    async with runtime.sessions() as session:
        await session.execute(text("CREATE TEMP TABLE copy_c (n int)"))
        with pytest.raises(RuntimeError, match="sealing failed"):
            await load._copy(session, parts)
        # What came before the failure is only in the transaction, which the caller rolls back.
        assert await session.scalar(text("SELECT count(*) FROM copy_c")) == 3
        await session.rollback()
    assert closed == [True]
    assert list(small_slices.iterdir()) == []


async def test_a_failing_copy_closes_the_producer(runtime: Runtime, small_slices: Path) -> None:
    closed: list[bool] = []
    parts = _producer(
        [
            ("copy_d", pl.DataFrame({"n": ["1", "2", "not a number", "4", "5"]})),
            ("copy_d", pl.DataFrame({"n": ["6"]})),
        ],
        closed,
    )
    async with runtime.sessions() as session:
        await session.execute(text("CREATE TEMP TABLE copy_d (n int)"))
        with pytest.raises(Exception, match="invalid input syntax"):
            await load._copy(session, parts)
        await session.rollback()
    assert closed == [True]
    assert list(small_slices.iterdir()) == []
