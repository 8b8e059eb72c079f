"""Audit store growth of a quiet keeper: bytes per instrument per day, for 1 and 20 instruments, on SQLite and
Postgres, with the quiet-cycle rule off (every row, as before) and on (the default `[audit] quiet_every`).

A real keeper (real ccxt, the in-process local exchange on loopback) runs `--hours` of cycles at the default
10 s interval as fast as it can; the audit store's clock is simulated (10 s per cycle), so heartbeats fall as
they would over that many hours. Growth is measured on disk (SQLite file + WAL after a checkpoint) and with
pg_total_relation_size (Postgres), after the hedges have opened, and scaled to a day when --hours < 24.

    .venv/bin/python bench/growth.py [--hours 24] [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from cycle import settings  # bench/ is the script's own directory: n instruments, one coin each

from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore
from hedged.config import parse_config
from hedged.keeper import Keeper
from hedged.log import configure
from hedged.service import make_venues
from hedged.sim.server import Emulator

INTERVAL = 10.0  # the default [keeper] interval
TABLES = ("events", "cycles", "orders", "fills")


class SimClock:
    """The store's clock: starts now and moves INTERVAL seconds per cycle."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def size(url: str) -> int:
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        with sqlite3.connect(path) as c:  # pages in use (free pages are reused before the file grows)
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            pages, free, page = (c.execute(f"PRAGMA {p}").fetchone()[0] for p in
                                 ("page_count", "freelist_count", "page_size"))
        return int((pages - free) * page)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
        return int(sum([await conn.fetchval("SELECT pg_total_relation_size($1)", t) for t in TABLES]))
    finally:
        await conn.close()


async def run(n: int, url: str, quiet_every: float, cycles: int) -> int:
    """Bytes the store grew by over `cycles` quiet cycles of n instruments."""
    emu_settings, coins = settings(n)
    os.environ["BENCH_KEY"], os.environ["BENCH_SECRET"] = "bench-key", "bench-secret"
    async with Emulator(emu_settings) as emu:
        base = Path(tempfile.mkdtemp(prefix="hedged-growth-"))
        cfg = parse_config({
            "keeper": {"name": "growth", "interval": INTERVAL},
            "venues": {"sim": {"exchange": "bybit", "url": emu.url, "api_key_env": "BENCH_KEY",
                               "secret_env": "BENCH_SECRET"}},
            "hedge": [{"asset": c, "venue": "sim", "instrument": f"{c}/USD:{c}"} for c in coins],
            "audit": {"url": url, "quiet_every": quiet_every},
            "limits": {"max_order_usd": 10**9, "max_position_usd": 10**10, "max_daily_turnover_usd": 10**12,
                       "max_orders_per_hour": 10**6},
        }, base)
        await upgrade(cfg.audit_url)
        clock = SimClock()
        store = await AuditStore.open(cfg.audit_url, "growth", clock=clock, quiet_every=quiet_every)
        venues = make_venues(cfg)
        keeper = Keeper(cfg, store, venues)
        try:
            await keeper.start()
            for _ in range(60):  # open the hedges and let them fill: from then on the keeper is quiet
                res = await keeper.step()
                clock.now += timedelta(seconds=INTERVAL)
                if not await store.unsettled_orders() and all(d.action == "hold" for d in res.decisions):
                    break
                await asyncio.sleep(0.2)
            before = await size(cfg.audit_url)
            for _ in range(cycles):
                res = await keeper.step()
                clock.now += timedelta(seconds=INTERVAL)
                assert not res.error and res.sent == 0, (res.error, res.sent)
            return await size(cfg.audit_url) - before
        finally:
            for v in venues.values():
                await v.close()
            await store.close()


async def pg_database(admin: str) -> tuple[str, str]:
    name = f"hedged_growth_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    conn = await asyncpg.connect(admin, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, f"{admin.rpartition('/')[0]}/{name}"


async def drop(admin: str, name: str) -> None:
    conn = await asyncpg.connect(admin, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def main_async(hours: float, pg: str | None, before_hours: float) -> None:
    per_day = 86400 / INTERVAL
    for backend in ("sqlite", "postgres"):
        if backend == "postgres" and not pg:
            print("postgres: skipped (no --pg)")
            continue
        for n in (1, 20):
            for label, quiet_every, h in (("every row (before)", 0.0, before_hours), ("quiet rule (after)", 600.0,
                                                                                      hours)):
                cycles = int(h * 3600 / INTERVAL)
                if backend == "sqlite":
                    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='hedged-growth-')) / 'audit.db'}"
                    grown = await run(n, url, quiet_every, cycles)
                else:
                    assert pg is not None
                    name, url = await pg_database(pg)
                    try:
                        grown = await run(n, url, quiet_every, cycles)
                    finally:
                        await drop(pg, name)
                per_instrument_day = grown / n * per_day / cycles
                print(f"{backend:<8} instruments={n:>2}  {label:<19} simulated {h:g} h ({cycles} cycles): "
                      f"{per_instrument_day / 1024:9.1f} KB/instrument/day  "
                      f"({per_instrument_day * 365 / 2**20:8.1f} MB/instrument/year)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=24.0, help="simulated hours with the quiet rule on")
    ap.add_argument("--before-hours", type=float, default=1.0,
                    help="simulated hours with every row written (grows linearly: scaled to a day)")
    ap.add_argument("--pg", default=os.environ.get("HEDGED_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
                    help="admin DSN for a throwaway Postgres database ('' to skip Postgres)")
    args = ap.parse_args()
    configure(level="error")
    asyncio.run(main_async(args.hours, args.pg or None, args.before_hours))


if __name__ == "__main__":
    main()
