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
import tempfile
from pathlib import Path

from app.config import Settings
from app.crypto import Vault, load_keys
from app.db import create_engine, create_sessionmaker
from app.schemas.customers import AddressIn, CustomerCreate, IdentityIn
from app.schemas.shops import Platform
from app.services import customers
from app.services.auth import Principal, Role, create_tenant
from bench.common import bench_keys, fresh_database, serve, wrk


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()

    url = fresh_database("kezhan_bench_customers")
    keys = bench_keys()
    tenant_id, api_key, ids = asyncio.run(seed(url, keys, args.customers))
    env = {"DATABASE_URL": url, **keys, "BENCH_TENANT": tenant_id, "KEZHAN_LOG_LEVEL": "INFO"}
    results = {}
    with serve("bench.raw_read_app:app", env) as base:
        wrk(base, lua_script("/customers/", ids, None), 3)  # warm-up
        results["bare asyncpg ASGI (baseline)"] = wrk(
            base, lua_script("/customers/", ids, None), args.seconds
        )
    with serve("app.main:create_app", env, factory=True) as base:
        script = lua_script("/api/v1/customers/", ids, api_key)
        wrk(base, script, 3)
        results["Kezhan GET /api/v1/customers/{id}"] = wrk(base, script, args.seconds)

    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores; {args.customers} customers, "
        f"wrk -t2 -c64 -d{args.seconds}s, one uvicorn worker each"
    )
    print("| endpoint | req/s | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |")
    baseline, ours = results.values()
    ratio = ours["rps"] / baseline["rps"]
    print(f"\nratio: {ratio:.0%} of the bare endpoint (target: at least 50%)")


if __name__ == "__main__":
    main()
