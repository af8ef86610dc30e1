"""Loyalty ledger speed: postings over HTTP with 1 and 2 server processes, reads on a large
account and a large ledger, and what earning adds to an order load.

Targets (issue 5): posting throughput with 1 and 2 processes; balance / entries reads on an account
with 100,000 entries in a ledger of 10,000,000 entries; earning adds under 25% to the time of a
1,000,000-order import. Baseline in the same run: raw single-row INSERTs through asyncpg with the
same concurrency (what PostgreSQL alone does on this machine).

    python -m bench.loyalty_bench [--ledger 1000000] [--orders 20000] [--seconds 5] [--full]

`--full` uses the issue's sizes (10,000,000 entries, 1,000,000 orders): tens of minutes and
several GB on a small machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import text

import app.services.orders as orders_service
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.main import create_app
from app.services.auth import create_tenant
from bench.common import bench_keys, fresh_database, serve, wrk

NOW = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)
HOT_ENTRIES = 100_000
ENTRIES_PER_ACCOUNT = 100


def _uuid7(at: str) -> str:
    """A UUIDv7 whose time part is `at` (an SQL timestamptz expression), so ids sort by time."""
    return (
        "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
        f"substring(int8send(floor(extract(epoch FROM {at}) * 1000)::bigint) FROM 3) "
        "FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"
    )


def _entries_sql(accounts_table: str, per_account: int) -> str:
    """`per_account` bonus entries of 10 points for every customer of `accounts_table`, one lot
    each, with running balances: the shape of a real earned-and-kept history."""
    at = "($2::timestamptz - make_interval(mins => $3 - g))"
    return f"""
    WITH made AS (
        INSERT INTO loyalty_entries (tenant_id, id, customer_id, kind, points, balance_after,
            shortfall, source_type, actor, reason, idempotency_key, created_at)
        SELECT $1, {_uuid7(at)}, a.id, 'bonus', 10, 10 * g, 0, 'program', 'bench', 'seed',
               'seed:' || a.id || ':' || g, {at}
        FROM {accounts_table} a CROSS JOIN generate_series(1, $3) g
        RETURNING tenant_id, id, customer_id, created_at
    )
    INSERT INTO loyalty_lots (tenant_id, id, customer_id, entry_id, points, remaining,
        earned_at, expires_at)
    SELECT tenant_id, gen_random_uuid(), customer_id, id, 10, 10, created_at,
           created_at + interval '2 years'
    FROM made
    """


SEEDED_TABLES = ("loyalty_entries", "loyalty_lots")
SEED_CHUNK_ACCOUNTS = 5_000


async def _drop_keys(conn: asyncpg.Connection) -> list[str]:
    """Drop the seeded tables' indexes and constraints (but NOT NULL and checks) and return the
    statements that recreate them: a bulk seed then builds each index once instead of updating
    six of them row by row (10M entries took over 18 minutes with them in place)."""
    constraints = await conn.fetch(
        """SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def,
                  contype
           FROM pg_constraint
           WHERE (conrelid::regclass::text = ANY($1::text[]) AND contype IN ('p', 'u', 'f'))
              OR (confrelid::regclass::text = ANY($1::text[]) AND contype = 'f')
           ORDER BY contype = 'f' DESC""",
        list(SEEDED_TABLES),
    )
    indexes = await conn.fetch(
        """SELECT indexname, indexdef FROM pg_indexes
           WHERE tablename = ANY($1::text[])
             AND indexname NOT IN (SELECT conname FROM pg_constraint)""",
        list(SEEDED_TABLES),
    )
    for c in constraints:
        await conn.execute(f'ALTER TABLE {c["tbl"]} DROP CONSTRAINT "{c["conname"]}"')
    for i in indexes:
        await conn.execute(f'DROP INDEX "{i["indexname"]}"')
    recreate = [
        f'ALTER TABLE {c["tbl"]} ADD CONSTRAINT "{c["conname"]}" {c["def"]}'
        for c in reversed(constraints)  # keys first, then the foreign keys that need them
    ]
    return recreate + [i["indexdef"] for i in indexes]


async def seed(url: str, tenant_id: uuid.UUID, ledger: int) -> tuple[str, list[str]]:
    """One hot account with 100,000 entries and filler accounts up to `ledger` entries, written
    in chunks of accounts with the ledger's keys dropped, then rebuilt and analysed."""
    fillers = max((ledger - HOT_ENTRIES) // ENTRIES_PER_ACCOUNT, 1)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """INSERT INTO customers (tenant_id, id, tags, attributes, version, created_at,
                                      updated_at)
               SELECT $1, gen_random_uuid(), '{}', '{}', 1, $2, $2
               FROM generate_series(1, $3 + 1)""",
            tenant_id,
            NOW,
            fillers,
        )
        await conn.execute(
            "CREATE TABLE bench_hot AS SELECT id, 0 AS chunk FROM customers"
            " WHERE tenant_id = $1 LIMIT 1",
            tenant_id,
        )
        await conn.execute(
            f"""CREATE TABLE bench_fill AS
                SELECT id, (row_number() OVER () - 1) / {SEED_CHUNK_ACCOUNTS} AS chunk
                FROM customers WHERE tenant_id = $1 AND id <> (SELECT id FROM bench_hot)""",
            tenant_id,
        )
        recreate = await _drop_keys(conn)
        for table, per_account in (("bench_hot", HOT_ENTRIES), ("bench_fill", ENTRIES_PER_ACCOUNT)):
            await conn.execute(
                f"""INSERT INTO loyalty_accounts (tenant_id, customer_id, balance,
                        lifetime_points, tier, created_at, updated_at)
                    SELECT $1, id, 10 * $2::bigint, 10 * $2::bigint, 'regular', $3, $3
                    FROM {table}""",
                tenant_id,
                per_account,
                NOW,
            )
            chunks = await conn.fetchval(f"SELECT max(chunk) + 1 FROM {table}")
            for chunk in range(chunks):
                await conn.execute(
                    _entries_sql(f"(SELECT id FROM {table} WHERE chunk = {chunk})", per_account),
                    tenant_id,
                    NOW,
                    per_account,
                )
                print(f"seed: {table} chunk {chunk + 1}/{chunks}", flush=True)
        for statement in recreate:
            await conn.execute(statement)
        await conn.execute("ANALYZE")
        hot = str(await conn.fetchval("SELECT id FROM bench_hot"))
        sample = [str(r["id"]) for r in await conn.fetch("SELECT id FROM bench_fill LIMIT 2000")]
        return hot, sample
    finally:
        await conn.close()


def _lua(method: str, paths: list[str], key: str, body: str | None = None) -> Path:
    script = f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    script += 'wrk.headers["Content-Type"] = "application/json"\n'
    script += "paths = {" + ",".join(f'"{p}"' for p in paths) + "}\ncounter = 0\n"
    script += (
        "init = function(args) math.randomseed(os.time() + math.floor(os.clock() * 1e6)) end\n"
    )
    if body is None:
        script += (
            f'request = function()\n  return wrk.format("{method}", paths[math.random(#paths)])\n'
            "end\n"
        )
    else:
        # A fresh Idempotency-Key per request: every request is a new posting, never a replay.
        script += (
            "request = function()\n  counter = counter + 1\n"
            '  wrk.headers["Idempotency-Key"] = string.format("%d-%d-%d", os.time(), counter,'
            " math.random(1, 2147483647))\n"
            f"  return wrk.format(\"{method}\", paths[math.random(#paths)], nil, '{body}')\n"
            "end\n"
        )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    return Path(handle.name)


async def raw_insert_rate(url: str, seconds: float, concurrency: int) -> float:
    """Single-row INSERT transactions per second straight through asyncpg (the floor)."""
    pool = await asyncpg.create_pool(url, min_size=10, max_size=10)
    assert pool is not None
    try:
        await pool.execute(
            """CREATE TABLE IF NOT EXISTS bench_raw (tenant_id uuid, id uuid,
               customer_id uuid, points bigint, reason text, created_at timestamptz,
               PRIMARY KEY (tenant_id, id))"""
        )
        stop = time.monotonic() + seconds
        done = 0

        async def worker() -> None:
            nonlocal done
            tenant = uuid.uuid4()
            while time.monotonic() < stop:
                await pool.execute(
                    "INSERT INTO bench_raw VALUES ($1, $2, $3, 1, 'raw', now())",
                    tenant,
                    uuid.uuid4(),
                    tenant,
                )
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.monotonic() - started)
    finally:
        await pool.close()


async def timed_get(client: httpx.AsyncClient, path: str, key: str, count: int) -> float:
    """Median milliseconds of `count` sequential GETs."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.get(path, headers={"Authorization": f"Bearer {key}"})
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return sorted(times)[len(times) // 2]


def _orders(tag: str, start: int, count: int) -> list[dict[str, Any]]:
    done = NOW - timedelta(days=1)
    return [
        {
            "order_no": f"{tag}{n:08d}",
            "status": "completed",
            "buyer_key": f"{tag}-buyer-{n % (count * 4 // 5 + 1)}",
            "paid_fen": 1000 + n % 50_000,
            "ordered_at": done.isoformat(),
            "paid_at": done.isoformat(),
            "completed_at": done.isoformat(),
        }
        for n in range(start, start + count)
    ]


async def earning_overhead(settings: Settings, orders: int) -> dict[str, float]:
    """The same JSON order batches loaded with and without the loyalty hook, interleaved."""
    application = create_app(settings, clock=lambda: NOW)
    real_hook = orders_service.loyalty_hook
    engine = create_engine(str(settings.database_url), settings)
    totals = {"without": 0.0, "with": 0.0}
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            ctx = {}
            for variant in totals:
                async with create_sessionmaker(engine)() as session:
                    tenant, issued = await create_tenant(session, f"earning {variant}")
                    await session.commit()
                headers = {"Authorization": f"Bearer {issued.secret}"}
                shop = await client.post(
                    "/api/v1/shops", json={"platform": "offline", "name": "s"}, headers=headers
                )
                ctx[variant] = (headers, shop.json()["id"], tenant.id)
            batch = 1000
            for start in range(0, orders, batch):
                for variant in totals:
                    headers, shop_id, _ = ctx[variant]
                    orders_service.loyalty_hook = (  # type: ignore[assignment]
                        real_hook if variant == "with" else (lambda: None)
                    )
                    body = {"shop_id": shop_id, "orders": _orders(variant[:1], start, batch)}
                    started = time.perf_counter()
                    response = await client.post("/api/v1/orders/batch", json=body, headers=headers)
                    totals[variant] += time.perf_counter() - started
                    assert response.status_code == 200, response.text
            orders_service.loyalty_hook = real_hook
            earned = await engine.connect()
            try:
                count = (
                    await earned.execute(
                        text("SELECT count(*) FROM loyalty_order_earns WHERE tenant_id = :t"),
                        {"t": ctx["with"][2]},
                    )
                ).scalar_one()
            finally:
                await earned.close()
    await engine.dispose()
    return {**totals, "earned_orders": float(count)}


@contextmanager
def servers(count: int, env: dict[str, str]) -> Iterator[list[str]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(serve("app.main:create_app", env, factory=True))
            for _ in range(count)
        ]


def parallel_wrk(urls: list[str], script: Path, seconds: int, connections: int) -> dict[str, float]:
    """One wrk per server at once; requests/s summed, latencies of the slowest."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(urls)) as pool:
        runs = list(pool.map(lambda u: wrk(u, script, seconds, connections // len(urls)), urls))
    return {
        "rps": sum(r["rps"] for r in runs),
        "p50_ms": max(r["p50_ms"] for r in runs),
        "p99_ms": max(r["p99_ms"] for r in runs),
    }


def http_runs(
    url: str,
    keys: dict[str, str],
    api_key: str,
    hot: str,
    sample: list[str],
    args: argparse.Namespace,
    parts: set[str],
) -> dict[str, Any]:
    """Postings with 1 and 2 server processes, reads on the hot account (wrk)."""
    env = {
        **keys,
        "DATABASE_URL": url,
        "KEZHAN_JOB_WORKER_IN_PROCESS": "false",
        "KEZHAN_LOG_LEVEL": "WARNING",
        "KEZHAN_DB_POOL_SIZE": "10",
        "KEZHAN_DB_READ_POOL_SIZE": "4",
    }
    credit = _lua(
        "POST",
        [f"/api/v1/loyalty/accounts/{c}/adjustments" for c in sample],
        api_key,
        '{"points": 5, "reason": "bench"}',
    )
    redeem = _lua(
        "POST",
        [f"/api/v1/loyalty/accounts/{c}/redemptions" for c in sample],
        api_key,
        '{"points": 1, "reason": "bench"}',
    )
    balance = _lua("GET", [f"/api/v1/loyalty/accounts/{hot}"], api_key)
    entries = _lua("GET", [f"/api/v1/loyalty/accounts/{hot}/entries?limit=50"], api_key)
    results: dict[str, Any] = {}
    for count in (1, 2) if "posting" in parts else (1,):
        with servers(count, env) as urls:
            parallel_wrk(urls, balance, 2, args.connections)  # warm-up
            label = f"{count} process{'es' if count > 1 else ''}"
            if "posting" in parts:
                results[f"POST adjustments (credit), {label}"] = parallel_wrk(
                    urls, credit, args.seconds, args.connections
                )
                results[f"POST redemptions, {label}"] = parallel_wrk(
                    urls, redeem, args.seconds, args.connections
                )
            if count == 1 and "reads" in parts:
                results["GET account (100k entries), 1 process"] = parallel_wrk(
                    urls, balance, args.seconds, args.connections
                )
                results["GET entries page (100k entries), 1 process"] = parallel_wrk(
                    urls, entries, args.seconds, args.connections
                )
                results["serial median ms"] = asyncio.run(_serial(urls[0], hot, api_key))
    return results


async def _serial(base: str, hot: str, api_key: str) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=base) as client:
        return {
            "account": await timed_get(client, f"/api/v1/loyalty/accounts/{hot}", api_key, 50),
            "entries": await timed_get(
                client, f"/api/v1/loyalty/accounts/{hot}/entries", api_key, 50
            ),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ledger", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--full", action="store_true")
    parser.add_argument(
        "--parts", default="posting,reads,earning", help="Comma-separated subset to run."
    )
    args = parser.parse_args()
    if args.full:
        args.ledger, args.orders = 10_000_000, 1_000_000
    url = fresh_database("loyalty_bench")
    keys = bench_keys()
    settings = Settings(
        database_url=url,
        encryption_key=keys["KEZHAN_ENCRYPTION_KEY"],
        lookup_key=keys["KEZHAN_LOOKUP_KEY"],
        job_worker_in_process=False,
        log_level="WARNING",
        db_pool_size=10,
    )

    async def tenant() -> tuple[uuid.UUID, str]:
        engine = create_engine(url, settings)
        async with create_sessionmaker(engine)() as session:
            created, issued = await create_tenant(session, "bench")
            await session.commit()
        await engine.dispose()
        return created.id, issued.secret

    parts = set(args.parts.split(","))
    results: dict[str, Any] = {}
    if parts & {"posting", "reads"}:
        tenant_id, api_key = asyncio.run(tenant())
        started = time.monotonic()
        hot, sample = asyncio.run(seed(url, tenant_id, args.ledger))
        results["seed_s"] = time.monotonic() - started
        results["raw INSERT (asyncpg, baseline)"] = asyncio.run(
            raw_insert_rate(url, args.seconds, args.connections)
        )
        results.update(http_runs(url, keys, api_key, hot, sample, args, parts))
    if "earning" in parts:
        overhead = asyncio.run(earning_overhead(settings, args.orders))
        results["earning overhead (s)"] = overhead
        results["earning adds %"] = 100 * (overhead["with"] / overhead["without"] - 1)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"ledger entries: {args.ledger}, orders: {args.orders}, seconds: {args.seconds}")
    for name, value in results.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
