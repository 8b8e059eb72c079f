"""Keeper cycle benchmark against the in-process local exchange (loopback only; bounded; stops by itself).

Prints: core compute time per instrument per cycle (µs); full-cycle wall time divided by the time of the
same exchange reads alone (our overhead ratio); exchange requests per quiet cycle per venue for 1 and 20
instruments; RSS after 1,000 cycles.

    .venv/bin/python bench/cycle.py [--cycles 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore
from hedged.config import parse_config
from hedged.decide import decide
from hedged.keeper import Keeper
from hedged.log import configure
from hedged.model import Snapshot, TradingState
from hedged.service import make_venues
from hedged.sim.server import Emulator
from hedged.sim.settings import default_settings
from hedged.snapshot import parse_venue


def settings(n: int) -> tuple[Any, list[str]]:
    """The local exchange's settings for n inverse instruments C00/USD:C00…, 1,000 coins of each held."""
    coins = [f"C{i:02d}" for i in range(n)]
    return default_settings(
        assets={c: {"price": Decimal(100 + i)} for i, c in enumerate(coins)},
        instruments=[{"symbol": f"{c}/USD:{c}", "tick": Decimal("0.01"), "qty_step": Decimal(1),
                      "contract_size": Decimal(1)} for c in coins],
        accounts=[{"api_key": "bench-key", "secret": "bench-secret", "balances": {c: Decimal(1000) for c in coins}}],
    ), coins


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(n: int, cycles: int, report_rss: bool) -> None:
    emu_settings, coins = settings(n)
    os.environ["BENCH_KEY"], os.environ["BENCH_SECRET"] = "bench-key", "bench-secret"
    async with Emulator(emu_settings) as emu:
        tmp = Path(tempfile.mkdtemp(prefix="hedged-bench-"))
        cfg = parse_config({
            "keeper": {"name": "bench", "interval": 1},
            "venues": {"sim": {"exchange": "bybit", "url": emu.url, "api_key_env": "BENCH_KEY",
                               "secret_env": "BENCH_SECRET"}},
            "hedge": [{"asset": c, "venue": "sim", "instrument": f"{c}/USD:{c}"} for c in coins],
            "audit": {"url": f"sqlite:///{tmp / 'bench.db'}"},
            "limits": {"max_order_usd": 10**9, "max_position_usd": 10**10, "max_daily_turnover_usd": 10**12,
                       "max_orders_per_hour": 10**6},
        }, tmp)
        await upgrade(cfg.audit_url)
        store = await AuditStore.open(cfg.audit_url, "bench")
        venues = make_venues(cfg)
        venue = venues["sim"]
        keeper = Keeper(cfg, store, venues)
        await keeper.start()
        for _ in range(60):  # open the hedges and let them fill
            res = await keeper.cycle()
            if not await store.unsettled_orders() and all(d.action == "hold" for d in res.decisions):
                break
            await asyncio.sleep(0.2)

        # requests per quiet cycle
        before = venue.requests
        res = await keeper.cycle()
        quiet = venue.requests - before
        assert res.sent == 0

        # core compute per instrument
        raw = await venue.fetch_state(with_orders=False)
        snap = Snapshot(time=keeper.clock(), venues={"sim": parse_venue(raw, "venues.sim")})
        reps = 200
        t0 = time.perf_counter()
        for _ in range(reps):
            decide(cfg, snap, state=TradingState.RUNNING)
        core_us = (time.perf_counter() - t0) / reps / n * 1e6

        # full cycle vs the exchange reads alone
        walls, reads = [], []
        for _ in range(cycles):
            t0 = time.perf_counter()
            await keeper.step()  # what the run loop does: cycle, then alerts and the MQTT state
            walls.append(time.perf_counter() - t0)
        for _ in range(min(cycles, 200)):
            t0 = time.perf_counter()
            await venue.fetch_state(with_orders=False)
            reads.append(time.perf_counter() - t0)
        ratio = statistics.median(walls) / statistics.median(reads)
        print(f"instruments={n:>2}  core={core_us:8.1f} µs/instrument/cycle  "
              f"cycle p50={statistics.median(walls) * 1000:6.2f} ms  "
              f"reads p50={statistics.median(reads) * 1000:6.2f} ms  "
              f"overhead ratio={ratio:4.2f}  requests/quiet cycle={quiet}"
              + (f"  RSS after {cycles} cycles={rss_mb():.0f} MiB" if report_rss else ""))
        for v in venues.values():
            await v.close()
        await store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=1000)
    args = ap.parse_args()
    configure(level="warning")
    asyncio.run(run(1, 200, False))
    asyncio.run(run(20, args.cycles, True))


if __name__ == "__main__":
    main()
