"""Shared bench plumbing: a fresh migrated database, servers on loopback, wrk runs."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from app.db import start_embedded_postgres
from app.migrate import upgrade

BENCH_DATA = Path(__file__).resolve().parent / "data"


def server_url() -> str:
    external = os.environ.get("DATABASE_URL")
    if external:
        return make_url(external).set(drivername="postgresql").render_as_string(False)
    return start_embedded_postgres(BENCH_DATA, database="postgres")


def fresh_database(prefix: str) -> str:
    """Create and migrate a new database for this run; returns its plain URL."""
    root = server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(root)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    url = make_url(root).set(database=name).render_as_string(False)
    upgrade(url)
    return url


def drop_database(url: str) -> None:
    """Drop a database made by `fresh_database` (benches that keep nothing for reuse)."""
    name = make_url(url).database

    async def drop() -> None:
        conn = await asyncpg.connect(server_url())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def bench_keys() -> dict[str, str]:
    return {
        "KEZHAN_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "KEZHAN_LOOKUP_KEY": base64.b64encode(os.urandom(32)).decode(),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_server_pids: dict[str, int] = {}


def server_cpu_seconds(url: str) -> float:
    """User + system CPU time used so far by the server process behind `url` (Linux)."""
    fields = Path(f"/proc/{_server_pids[url]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serve(app: str, env: dict[str, str], factory: bool = False) -> Iterator[str]:
    """Run `uvicorn app` (one worker) on a loopback port until the block ends."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--no-access-log"]
    args += ["--log-level", "warning"] + (["--factory"] if factory else [])
    proc = subprocess.Popen(
        args, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{app} did not start")
        url = f"http://127.0.0.1:{port}"
        _server_pids[url] = proc.pid
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def wrk(url: str, script: Path, seconds: int, connections: int = 64) -> dict[str, float]:
    """Requests/s and latency percentiles from wrk (apt-get install wrk)."""
    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark needs wrk: apt-get install wrk")
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        match = re.search(rf"{p}%\s+([\d.]+)(us|ms|s)", out)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} failed requests\n{out}")
    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99")}
