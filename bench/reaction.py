"""Reaction benchmark: a deposit credited on the local exchange (admin API) → our order accepted by it.

Runs the real keeper (real ccxt / ccxt.pro over loopback, SQLite audit store) against the in-process local
exchange, once with streams and once polling at the default 10 s interval, and prints p50/p99 over the
deposits. Each deposit waits for the hedge to settle and the keeper to go quiet (two cycles without live
orders), then lands at a random moment 0–2 s later, so one reaction is timed at a time.
Goal (issue 14): with streams p50 ≤ 250 ms, p99 ≤ 1 s. `--exchange binance` runs the same against the local
exchange's Binance COIN-M front (ccxt.pro `binancecoinm`, user data behind a listen key).

    .venv/bin/python bench/reaction.py [--exchange bybit|binance] [--deposits 50] [--polling-deposits 50]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkeeper import KEY, running_keeper  # bench/ is the script's own directory

from hedged.log import configure
from hedged.sim.server import Emulator
from hedged.sim.settings import binance_settings, default_settings


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


async def run(stream: bool, deposits: int, interval: float, exchange: str = "bybit") -> list[float]:
    binance = exchange == "binance"
    settings = binance_settings(speed=1.0) if binance else default_settings(speed=1.0)
    accepted: list[float] = []
    arrived = asyncio.Event()

    def on_event(kind: str, key: str | None, o: object) -> None:
        if kind == "order" and key == KEY and getattr(o, "status", "") == "New":
            accepted.append(time.perf_counter())  # in the exchange, as it accepts the order
            arrived.set()

    out: list[float] = []
    async with Emulator(settings, exchange=exchange) as emu:
        emu.engine.listeners.append(on_event)
        async with running_keeper(emu, "bench", "binancecoinm" if binance else "bybit", stream,
                                  interval=interval) as (keeper, _), aiohttp.ClientSession() as http:
            await settle(emu)
            for _ in range(deposits):
                # not right after a fill (the keeper is still following at 1 s then): wait until it
                # has gone quiet, then deposit at a random moment
                quiet = keeper.cycles + 2
                while keeper.cycles < quiet:  # noqa: ASYNC110 (a counter, not an event)
                    await asyncio.sleep(0.01)
                await asyncio.sleep(random.uniform(0, 2))
                n = len(accepted)
                arrived.clear()
                t0 = time.perf_counter()
                async with http.post(f"{emu.url}/_admin/balance",
                                     json={"api_key": KEY, "coin": "BTC", "delta": "0.5"}) as r:
                    r.raise_for_status()
                await arrived.wait()
                out.append(accepted[n] - t0)
                await settle(emu)
    return out


async def settle(emu: Emulator) -> None:
    for _ in range(12000):
        orders = emu.engine.orders_list()
        if orders and not any(o["status"] in ("New", "PartiallyFilled") for o in orders):
            return
        await asyncio.sleep(0.01)
    raise SystemExit("the hedge did not settle within 120 s")


def report(name: str, xs: list[float]) -> None:
    ms = [x * 1000 for x in xs]
    print(f"{name:<26} n={len(ms):<3} p50={pct(ms, 0.5):8.1f} ms  p99={pct(ms, 0.99):8.1f} ms  "
          f"mean={statistics.mean(ms):8.1f} ms  max={max(ms):8.1f} ms")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deposits", type=int, default=50)
    ap.add_argument("--polling-deposits", type=int, default=50)
    ap.add_argument("--exchange", choices=("bybit", "binance"), default="bybit",
                    help="the local exchange's front: Bybit v5, or Binance COIN-M")
    args = ap.parse_args()
    configure(level="warning")
    tag = f"{args.exchange}, " if args.exchange != "bybit" else ""
    report(f"streams ({tag}interval 10 s)", await run(True, args.deposits, 10.0, args.exchange))
    if args.polling_deposits:
        report(f"polling ({tag}interval 10 s)", await run(False, args.polling_deposits, 10.0, args.exchange))


if __name__ == "__main__":
    asyncio.run(main())
