"""The SLA queue and the ticket reports over generated tickets and timeline events.

Target (issue 6): over 1,000,000 tickets with 10,000,000 events, p95 under 200 ms for the SLA
queue and under 2 s for each report. Data is generated set-based (generate_series) in a fresh
database; requests go through the whole app in-process (ASGI, auth, service, SQL, JSON).
Baselines in the same run: the same queue SELECT sent raw through asyncpg (the floor for the
queue), a bare `count(*)` over the tenant's tickets (the floor for a report's scan) and the
summary as the single `percentile_cont` statement it was before the rollups. After generation
(or on a reused database, after migrating it) the per-day rollups are built by the same code
the job runs, and that build is timed; so is one day's rebuild after a ticket changes.

    python -m bench.tickets_bench [--tickets 100000] [--events-per-ticket 10] [--full]
    python -m bench.tickets_bench --full --reuse postgresql://.../kezhan_bench_tickets_xxxx
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import httpx
from sqlalchemy import select

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.main import create_app
from app.migrate import upgrade
from app.models import Tenant
from app.services.auth import Role, create_tenant, issue_key
from app.services.tickets import rollups
from bench.common import fresh_database

NOW = datetime(2026, 6, 30, 4, 0, tzinfo=UTC)


def _uuid7(at: str) -> str:
    """A UUIDv7 whose time part is `at` (an SQL timestamptz expression), so ids sort by time."""
    return (
        "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
        f"substring(int8send(floor(extract(epoch FROM {at}) * 1000)::bigint) FROM 3) "
        "FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"
    )


SEED_SQL = [
    """INSERT INTO customers (tenant_id, id, tags, attributes, version, created_at, updated_at)
       SELECT $1, gen_random_uuid(), '{}', '{}', 1, $2, $2 FROM generate_series(1, $3)""",
    """CREATE TABLE bench_customers AS
       SELECT row_number() OVER () AS n, id FROM customers WHERE tenant_id = $1""",
    """INSERT INTO ticket_staff (tenant_id, id, name, active, version, created_at, updated_at)
       SELECT $1, gen_random_uuid(), 'staff ' || g, true, 1, $2, $2
       FROM generate_series(1, 50) g""",
    """CREATE TABLE bench_staff AS
       SELECT row_number() OVER () AS n, id FROM ticket_staff WHERE tenant_id = $1""",
    """INSERT INTO ticket_categories (tenant_id, code, name, active, position)
       SELECT $1, c, c, true, 0 FROM unnest(ARRAY['product_quality', 'wrong_or_missing_item',
       'logistics', 'service_attitude', 'price', 'description_mismatch', 'other']) c""",
    """INSERT INTO shops (tenant_id, id, platform, name, version, created_at, updated_at)
       VALUES ($1, gen_random_uuid(), 'tmall', 'bench shop', 1, $2, $2)""",
    """INSERT INTO orders (tenant_id, id, shop_id, platform, order_no, status, paid_fen,
                           refund_fen, created_at, updated_at)
       SELECT $1, gen_random_uuid(), (SELECT id FROM shops WHERE tenant_id = $1), 'tmall',
              'B' || g, 'completed', 1000, 0, $2, $2
       FROM generate_series(1, $3) g""",
    """INSERT INTO order_items (tenant_id, order_id, line_no, merchant_code, title, quantity)
       SELECT $1, o.id, l, 'SKU-' || (abs(hashtext(o.id::text || l)) % 500),
              'product ' || (abs(hashtext(o.id::text || l)) % 500), 1
       FROM orders o CROSS JOIN generate_series(1, 2) l WHERE o.tenant_id = $1""",
    """CREATE TABLE bench_orders AS
       SELECT row_number() OVER () AS n, id FROM orders WHERE tenant_id = $1""",
]

TICKETS_SQL = f"""
INSERT INTO tickets (tenant_id, id, customer_id, order_id, kind, category, channel, priority,
    status, subject, tags, assignee_id, sla_business_hours, first_response_minutes,
    resolution_minutes, clock_started_at, paused_seconds, paused_at, first_response_due_at,
    resolution_due_at, sla_due_at, first_responded_at, first_response_breached,
    resolution_breached, resolved_at, closed_at, reopen_count, version, created_at, updated_at)
SELECT $1, {_uuid7("s.created")}, c.id,
    CASE WHEN s.r5 < 0.3 THEN o.id END,
    (ARRAY['complaint','after_sale','product_feedback','suggestion','praise','inquiry'])
        [1 + floor(s.r2 * 6)::int],
    (ARRAY['product_quality','wrong_or_missing_item','logistics','service_attitude','price',
           'description_mismatch','other'])[1 + floor(s.r3 * 7)::int],
    (ARRAY['tmall_chat','pdd_chat','phone','email','wechat','review','store','survey','other'])
        [1 + floor(s.r4 * 9)::int],
    'p' || (1 + floor(s.r6 * 4)::int), s.status, 'generated ticket', '{{}}', st.id, true,
    240, 1440, s.created, 0, CASE WHEN s.status = 'pending' THEN s.created END,
    s.created + interval '4 hours', s.created + interval '1 day',
    CASE WHEN s.status IN ('new', 'open')
         THEN $2::timestamptz + (s.r7 - 0.7) * interval '3 days' END,
    CASE WHEN s.status <> 'new' THEN s.created + s.r7 * interval '8 hours' END,
    s.r7 > 0.6, s.r6 > 0.85,
    CASE WHEN s.status IN ('resolved', 'closed') THEN s.created + s.r8 * interval '3 days' END,
    CASE WHEN s.status = 'closed' THEN s.created + interval '4 days' END,
    CASE WHEN s.status <> 'new' AND s.r8 < 0.07 THEN 1 ELSE 0 END, 1, s.created, s.created
FROM (
    SELECT g, r1, r2, r3, r4, r5, r6, r7, r8,
        CASE WHEN r1 < 0.02 THEN 'new' WHEN r1 < 0.06 THEN 'open' WHEN r1 < 0.08 THEN 'pending'
             WHEN r1 < 0.25 THEN 'resolved' ELSE 'closed' END AS status,
        CASE WHEN r1 < 0.08 THEN $2::timestamptz - r8 * interval '7 days'
             ELSE $2::timestamptz - interval '7 days' - r8 * interval '358 days' END AS created
    FROM (SELECT g, random() r1, random() r2, random() r3, random() r4, random() r5,
                 random() r6, random() r7, random() r8
          FROM generate_series(1, $3) g) r
) s
JOIN bench_customers c ON c.n = 1 + s.g % $4
JOIN bench_staff st ON st.n = 1 + s.g % 50
JOIN bench_orders o ON o.n = 1 + s.g % $5
"""

FOLLOW_SQL = [
    """INSERT INTO ticket_items (tenant_id, ticket_id, order_id, line_no)
       SELECT tenant_id, id, order_id, 1 FROM tickets
       WHERE tenant_id = $1 AND order_id IS NOT NULL""",
    f"""INSERT INTO ticket_events (tenant_id, id, ticket_id, kind, actor_name, data, at)
        SELECT t.tenant_id, {_uuid7("t.created_at + k * interval '10 minutes'")}, t.id,
               (ARRAY['created','status_changed','public_reply','internal_note','assigned'])
                   [1 + k % 5], 'bench', '{{}}', t.created_at + k * interval '10 minutes'
        FROM tickets t CROSS JOIN generate_series(0, $2 - 1) k WHERE t.tenant_id = $1""",
    """INSERT INTO ticket_surveys (tenant_id, ticket_id, score, recorded_at)
       SELECT tenant_id, id, 1 + floor(random() * 5)::int, resolved_at FROM tickets
       WHERE tenant_id = $1 AND resolved_at IS NOT NULL AND random() < 0.3""",
    """UPDATE tickets t SET csat_score = s.score FROM ticket_surveys s
       WHERE t.tenant_id = $1 AND s.tenant_id = $1 AND s.ticket_id = t.id""",
    f"""INSERT INTO nps_responses (tenant_id, id, customer_id, ticket_id, score, recorded_at)
        SELECT tenant_id, {_uuid7("created_at")}, customer_id, id, floor(random() * 11)::int,
               created_at FROM tickets WHERE tenant_id = $1 AND random() < 0.2""",
]

OLD_SUMMARY_SQL = """
SELECT kind, count(*),
    percentile_cont(0.5) WITHIN GROUP (
        ORDER BY date_part('epoch', first_responded_at - created_at) / 60),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY date_part('epoch', resolved_at - created_at) / 60),
    count(*) FILTER (WHERE first_response_breached OR resolution_breached OR sla_due_at <= $2)
        ::float8 / count(*),
    count(*) FILTER (WHERE reopen_count > 0)::float8
        / nullif(count(*) FILTER (WHERE resolved_at IS NOT NULL OR reopen_count > 0), 0),
    avg(csat_score::float8), count(csat_score)
FROM tickets WHERE tenant_id = $1 GROUP BY kind ORDER BY kind
"""

QUEUE_SQL = """
SELECT * FROM tickets WHERE tenant_id = $1 AND sla_due_at <= $2
ORDER BY sla_due_at, id LIMIT 51
"""


async def seed(url: str, tickets: int, per_ticket: int) -> tuple[str, str, dict[str, float]]:
    timings: dict[str, float] = {}
    settings = Settings(database_url=url)
    engine = create_engine(url, settings)
    async with create_sessionmaker(engine)() as session:
        tenant, issued = await create_tenant(session, "bench")
        noise, _ = await create_tenant(session, "other tenant")
        await session.commit()
    await engine.dispose()
    conn = await asyncpg.connect(url)
    try:
        customers, orders = max(tickets // 10, 1), max(tickets // 10, 1)
        started = time.perf_counter()
        for sql in SEED_SQL:
            count = max(int(n) for n in re.findall(r"\$(\d)", sql))
            args = [tenant.id, NOW, customers if "customers" in sql else orders][:count]
            await conn.execute(sql, *args)
        await conn.execute(TICKETS_SQL, tenant.id, NOW, tickets, customers, orders)
        timings["tickets"] = time.perf_counter() - started
        started = time.perf_counter()
        for sql in FOLLOW_SQL:
            await conn.execute(sql, *([tenant.id, per_ticket] if "$2" in sql else [tenant.id]))
        timings["events"] = time.perf_counter() - started
        await conn.execute("VACUUM ANALYZE")
        del noise
    finally:
        await conn.close()
    return str(tenant.id), issued.secret, timings


async def reuse(url: str) -> tuple[str, str]:
    """The tenant of an earlier run's database, with a new owner key."""
    settings = Settings(database_url=url)
    engine = create_engine(url, settings)
    async with create_sessionmaker(engine)() as session:
        tenant_id = await session.scalar(select(Tenant.id).where(Tenant.name == "bench"))
        assert tenant_id is not None, "no bench tenant in this database"
        issued = await issue_key(session, tenant_id, "bench rerun", Role.owner)
        await session.commit()
    await engine.dispose()
    return str(tenant_id), issued.secret


async def dirty_hours(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM ticket_rollup_dirty")
        return count
    finally:
        await conn.close()


async def build_rollups(url: str, tenant_id: str) -> dict[str, float]:
    """Build every dirty day (what the job does), then time the rebuild of one changed day."""
    settings = Settings(database_url=url)
    engine = create_engine(url, settings)
    timings: dict[str, float] = {}
    sessions = create_sessionmaker(engine)
    try:
        started = time.perf_counter()
        async with sessions() as session:
            days = await rollups.refresh(session, uuid.UUID(tenant_id), NOW)
            await session.commit()
        timings["rollup build (all dirty days)"] = time.perf_counter() - started
        timings["days built"] = len(days)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("VACUUM ANALYZE ticket_rollups")
            await conn.execute(
                "UPDATE tickets SET csat_score = 5 WHERE tenant_id = $1 AND id = "
                "(SELECT id FROM tickets WHERE tenant_id = $1 ORDER BY id LIMIT 1)",
                uuid.UUID(tenant_id),
            )
        finally:
            await conn.close()
        started = time.perf_counter()
        async with sessions() as session:
            days = await rollups.refresh(session, uuid.UUID(tenant_id), NOW)
            await session.commit()
        timings["rollup rebuild after one ticket change"] = time.perf_counter() - started
        timings["days rebuilt"] = len(days)
    finally:
        await engine.dispose()
    return timings


async def timed(call: Callable[[], Awaitable[object]], runs: int) -> dict[str, float]:
    await call()  # warm-up: plans, pools, caches
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return {"p50": statistics.median(samples), "p95": p95, "max": samples[-1], "runs": runs}


async def measure(
    url: str, tenant_id: str, key: str, runs: int, unbuilt: bool = False
) -> dict[str, dict[str, float]]:
    """Every request, timed; with `unbuilt`, only the summary by kind, once, with no warm-up
    (before the rollups are built it reads every ticket)."""
    settings = Settings(
        environment="test",
        database_url=url,
        encryption_key=base64.b64encode(os.urandom(32)).decode(),
        lookup_key=base64.b64encode(os.urandom(32)).decode(),
        job_worker_in_process=False,
        log_level="WARNING",
    )
    app = create_app(settings, clock=lambda: NOW)
    results: dict[str, dict[str, float]] = {}
    headers = {"Authorization": f"Bearer {key}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://b", headers=headers
        ) as c:

            def get(path: str, **params: str) -> Callable[[], Awaitable[object]]:
                async def call() -> object:
                    response = await c.get(path, params=params)
                    assert response.status_code == 200, response.text
                    return response

                return call

            if unbuilt:
                call = get("/api/v1/ticket-reports/summary", group_by="kind")
                started = time.perf_counter()
                await call()
                ms = (time.perf_counter() - started) * 1000
                name = "GET /ticket-reports/summary?group_by=kind, no day built yet"
                return {name: {"p50": ms, "p95": ms, "max": ms, "runs": 1}}
            conn = await asyncpg.connect(url)
            try:
                tenant = uuid.UUID(tenant_id)
                results["baseline: raw queue SELECT (asyncpg)"] = await timed(
                    lambda: conn.fetch(QUEUE_SQL, tenant, NOW), runs
                )
                results["baseline: count(*) of the tenant's tickets"] = await timed(
                    lambda: conn.fetchval(
                        "SELECT count(*) FROM tickets WHERE tenant_id = $1", tenant
                    ),
                    max(runs // 10, 5),
                )
                await conn.execute("SET work_mem = '128MB'")
                results["baseline: old summary statement by kind (asyncpg)"] = await timed(
                    lambda: conn.fetch(OLD_SUMMARY_SQL, tenant, NOW), max(runs // 10, 5)
                )
            finally:
                await conn.close()
            results["GET /tickets?sla=breached"] = await timed(
                get("/api/v1/tickets", sla="breached"), runs
            )
            results["GET /tickets?sla=at_risk"] = await timed(
                get("/api/v1/tickets", sla="at_risk"), runs
            )
            results["GET /tickets?sla=breached&priority=p1"] = await timed(
                get("/api/v1/tickets", sla="breached", priority="p1"), runs
            )
            report_runs = max(runs // 10, 5)
            for dimension in ("kind", "category", "channel", "staff", "month"):
                results[f"GET /ticket-reports/summary?group_by={dimension}"] = await timed(
                    get("/api/v1/ticket-reports/summary", group_by=dimension), report_runs
                )
            results["GET /ticket-reports/nps?group_by=category"] = await timed(
                get("/api/v1/ticket-reports/nps", group_by="category"), report_runs
            )
            results["GET /ticket-reports/products"] = await timed(
                get("/api/v1/ticket-reports/products"), report_runs
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--events-per-ticket", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--full", action="store_true", help="1,000,000 tickets (issue size)")
    parser.add_argument("--reuse", help="measure again on the database of an earlier run (URL)")
    args = parser.parse_args()
    tickets = 1_000_000 if args.full else args.tickets

    if args.reuse:
        url, timings = args.reuse, {"tickets": 0.0, "events": 0.0}
        upgrade(url)  # an older run's database gets the rollup tables (its tickets marked dirty)
        tenant_id, key = asyncio.run(reuse(url))
    else:
        url = fresh_database("kezhan_bench_tickets")
        tenant_id, key, timings = asyncio.run(seed(url, tickets, args.events_per_ticket))
    results = {}
    if asyncio.run(dirty_hours(url)):  # a reused, already built database has none
        results = asyncio.run(measure(url, tenant_id, key, args.runs, unbuilt=True))
    built = asyncio.run(build_rollups(url, tenant_id))
    results.update(asyncio.run(measure(url, tenant_id, key, args.runs)))

    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores (shared); {tickets:,} tickets, "
        f"{tickets * args.events_per_ticket:,} events; generated in "
        f"{timings['tickets']:.0f} s + {timings['events']:.0f} s (0: reused {args.reuse})"
    )
    print(f"database: {url}")
    for name, value in built.items():
        print(f"{name}: {value:.0f}" if name.startswith("days") else f"{name}: {value:.2f} s")
    print("| request | runs | p50 ms | p95 ms | max ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['runs']:.0f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['max']:.1f} |")


if __name__ == "__main__":
    main()
