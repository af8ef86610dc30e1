"""GET /api/v1/customers/{id} (API-key check included) against a bare asyncpg ASGI endpoint.

Target (issue 2): Kezhan's read reaches at least 50% of the bare endpoint's requests/s, one
uvicorn worker each, measured in the same run on the same database.

    python -m bench.customers_bench [--customers 5000] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import tempfile
from pathlib import Path

from app.config import Settings
from app.crypto import Vault, load_keys
from app.db import create_engine, create_sessionmaker
from app.schemas.customers import AddressIn, CustomerCreate, IdentityIn
from app.schemas.shops import Platform
from app.services import customers
from app.services.auth import Principal, Role, create_tenant
from bench.common import (
    bench_keys,
    drop_database,
    fresh_database,
    serve,
    server_cpu_seconds,
    wrk,
)


async def seed(url: str, keys: dict[str, str], count: int) -> tuple[str, str, list[str]]:
    settings = Settings(
        database_url=url,
        encryption_key=keys["KEZHAN_ENCRYPTION_KEY"],
        lookup_key=keys["KEZHAN_LOOKUP_KEY"],
    )
    engine = create_engine(url, settings)
    vault = Vault(load_keys(settings))
    ids: list[str] = []
    async with create_sessionmaker(engine)() as session:
        tenant, issued = await create_tenant(session, "bench")
        owner = Principal(tenant.id, issued.key.id, Role.owner, "bench")
        for i in range(count):
            record = await customers.create_customer(
                session,
                vault,
                owner,
                CustomerCreate(
                    display_name=f"客户{i}",
                    province="浙江省",
                    city="杭州市",
                    phones=[f"138{i:08d}"],
                    emails=[f"c{i}@example.com"],
                    tags=["bench"],
                    addresses=[
                        AddressIn(receiver_name="张三", phone=f"138{i:08d}", street="文三路 1 号")
                    ],
                    identities=[IdentityIn(platform=Platform.tmall, buyer_key=f"nick{i}")],
                ),
            )
            ids.append(str(record.profile.id))
            if i % 500 == 499:
                await session.commit()
        await session.commit()
    await engine.dispose()
    return str(tenant.id), issued.secret, ids


def lua_script(path_prefix: str, ids: list[str], key: str | None) -> Path:
    sample = random.sample(ids, min(len(ids), 2000))
    header = f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else ""
    script = header + "ids = {" + ",".join(f'"{i}"' for i in sample) + "}\n"
    script += (
        "request = function()\n"
        f'  return wrk.format("GET", "{path_prefix}" .. ids[math.random(#ids)])\nend\n'
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    return Path(handle.name)


def measure(url: str, script: Path, seconds: int) -> dict[str, float]:
    """wrk's figures plus the server's own CPU time per request (steadier on a shared machine)."""
    cpu = server_cpu_seconds(url)
    result = wrk(url, script, seconds)
    requests = result["rps"] * seconds
    return {**result, "cpu_ms": (server_cpu_seconds(url) - cpu) * 1000 / requests}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating baseline/Kezhan runs")
    args = parser.parse_args()

    url = fresh_database("kezhan_bench_customers")
    try:
        runs = measure_both(url, args)
    finally:
        drop_database(url)
    report(runs, args)


def measure_both(url: str, args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    keys = bench_keys()
    tenant_id, api_key, ids = asyncio.run(seed(url, keys, args.customers))
    env = {"DATABASE_URL": url, **keys, "BENCH_TENANT": tenant_id, "KEZHAN_LOG_LEVEL": "INFO"}
    names = ("bare asyncpg ASGI (baseline)", "Kezhan GET /api/v1/customers/{id}")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with (
        serve("bench.raw_read_app:app", env) as bare,
        serve("app.main:create_app", env, factory=True) as kezhan,
    ):
        scripts = {
            names[0]: (bare, lua_script("/customers/", ids, None)),
            names[1]: (kezhan, lua_script("/api/v1/customers/", ids, api_key)),
        }
        for server, script in scripts.values():
            wrk(server, script, 3)  # warm-up: connections, prepared statements, caches
        # Alternating rounds: both sides see the same drift in the machine's other load.
        for _ in range(args.rounds):
            for name, (server, script) in scripts.items():
                runs[name].append(measure(server, script, args.seconds))
    return runs


def report(runs: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    names = tuple(runs)
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}; {args.customers} customers; wrk -t2 -c64 -d{args.seconds}s "
        f"x {args.rounds} alternating rounds; one uvicorn worker each; owner key (clear data)"
    )
    print("| endpoint | req/s (median) | p50 ms | p99 ms | server CPU ms/request |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in names:
        med = {k: statistics.median(r[k] for r in runs[name]) for k in runs[name][0]}
        print(
            f"| {name} | {med['rps']:.0f} | {med['p50_ms']:.1f} | {med['p99_ms']:.1f} "
            f"| {med['cpu_ms']:.3f} |"
        )
    ratios = [ours["rps"] / bare["rps"] for bare, ours in zip(*runs.values(), strict=True)]
    print(
        f"\nratio per round: {', '.join(f'{r:.0%}' for r in ratios)}; "
        f"median {statistics.median(ratios):.0%} of the bare endpoint (target: at least 50%)"
    )


if __name__ == "__main__":
    main()
