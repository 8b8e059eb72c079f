"""Audit store benchmark: durable single-event commit latency (p50/p99) and batched events/s.

Runs against a temporary SQLite file and, if reachable, a throwaway Postgres database
(HEDGED_BENCH_PG, default postgresql://postgres@127.0.0.1:5432/test). Bounded: a fixed number of
commits and batches, so it stops by itself in a few seconds.

    .venv/bin/python bench/audit.py [--single 500] [--batches 50] [--batch-size 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg

from hedged.audit import migrate
from hedged.audit.store import AuditStore, NewEvent

PG_ADMIN = os.environ.get("HEDGED_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def bench(url: str, label: str, single: int, batches: int, batch_size: int) -> None:
    await migrate.upgrade(url)
    store = await AuditStore.open(url, "bench")
    try:
        payload = {"name": "drift", "value": Decimal("0.0123"), "price": Decimal("65000.5")}
        for _ in range(20):  # warm up the pool and caches
            await store.append("alert", payload)
        lat: list[float] = []
        for _ in range(single):
            t = time.perf_counter()
            await store.append("alert", payload, venue="bybit", symbol="BTC/USD:BTC")
            lat.append((time.perf_counter() - t) * 1000)
        t0 = time.perf_counter()
        for _ in range(batches):
            await store.append_many(
                [NewEvent("cycle", payload, venue="bybit", symbol="BTC/USD:BTC")] * batch_size
            )
        rate = batches * batch_size / (time.perf_counter() - t0)
        ok = (await store.verify()).ok
    finally:
        await store.close()
    print(
        f"{label:<9} single commit p50 {statistics.median(lat):6.2f} ms  p99 {_pct(lat, 99):6.2f} ms"
        f"  ({single} commits)   batched {rate:8.0f} events/s ({batches}x{batch_size})"
        f"   chain {'ok' if ok else 'BROKEN'}"
    )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--single", type=int, default=500)
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        await bench(f"sqlite:///{Path(tmp) / 'bench.db'}", "sqlite", args.single, args.batches,
                    args.batch_size)
    name = f"hedged_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        print(f"postgres  skipped: {PG_ADMIN} not reachable ({type(exc).__name__})")
        return
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        await bench(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", "postgres", args.single, args.batches,
                    args.batch_size)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    from hedged.log import configure

    configure(level="warning")
    asyncio.run(main())
