"""Export parsing benchmark: generated Tmall pair and Pinduoduo file -> canonical frames.

    .venv/bin/python -m bench.parse_bench            # 200,000 orders per platform
    .venv/bin/python -m bench.parse_bench --full     # 1,000,000 orders per platform

Each measurement runs in a fresh child process (peak RSS is that process's alone). Baseline, in
the same run: polars reading the same file as bare strings (`read_csv`, no cleaning, no checks;
for the GB18030 list through polars' own `encoding=` path).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.services.demo_exports import write_pdd_export, write_tmall_export

PEAK = """
def peak_mb():
    # VmHWM: this process's own peak (ru_maxrss would inherit the parent's across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0
"""
PARSE = (
    PEAK
    + """
import json, sys, time
from pathlib import Path
from app.services.imports.parse import parse_export
files = [Path(p) for p in sys.argv[2:]]
start, cpu = time.perf_counter(), time.process_time()
snapshots = parse_export(files, sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({
    "seconds": seconds,
    "cpu": time.process_time() - cpu,
    "orders": sum(s.orders.height for s in snapshots),
    "items": sum(s.items.height for s in snapshots),
    "rejected": sum(s.rejections.height for s in snapshots),
    "peak_mb": peak_mb(),
}))
"""
)
BARE = (
    PEAK
    + """
import json, sys, time
import polars as pl
start, cpu = time.perf_counter(), time.process_time()
rows = 0
for path in sys.argv[2:]:
    kwargs = {"encoding": sys.argv[1]} if sys.argv[1] != "utf8" else {}
    rows += pl.read_csv(path, infer_schema=False, truncate_ragged_lines=True, **kwargs).height
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "cpu": time.process_time() - cpu,
    "rows": rows,
    "peak_mb": peak_mb(),
}))
"""
)


def child(code: str, *args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--full", action="store_true", help="1,000,000 orders per platform")
    args = parser.parse_args()
    orders = 1_000_000 if args.full else args.orders
    with tempfile.TemporaryDirectory(prefix="kezhan-parse-bench-") as folder:
        work = Path(folder)
        start = time.perf_counter()
        tmall = write_tmall_export(work, orders, seed=1)
        tmall_gen = time.perf_counter() - start
        start = time.perf_counter()
        pdd = write_pdd_export(work, orders, seed=2)
        pdd_gen = time.perf_counter() - start
        sizes = {f.name: f.stat().st_size for f in [*tmall.files, *pdd.files]}
        print(
            f"generated {orders:,} orders per platform: Tmall {tmall_gen:.1f} s "
            f"({tmall.items:,} lines), Pinduoduo {pdd_gen:.1f} s"
        )
        for name, size in sizes.items():
            print(f"  {name}: {size / 1e6:.0f} MB")
        cases = [
            ("tmall", tmall.files, "gb18030", tmall.orders),
            ("pinduoduo", pdd.files, "utf8", pdd.orders),
        ]
        for platform, files, encoding, count in cases:
            paths = [str(f) for f in files]
            bare = child(BARE, encoding, *paths)
            parsed = child(PARSE, platform, *paths)
            if parsed["orders"] != count or parsed["rejected"]:
                raise SystemExit(f"{platform}: unexpected parse result {parsed}")
            print(
                f"{platform}: parse_export {parsed['seconds']:.1f} s wall / "
                f"{parsed['cpu']:.1f} s CPU ({count / parsed['seconds']:,.0f} orders/s, "
                f"peak {parsed['peak_mb']:.0f} MB); bare polars read {bare['seconds']:.1f} s "
                f"wall / {bare['cpu']:.1f} s CPU (peak {bare['peak_mb']:.0f} MB); "
                f"ratio {parsed['seconds'] / bare['seconds']:.1f}x wall"
            )


if __name__ == "__main__":
    main()
