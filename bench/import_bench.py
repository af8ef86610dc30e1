"""Order import speed (issue 3): a generated Tmall pair and Pinduoduo export through the pipeline.

Baselines, measured in the same run on the same database:
- a bare COPY of the same normalised rows into empty copies of `orders` and `order_items` (same
  indexes and foreign keys): the irreducible cost of the schema (target: the full import within
  2x of it); also printed, the same COPY into copies without the foreign keys (what
  `LIKE ... INCLUDING ALL` alone gives, the baseline of runs before 2026-11-26 evening);
- a row-by-row SQLAlchemy ORM import of the same rows, on a slice, as rows/s (target: the
  import at least 4x faster);
- re-importing the same files (target: at most 60% of the first import, nothing written);
- peak memory of this process, which runs the imports (target: under 1.5 GB); the export files
  are generated in a child process (from 2026-11-27 on), so the generator's own objects, about
  0.4 GB at full size, neither count nor leave the imports a fragmented heap.

Every timed step (imports, re-imports, both COPYs, the ORM slice) starts after `os.sync()`, so
no step pays for writing back another's files (from 2026-11-27 on).

    python -m bench.import_bench [--orders 100000] [--orm-orders 10000] [--full]
        [--with-hooks [--earning-status paid]]

With `--with-hooks` the tenant's loyalty program earns on `--earning-status` (default `paid`,
which ~85% of the generated orders reach), so the loyalty hook writes a pending earn for most
orders of the first import; the stage timings show its share as `hooks_s`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing
import os
import platform
import resource
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import select

from app.config import Settings
from app.main import create_app
from app.models import Customer, CustomerIdentity, Import, Order, OrderItem
from app.models.base import new_id
from app.runtime import Runtime
from app.schemas.loyalty import EarningStatus, ProgramIn
from app.schemas.shops import Platform, ShopCreate
from app.services import shops
from app.services.auth import Principal, Role, create_tenant
from app.services.demo_exports import write_pdd_export, write_tmall_export
from app.services.imports import pipeline
from app.services.imports.parse import parse_export
from app.services.imports.terminal import DiskUpload
from app.services.loyalty.program import put_program
from bench.common import bench_keys, drop_database, fresh_database


def _settle() -> None:
    """Write back every dirty page before a timed step: the exports just generated (1.2 GB at
    full size) or the previous step's files would otherwise be flushed during the next step
    and slow it down by I/O that is not its own (untimed, like the steps' set-up)."""
    os.sync()


def _generate(work: Path, orders: int) -> tuple[list[Path], int, list[Path]]:
    """The Tmall pair and the Pinduoduo file (run in a child process): (Tmall files, Tmall item
    lines, Pinduoduo files)."""
    tmall = write_tmall_export(work, orders, seed=1)
    pdd = write_pdd_export(work, orders, seed=2)
    return tmall.files, tmall.items, pdd.files


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _setup(
    runtime: Runtime, earning_status: str | None
) -> tuple[Principal, uuid.UUID, uuid.UUID]:
    async with runtime.sessions() as session:
        tenant, issued = await create_tenant(session, "bench")
        owner = Principal(tenant.id, issued.key.id, Role.owner, issued.key.name)
        if earning_status is not None:
            await put_program(
                session,
                owner,
                ProgramIn(earning_status=EarningStatus(earning_status)),
                None,
                runtime.clock(),
            )
        tmall = await shops.create_shop(
            session, owner, ShopCreate(platform=Platform.tmall, name="t")
        )
        pdd = await shops.create_shop(
            session, owner, ShopCreate(platform=Platform.pinduoduo, name="p")
        )
        await session.commit()
    return owner, tmall.id, pdd.id


async def _import(
    runtime: Runtime, owner: Principal, files: list[Path], fmt: str, shop_id: uuid.UUID
) -> tuple[float, dict[str, Any], dict[str, Any]]:
    handles = [p.open("rb") for p in files]
    try:
        async with runtime.sessions() as session:
            created = await pipeline.create_import(
                session,
                runtime.settings,
                owner,
                [DiskUpload(p, h) for p, h in zip(files, handles, strict=True)],
                fmt,
                shop_id,
                False,
                runtime.clock(),
            )
            await session.commit()
        import_id = created.import_id
        assert import_id is not None
    finally:
        for handle in handles:
            handle.close()
    _settle()
    started = time.perf_counter()
    await pipeline.run_import(runtime, owner.tenant_id, import_id)
    elapsed = time.perf_counter() - started
    async with runtime.sessions() as session:
        done = await session.get(Import, (owner.tenant_id, import_id))
    assert done is not None
    assert done.status == "succeeded", done.error
    return elapsed, done.counts, done.timings


async def _bare_copy(
    runtime: Runtime, tenant_id: uuid.UUID, foreign_keys: bool
) -> tuple[float, int, int]:
    """COPY the stored (normalised) rows into empty copies of the tables: the same columns and
    indexes (`LIKE ... INCLUDING ALL`) and, with `foreign_keys`, the same foreign keys too (LIKE
    never copies them: items then reference the copy of orders, orders the real shops)."""
    async with runtime.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        buffers: dict[str, io.BytesIO] = {}
        for table in ("orders", "order_items"):
            buffers[table] = io.BytesIO()
            await driver.copy_from_query(
                f"SELECT * FROM {table} WHERE tenant_id = $1",
                tenant_id,
                output=buffers[table],
            )
            await driver.execute(
                f"DROP TABLE IF EXISTS bench_{table}; "
                f"CREATE UNLOGGED TABLE bench_{table} (LIKE {table} INCLUDING ALL)"
            )
            await driver.execute(f"ALTER TABLE bench_{table} SET LOGGED")
            if foreign_keys:
                for constraint in await driver.fetch(_FOREIGN_KEYS, table):
                    definition = constraint["definition"].replace(
                        "REFERENCES orders(", "REFERENCES bench_orders("
                    )
                    await driver.execute(
                        f"ALTER TABLE bench_{table} ADD CONSTRAINT "
                        f"bench_{constraint['name']} {definition}"
                    )
        _settle()
        started = time.perf_counter()
        async with driver.transaction():
            for table, buffer in buffers.items():
                buffer.seek(0)
                await driver.copy_to_table(f"bench_{table}", source=buffer)
        elapsed = time.perf_counter() - started
        orders = await driver.fetchval("SELECT count(*) FROM bench_orders")
        items = await driver.fetchval("SELECT count(*) FROM bench_order_items")
        await driver.execute("DROP TABLE bench_order_items; DROP TABLE bench_orders")
    return elapsed, int(orders), int(items)


_FOREIGN_KEYS = """
SELECT conname AS name, pg_get_constraintdef(oid) AS definition
FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f'
"""


async def _orm_baseline(
    runtime: Runtime, tenant_id: uuid.UUID, files: list[Path], fmt: str, limit: int
) -> tuple[float, int]:
    """What a user would write with the ORM: for each parsed order, look its buyer up (create
    the customer and identity when new), look the order up (update or add), add its items;
    flush every 1,000 orders. Parsing is not timed here (the import's time includes it)."""
    parsed = await asyncio.to_thread(parse_export, files, fmt)
    platform = Platform.tmall if fmt == "tmall" else Platform.pinduoduo
    async with runtime.sessions() as session:
        shop = await shops.create_shop(
            session,
            Principal(tenant_id, uuid.uuid4(), Role.owner, "bench"),
            ShopCreate(platform=platform, name="orm"),
        )
        await session.commit()
    vault = runtime.vault
    rows = 0
    _settle()
    started = time.perf_counter()
    async with runtime.sessions() as session:
        for snapshot in parsed:
            orders = snapshot.orders.head(limit)
            wanted = set(orders["order_no"].to_list())
            items_by_order: dict[str, list[dict[str, Any]]] = {}
            for item in snapshot.items.iter_rows(named=True):
                if item["order_no"] in wanted:
                    items_by_order.setdefault(item["order_no"], []).append(item)
            for o in orders.iter_rows(named=True):
                customer_id = None
                if o["buyer_key"]:
                    customer_id = await session.scalar(
                        select(CustomerIdentity.customer_id).where(
                            CustomerIdentity.tenant_id == tenant_id,
                            CustomerIdentity.platform == platform.value,
                            CustomerIdentity.buyer_key == o["buyer_key"],
                        )
                    )
                    if customer_id is None:
                        customer_id = new_id()
                        session.add(
                            Customer(
                                tenant_id=tenant_id,
                                id=customer_id,
                                display_name=o["buyer_key"][:200],
                                province=o["province"],
                                city=o["city"],
                                tags=[],
                                attributes={},
                                version=1,
                            )
                        )
                        await session.flush()
                        session.add(
                            CustomerIdentity(
                                tenant_id=tenant_id,
                                id=new_id(),
                                customer_id=customer_id,
                                platform=platform.value,
                                buyer_key=o["buyer_key"][:200],
                            )
                        )
                order = await session.scalar(
                    select(Order).where(
                        Order.tenant_id == tenant_id,
                        Order.shop_id == shop.id,
                        Order.order_no == o["order_no"],
                    )
                )
                if order is None:
                    order = Order(tenant_id=tenant_id, id=new_id(), shop_id=shop.id)
                    session.add(order)
                order.platform, order.order_no = shop.platform, o["order_no"]
                order.status, order.raw_status = o["status"], o["raw_status"]
                order.buyer_key, order.customer_id = o["buyer_key"], customer_id
                order.receiver_name_enc = vault.encrypt(tenant_id, o["receiver_name"] or "")
                order.receiver_name_masked = o["receiver_name"]
                order.receiver_phone_enc = vault.encrypt(tenant_id, o["receiver_phone"] or "")
                order.receiver_phone_masked = o["receiver_phone"]
                order.province, order.city = o["province"], o["city"]
                order.district = o["district"]
                order.paid_fen, order.refund_fen = o["paid_fen"] or 0, o["refund_fen"] or 0
                order.ordered_at, order.paid_at = o["ordered_at"], o["paid_at"]
                order.item_count = o["item_count"]
                for item in items_by_order.get(o["order_no"], []):
                    session.add(
                        OrderItem(
                            tenant_id=tenant_id,
                            order_id=order.id,
                            line_no=item["line_no"],
                            title=item["title"],
                            sku=item["sku"],
                            merchant_code=item["merchant_code"],
                            quantity=item["quantity"] or 1,
                            unit_price_fen=item["unit_price_fen"],
                            paid_fen=item["paid_fen"],
                        )
                    )
                rows += 1
                if rows % 1000 == 0:
                    await session.flush()
        await session.commit()
    return time.perf_counter() - started, rows


async def _earn_count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM loyalty_order_earns"))
    finally:
        await conn.close()


def _line(name: str, seconds: float, rows: int) -> str:
    return f"| {name} | {seconds:.2f} s | {rows / seconds:,.0f} rows/s |"


async def run(args: argparse.Namespace, url: str) -> None:
    keys = bench_keys()
    work = Path(tempfile.mkdtemp(prefix="kezhan-import-bench-"))
    settings = Settings(
        environment="test",
        database_url=url,
        data_dir=work / "data",
        encryption_key=keys["KEZHAN_ENCRYPTION_KEY"],
        lookup_key=keys["KEZHAN_LOOKUP_KEY"],
        job_worker_in_process=False,
        log_level="WARNING",
    )
    started = time.perf_counter()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        tmall_files, tmall_items, pdd_files = pool.submit(_generate, work, args.orders).result()
    print(
        f"generated {args.orders:,} Tmall orders ({tmall_items:,} item lines) and "
        f"{args.orders:,} Pinduoduo orders in {time.perf_counter() - started:.1f} s"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        owner, tmall_shop, pdd_shop = await _setup(
            runtime, args.earning_status if args.with_hooks else None
        )
        results: dict[str, Any] = {}
        if not args.with_hooks:
            # Other domains' hooks (loyalty earning) run in the same transaction; measured
            # separately with --with-hooks, they are not the import's own cost.
            pipeline.loyalty_hook = lambda: None  # type: ignore[attr-defined,assignment,return-value]
        for name, files, fmt, shop in (
            ("tmall", tmall_files, "tmall", tmall_shop),
            ("pinduoduo", pdd_files, "pinduoduo", pdd_shop),
        ):
            first, counts, timings = await _import(runtime, owner, files, fmt, shop)
            again, recounts, _ = await _import(runtime, owner, files, fmt, shop)
            assert recounts["orders_created"] == recounts["orders_updated"] == 0
            results[name] = (first, again, counts, timings)
            print(f"{name}: import {first:.2f} s, re-import {again:.2f} s, stages {timings}")
        rss = _rss_mb()
        copy_s, copied_orders, copied_items = await _bare_copy(runtime, owner.tenant_id, True)
        index_copy_s, _, _ = await _bare_copy(runtime, owner.tenant_id, False)
        orm_s, orm_rows = await _orm_baseline(
            runtime, owner.tenant_id, tmall_files, "tmall", args.orm_orders
        )
    total_orders = 2 * args.orders
    import_s = sum(r[0] for r in results.values())
    reimport_s = sum(r[1] for r in results.values())
    import_rate = total_orders / import_s
    orm_rate = orm_rows / orm_s
    print()
    print(f"machine: {platform.node()} {os.cpu_count()} cores, PostgreSQL at {url.split('@')[-1]}")
    print("| stage | time | rate |")
    print("| --- | --- | --- |")
    for name, (first, again, counts, _) in results.items():
        rows = counts["rows_read"]
        print(_line(f"{name} import (decode, parse, load, facts)", first, rows))
        print(_line(f"{name} re-import (nothing changes)", again, rows))
    print(_line("both imports", import_s, total_orders))
    print(
        _line(
            f"bare COPY, {copied_orders:,} orders + {copied_items:,} items "
            "(same indexes and foreign keys)",
            copy_s,
            total_orders,
        )
    )
    print(_line("bare COPY, same indexes, no foreign keys", index_copy_s, total_orders))
    print(_line(f"ORM row by row ({orm_rows:,} Tmall orders with items)", orm_s, orm_rows))
    print()
    print(f"import / bare COPY: {import_s / copy_s:.2f}x (target <= 2x)")
    print(f"import / bare COPY without foreign keys: {import_s / index_copy_s:.2f}x")
    print(f"import vs ORM: {import_rate / orm_rate:.1f}x faster (target >= 4x)")
    print(f"re-import / import: {reimport_s / import_s:.0%} (target <= 60%)")
    print(f"peak RSS: {rss:,.0f} MB (target < 1,500 MB)")
    print(f"loyalty hook included: {args.with_hooks}")
    if args.with_hooks:
        hooks_s = sum(r[3].get("hooks_s", 0.0) for r in results.values())
        earns = await _earn_count(url)
        print(
            f"loyalty hook (earning on {args.earning_status}): {hooks_s:.2f} s of {import_s:.2f} s"
            f" ({hooks_s / (import_s - hooks_s):.1%} added), {earns:,} pending earns written"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=100_000, help="orders per platform")
    parser.add_argument("--orm-orders", type=int, default=10_000, help="ORM baseline slice")
    parser.add_argument("--full", action="store_true", help="the issue's 1,000,000 per platform")
    parser.add_argument(
        "--with-hooks", action="store_true", help="include the loyalty hook in the import"
    )
    parser.add_argument(
        "--earning-status",
        choices=[s.value for s in EarningStatus],
        default="paid",
        help="the loyalty program's earning status with --with-hooks",
    )
    args = parser.parse_args()
    if args.full:
        args.orders = 1_000_000
    url = fresh_database("import_bench")
    try:
        asyncio.run(run(args, url))
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
