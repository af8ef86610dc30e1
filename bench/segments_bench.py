"""Segments and analytics at scale: facts rebuild, RFM + lifecycle recompute, filter previews
over HTTP and against hand-written SQL, and every analytics endpoint.

Targets (issue 4), at 1,000,000 customers / 5,000,000 orders: preview (count + first page) p95
under 50 ms over HTTP and within 1.5x of the best hand-written SQL for the same question; RFM and
lifecycle recompute under 30 s; each analytics endpoint under 1 s. Data is generated with
set-based SQL (skewed: a fifth of the customers never buy, early customers buy most).

    python -m bench.segments_bench                # 100,000 customers / 500,000 orders
    python -m bench.segments_bench --full         # 1,000,000 / 5,000,000
    python -m bench.segments_bench --customers 200000 --runs 40
    python -m bench.segments_bench --full --build-only   # data, facts and recompute timings

The database is kept (its name is printed), so the data can be built once and the analytics
timed many times against it; `--explain` prints EXPLAIN (ANALYZE, BUFFERS) of each statement
and `--compare-tree` times another checkout's server alternately with this one:

    python -m bench.segments_bench --database kezhan_bench_segments_ab12cd34 --analytics-only
    python -m bench.segments_bench --database kezhan_bench_segments_ab12cd34 --explain
    python -m bench.segments_bench --database kezhan_bench_segments_ab12cd34 \
        --compare-tree /tmp/kezhan-before --analytics-runs 7
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.schemas.analytics import Interval
from app.services import analytics
from app.services.auth import Principal, Role, create_tenant, issue_key
from app.services.facts import refresh_customer_facts
from app.services.segments import saved
from app.services.segments.member_frames import MemberFrames
from app.services.segments.recompute import recompute_scores
from app.services.segments.rules import Thresholds
from bench.common import bench_keys, fresh_database, serve, server_url

NOW = datetime.now(UTC)

GENERATE = [
    "SELECT setseed(0.42)",
    """
    INSERT INTO shops (tenant_id, id, platform, name, version)
    SELECT $1, gen_random_uuid(), p, p || ' 旗舰店', 1
    FROM unnest(ARRAY['tmall', 'taobao', 'pinduoduo', 'jd']) p
    """,
    """
    INSERT INTO product_category_rules (tenant_id, id, category, match, pattern)
    VALUES ($1, gen_random_uuid(), '茶叶', 'code_prefix', 'TEA-'),
           ($1, gen_random_uuid(), '咖啡', 'title_keyword', '咖啡'),
           ($1, gen_random_uuid(), '茶具', 'code_prefix', 'CUP-')
    """,
    """
    INSERT INTO customers (tenant_id, id, display_name, gender, province, city, tags, version,
                           created_at, updated_at)
    SELECT $1, gen_random_uuid(), '客户' || g, (ARRAY['male', 'female', 'unknown'])[1 + g % 3],
           p.province, p.city,
           CASE WHEN r < 0.08 THEN ARRAY['vip'] WHEN r < 0.20 THEN ARRAY['老客', '活动']
                ELSE '{}'::text[] END,
           1, now() - (g % 900) * interval '1 day', now()
    FROM (SELECT g, random() AS r, random() AS pr FROM generate_series(1, $2) g) s
    CROSS JOIN LATERAL (
        SELECT CASE WHEN pr < 0.30 THEN '浙江省' WHEN pr < 0.50 THEN '广东省'
                    WHEN pr < 0.62 THEN '江苏省' WHEN pr < 0.72 THEN '上海市'
                    WHEN pr < 0.80 THEN '北京市' WHEN pr < 0.86 THEN '四川省'
                    WHEN pr < 0.91 THEN '山东省' ELSE '湖北省' END AS province,
               (ARRAY['甲市', '乙市', '丙市', '丁市'])[1 + (g % 4)] AS city
    ) p
    """,
    """
    CREATE TEMP TABLE bench_customers AS
    SELECT row_number() OVER (ORDER BY id)::int AS i, id FROM customers WHERE tenant_id = $1
    """,
    "CREATE UNIQUE INDEX ON bench_customers (i)",
    """
    CREATE TEMP TABLE bench_shops AS
    SELECT row_number() OVER (ORDER BY id)::int AS i, id, platform FROM shops WHERE tenant_id = $1
    """,
    """
    INSERT INTO orders (tenant_id, id, shop_id, platform, order_no, status, customer_id,
                        paid_fen, refund_fen, ordered_at, paid_at)
    SELECT $1, gen_random_uuid(), s.id, s.platform, 'B' || o.g,
           CASE WHEN o.r3 < 0.04 THEN 'refunded' ELSE 'completed' END, c.id,
           (990 + o.r2 * o.r2 * 60000)::bigint,
           CASE WHEN o.r3 < 0.04 THEN (990 + o.r2 * o.r2 * 60000)::bigint ELSE 0 END,
           now() - o.r1 * interval '730 days', now() - o.r1 * interval '730 days'
    FROM (SELECT g, 1 + floor(0.8 * $3 * power(random(), 2))::int AS ci,
                 1 + floor(random() * 4)::int AS si,
                 random() AS r1, random() AS r2, random() AS r3
          FROM generate_series(1, $2) g) o
    JOIN bench_customers c ON c.i = o.ci
    JOIN bench_shops s ON s.i = o.si
    """,
    """
    INSERT INTO order_items (tenant_id, order_id, line_no, title, merchant_code, quantity,
                             paid_fen)
    SELECT o.tenant_id, o.id, 1, p.title, p.code, 1, o.paid_fen
    FROM orders o
    CROSS JOIN LATERAL (
        SELECT (ARRAY['TEA', 'COF', 'CUP', 'SNK'])[1 + k % 4] || '-' || k AS code,
               (ARRAY['西湖龙井', '云南咖啡豆', '玻璃茶杯', '坚果礼盒'])[1 + k % 4] || ' ' || k
                   AS title
        FROM (SELECT floor(power(random(), 2) * 200)::int + (o.paid_fen * 0)::int AS k) x
    ) p
    WHERE o.tenant_id = $1
    """,
    "ANALYZE",
]


def _ago(days: int) -> str:
    return (NOW - timedelta(days=days)).isoformat()


# Each typical question: the filter, and the best SQL a person would write for it by hand
# (count, then the first page newest first).
TYPICAL: dict[str, tuple[dict[str, Any], str]] = {
    "Zhejiang VIPs who spent 500+ yuan": (
        {
            "and": [
                {"field": "province", "op": "eq", "value": "浙江省"},
                {"field": "tags", "op": "contains", "value": "vip"},
                {"field": "total_spent_fen", "op": "gte", "value": 50000},
            ]
        },
        """FROM customers c JOIN customer_facts f
             ON f.tenant_id = c.tenant_id AND f.customer_id = c.id
           WHERE c.tenant_id = $1 AND c.province = '浙江省' AND c.tags @> '{vip}'
             AND f.total_spent_fen >= 50000""",
    ),
    "high spenders going quiet (M>=4, no order for 90 days)": (
        {
            "and": [
                {"field": "rfm_m", "op": "gte", "value": 4},
                {"field": "last_order_at", "op": "lt", "value": _ago(90)},
            ]
        },
        f"""FROM customers c JOIN customer_facts f
              ON f.tenant_id = c.tenant_id AND f.customer_id = c.id
            JOIN customer_scores s ON s.tenant_id = c.tenant_id AND s.customer_id = c.id
            WHERE c.tenant_id = $1 AND s.rfm_m >= 4
              AND f.last_order_at < '{_ago(90)}'::timestamptz""",
    ),
    "one-time buyers of the last 30 days": (
        {
            "and": [
                {"field": "order_count", "op": "eq", "value": 1},
                {"field": "first_order_at", "op": "within_days", "value": 30},
            ]
        },
        f"""FROM customers c JOIN customer_facts f
              ON f.tenant_id = c.tenant_id AND f.customer_id = c.id
            WHERE c.tenant_id = $1 AND f.order_count = 1
              AND f.first_order_at >= '{_ago(30)}'::timestamptz""",
    ),
    "Zhejiang tea buyers with 2+ tea orders in a year": (
        {
            "and": [
                {"field": "province", "op": "eq", "value": "浙江省"},
                {"field": "categories", "op": "contains", "value": "茶叶"},
                {"ordered": {"category": "茶叶", "within_days": 365, "min_times": 2}},
            ]
        },
        f"""FROM customers c JOIN customer_facts f
              ON f.tenant_id = c.tenant_id AND f.customer_id = c.id
            WHERE c.tenant_id = $1 AND c.province = '浙江省' AND f.categories @> '{{茶叶}}'
              AND (SELECT count(*) FROM orders o
                   WHERE o.tenant_id = $1 AND o.customer_id = c.id
                     AND o.paid_at >= '{_ago(365)}'::timestamptz
                     AND o.status <> 'pending_payment'
                     AND EXISTS (SELECT FROM order_items i
                                 WHERE i.tenant_id = o.tenant_id AND i.order_id = o.id
                                   AND starts_with(i.merchant_code, 'TEA-'))) >= 2""",
    ),
    "at-risk or churned customers in Guangdong": (
        {
            "and": [
                {"field": "lifecycle_stage", "op": "in", "value": ["at_risk", "churned"]},
                {"field": "province", "op": "eq", "value": "广东省"},
            ]
        },
        """FROM customers c JOIN customer_facts f
             ON f.tenant_id = c.tenant_id AND f.customer_id = c.id
           JOIN customer_scores s ON s.tenant_id = c.tenant_id AND s.customer_id = c.id
           WHERE c.tenant_id = $1 AND s.lifecycle_stage IN ('at_risk', 'churned')
             AND c.province = '广东省'""",
    ),
}


async def _timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) * 1000


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def build(url: str, customers: int, orders: int) -> tuple[uuid.UUID, str, dict[str, float]]:
    settings = Settings(database_url=url, db_pool_size=2)
    engine = create_engine(url, settings)
    sessions = create_sessionmaker(engine)
    timings: dict[str, float] = {}
    async with sessions() as session:
        tenant, issued = await create_tenant(session, "bench")
        await session.commit()
    conn = await asyncpg.connect(url)
    try:
        start = time.perf_counter()
        for statement in GENERATE:
            args = [tenant.id, customers] if "$2" in statement else [tenant.id]
            if "$3" in statement:
                args = [tenant.id, orders, customers]
            elif "$1" not in statement:
                args = []
            await conn.execute(statement, *args)
        timings["generate data (SQL)"] = time.perf_counter() - start
    finally:
        await conn.close()

    async def rebuild() -> None:
        async with sessions() as session:
            await refresh_customer_facts(session, tenant.id, None)
            await session.commit()

    async def recompute() -> None:
        async with sessions() as session:
            await recompute_scores(session, tenant.id, NOW, Thresholds())
            await session.commit()

    timings["facts rebuild (all customers)"] = await _timed(rebuild) / 1000
    timings["RFM + lifecycle recompute"] = await _timed(recompute) / 1000
    timings["RFM + lifecycle recompute again (nothing changes)"] = await _timed(recompute) / 1000
    # The generator's ANALYZE ran before these tables were filled (and autovacuum may be off:
    # it is on the shared bench server), so the planner would see them empty.
    conn = await asyncpg.connect(url)
    for table in ("customer_facts", "customer_scores", "customer_months", "lifecycle_events"):
        await conn.execute(f"VACUUM ANALYZE {table}")
    await conn.close()
    await engine.dispose()
    return tenant.id, issued.secret, timings


async def compare_sql(url: str, tenant_id: uuid.UUID, runs: int) -> dict[str, tuple[float, float]]:
    """Median ms of the service's compiled queries versus the hand-written ones, same data."""
    settings = Settings(database_url=url, db_pool_size=2)
    engine = create_engine(url, settings)
    sessions = create_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))
    actor = Principal(tenant_id, uuid.uuid4(), Role.analyst, "bench")
    conn = await asyncpg.connect(url)
    await conn.execute("SET plan_cache_mode = force_custom_plan")
    results: dict[str, tuple[float, float]] = {}
    frames = MemberFrames(url, settings.segment_frames_min_customers, 10_000_000)
    start = time.perf_counter()
    async with sessions() as session:
        await frames.current(session, tenant_id)
        await frames.wait_loaded()
        frame = await frames.current(session, tenant_id)
    if frame is not None:
        print(
            f"\ncustomer frame loaded in {time.perf_counter() - start:.1f} s: "
            f"{frame.customers.height:,} customers "
            f"({frame.customers.estimated_size() / 2**20:,.0f} MiB), {frame.orders.height:,} "
            f"buying orders ({frame.orders.estimated_size() / 2**20:,.0f} MiB)"
        )
    try:
        for name, (tree, body) in TYPICAL.items():
            count_sql = f"SELECT count(*) {body}"
            # The page's scores are looked up for its 51 rows only.
            page_sql = (
                "SELECT p.*, s.rfm_r, s.rfm_f, s.rfm_m, s.rfm_group, s.lifecycle_stage FROM ("
                "SELECT c.id, c.display_name, c.province, c.city, c.tags, f.order_count, "
                "f.total_spent_fen, f.avg_order_value_fen, f.last_order_at "
                f"{body} ORDER BY c.id DESC LIMIT 51) p "
                "LEFT JOIN customer_scores s ON s.tenant_id = $1 AND s.customer_id = p.id "
                "ORDER BY p.id DESC"
            )

            async def hand(count_sql: str = count_sql, page_sql: str = page_sql) -> None:
                await conn.fetchval(count_sql, tenant_id)
                await conn.fetch(page_sql, tenant_id)

            async def ours(tree: dict[str, Any] = tree) -> None:
                async with sessions() as session:
                    await saved.preview(session, actor, tree, NOW, 50, None, frames=frames)

            for fn in (hand, ours):
                for _ in range(3):
                    await fn()
            hand_ms = [await _timed(hand) for _ in range(runs)]
            ours_ms = [await _timed(ours) for _ in range(runs)]
            results[name] = (statistics.median(hand_ms), statistics.median(ours_ms))
    finally:
        await frames.close()
        await conn.close()
        await engine.dispose()
    return results


async def _wait_for_frame(client: httpx.AsyncClient) -> float:
    """Seconds until previews are counted from the server's in-memory frame (the first
    preview starts loading it; until then they are answered in SQL)."""
    start = time.perf_counter()
    tree = {"field": "order_count", "op": "gte", "value": 0}
    while time.perf_counter() - start < 600:
        response = await client.post("/api/v1/segments/preview", json={"filter": tree})
        response.raise_for_status()
        if "memory" in response.headers.get("server-timing", ""):
            break
        await asyncio.sleep(0.5)
    return time.perf_counter() - start


async def over_http(base: str, key: str, runs: int) -> dict[str, list[float]]:
    headers = {"Authorization": f"Bearer {key}"}
    out: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as client:
        print(f"\nin-memory frame ready after {await _wait_for_frame(client):.1f} s")
        for name, (tree, _) in TYPICAL.items():
            sources: set[str] = set()

            async def preview(tree: dict[str, Any] = tree, sources: set[str] = sources) -> None:
                response = await client.post("/api/v1/segments/preview", json={"filter": tree})
                response.raise_for_status()
                sources.add(response.headers["server-timing"].split('"')[1])

            for _ in range(3):
                await preview()
            out[f"preview: {name} ({'/'.join(sorted(sources))})"] = [
                await _timed(preview) for _ in range(runs)
            ]
    return out


ENDPOINTS = ("overview", "rfm", "lifecycle", "cohorts", "geo")

# The same questions with a fixed window, for comparing two servers' answers (the defaults end
# at the request's own clock, so two default requests never ask quite the same thing).
FIXED: list[tuple[str, dict[str, str]]] = [
    ("overview", {"since": _ago(30), "until": NOW.isoformat()}),
    ("overview", {"since": _ago(400), "until": NOW.isoformat(), "interval": "month"}),
    ("rfm", {}),
    ("lifecycle", {"since": _ago(30), "until": NOW.isoformat()}),
    ("lifecycle", {"since": _ago(365), "until": _ago(100)}),
    ("cohorts", {"since": _ago(365), "until": NOW.isoformat()}),
    ("cohorts", {"since": _ago(800), "until": NOW.isoformat()}),
    ("geo", {}),
]


async def analytics_http(
    bases: dict[str, str], key: str, runs: int
) -> dict[tuple[str, str], list[float]]:
    """ms per analytics request with the parameters the UI sends (none: the defaults); with
    several servers, their requests alternate so that load from others hits them alike."""
    headers = {"Authorization": f"Bearer {key}"}
    clients = {
        name: httpx.AsyncClient(base_url=base, headers=headers, timeout=300)
        for name, base in bases.items()
    }
    out: dict[tuple[str, str], list[float]] = {}
    try:
        for path in ENDPOINTS:
            for name, client in clients.items():
                await _get(client, path)  # warm-up
                out[path, name] = []
            for _ in range(runs):
                for name, client in clients.items():
                    start = time.perf_counter()
                    await _get(client, path)
                    out[path, name].append((time.perf_counter() - start) * 1000)
    finally:
        for client in clients.values():
            await client.aclose()
    return out


async def _get(client: httpx.AsyncClient, path: str, params: dict[str, str] | None = None) -> Any:
    response = await client.get(f"/api/v1/analytics/{path}", params=params)
    response.raise_for_status()
    return response.json()


async def same_answers(bases: dict[str, str], key: str) -> list[str]:
    """The questions of FIXED whose answers differ between the servers."""
    headers = {"Authorization": f"Bearer {key}"}
    differ = []
    async with httpx.AsyncClient(headers=headers, timeout=300) as client:
        for path, params in FIXED:
            answers = []
            for base in bases.values():
                response = await client.get(f"{base}/api/v1/analytics/{path}", params=params)
                response.raise_for_status()
                answers.append(response.json())
            if any(a != answers[0] for a in answers[1:]):
                differ.append(f"{path} {params}")
    return differ


async def explain(url: str, tenant_id: uuid.UUID) -> None:
    """Each analytics service call in process, then EXPLAIN (ANALYZE, BUFFERS) of every
    statement it sent, in one transaction with the settings it made (work_mem)."""
    settings = Settings(database_url=url, db_pool_size=2)
    engine = create_engine(url, settings)
    sessions = create_sessionmaker(engine)
    actor = Principal(tenant_id, uuid.uuid4(), Role.analyst, "bench")
    sent: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        sent.append((args[2], args[3]))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    month, year = NOW - timedelta(days=30), NOW - timedelta(days=365)
    calls: dict[str, Callable[[Any], Awaitable[Any]]] = {
        "overview": lambda s: analytics.overview(s, actor, month, NOW, Interval.day),
        "rfm": lambda s: analytics.rfm(s, actor),
        "lifecycle": lambda s: analytics.lifecycle(s, actor, month, NOW),
        "cohorts": lambda s: analytics.cohorts(s, actor, year, NOW),
        "geo": lambda s: analytics.geo(s, actor, 20),
    }
    conn = await asyncpg.connect(url)
    try:
        for name, call in calls.items():
            sent.clear()

            async def run(call: Callable[[Any], Awaitable[Any]] = call) -> None:
                async with sessions() as session:
                    await call(session)

            ms = await _timed(run)
            print(f"\n## {name}: {ms:.0f} ms in process, {len(sent)} statements")
            async with conn.transaction():
                for statement, params in list(sent):
                    if statement.lstrip().upper().startswith("SET"):
                        await conn.execute(statement)
                        continue
                    plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *params)
                    print("\n" + "\n".join(row[0] for row in plan))
    finally:
        await conn.close()
        await engine.dispose()


async def reuse(url: str) -> tuple[uuid.UUID, str]:
    """The bench tenant of a database built before, with a new owner key."""
    settings = Settings(database_url=url, db_pool_size=2)
    engine = create_engine(url, settings)
    async with create_sessionmaker(engine)() as session:
        tenant_id = (
            await session.execute(text("SELECT id FROM tenants WHERE name = 'bench'"))
        ).scalar_one()
        issued = await issue_key(session, tenant_id, "bench rerun", Role.owner)
        await session.commit()
    await engine.dispose()
    return tenant_id, issued.secret


def _print_http(values: dict[str, list[float]]) -> None:
    print("\n| HTTP request | p50 ms | p95 ms |\n| --- | ---: | ---: |")
    for name, ms in values.items():
        print(f"| {name} | {_p(ms, 0.5):.1f} | {_p(ms, 0.95):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders-per-customer", type=int, default=5)
    parser.add_argument("--full", action="store_true", help="1,000,000 customers, 5M orders")
    parser.add_argument("--runs", type=int, default=30, help="timed requests per filter")
    parser.add_argument("--analytics-runs", type=int, default=5, help="timed runs per endpoint")
    parser.add_argument(
        "--build-only", action="store_true", help="only generate, rebuild facts and recompute"
    )
    parser.add_argument("--database", help="reuse this database built by an earlier run")
    parser.add_argument("--analytics-only", action="store_true", help="skip the filter previews")
    parser.add_argument(
        "--explain", action="store_true", help="EXPLAIN (ANALYZE, BUFFERS) each analytics query"
    )
    parser.add_argument(
        "--compare-tree",
        help="a checkout (e.g. `git archive` of an earlier commit) whose server is timed "
        "alternately with this one, after checking both give the same answers",
    )
    args = parser.parse_args()
    customers = 1_000_000 if args.full else args.customers
    orders = customers * args.orders_per_customer

    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores (shared); "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; one uvicorn worker"
    )
    if args.database:
        url = make_url(server_url()).set(database=args.database).render_as_string(False)
        tenant_id, key = asyncio.run(reuse(url))
        print(f"database {args.database} (reused)")
    else:
        url = fresh_database("kezhan_bench_segments")
        tenant_id, key, timings = asyncio.run(build(url, customers, orders))
        print(f"database {make_url(url).database} (kept: drop it when done)")
        print(f"{customers:,} customers, {orders:,} orders")
        print("\n| step | seconds |\n| --- | ---: |")
        for name, seconds in timings.items():
            print(f"| {name} | {seconds:.1f} |")
        recompute = timings["RFM + lifecycle recompute"]
        print(f"\nRFM + lifecycle recompute: {recompute:.1f} s (target < 30 s)")
        if args.build_only:
            return
    if args.explain:
        asyncio.run(explain(url, tenant_id))
        return
    if not args.analytics_only:
        sql = asyncio.run(compare_sql(url, tenant_id, args.runs))
        print("\n| question | hand-written SQL ms | Kezhan service ms | ratio |")
        print("| --- | ---: | ---: | ---: |")
        for name, (hand_ms, ours_ms) in sql.items():
            print(f"| {name} | {hand_ms:.1f} | {ours_ms:.1f} | {ours_ms / hand_ms:.2f}x |")
    env = {
        "DATABASE_URL": url,
        **bench_keys(),
        "KEZHAN_JOB_WORKER_IN_PROCESS": "false",
        "KEZHAN_DB_POOL_SIZE": "4",
    }
    with ExitStack() as servers:
        bases = {"this tree": servers.enter_context(serve("app.main:create_app", env, True))}
        if args.compare_tree:
            # uvicorn puts its app dir (the working directory unless UVICORN_APP_DIR says
            # otherwise) first on sys.path: `app` is then imported from the other tree.
            other = {**env, "UVICORN_APP_DIR": args.compare_tree}
            bases = {
                args.compare_tree: servers.enter_context(serve("app.main:create_app", other, True)),
                **bases,
            }
            differ = asyncio.run(same_answers(bases, key))
            print(
                f"\nanswers differ: {differ}"
                if differ
                else "\nsame answers: " + ", ".join(f"{path} {params}" for path, params in FIXED)
            )
        if not args.analytics_only:
            _print_http(asyncio.run(over_http(bases["this tree"], key, args.runs)))
        timed = asyncio.run(analytics_http(bases, key, args.analytics_runs))
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\n{args.analytics_runs} runs each, alternating servers")
    print("\n| GET /api/v1/analytics/... | server | p50 ms | p95 ms | max ms |")
    print("| --- | --- | ---: | ---: | ---: |")
    for (path, name), ms in timed.items():
        print(f"| {path} | {name} | {_p(ms, 0.5):.0f} | {_p(ms, 0.95):.0f} | {max(ms):.0f} |")


if __name__ == "__main__":
    main()
