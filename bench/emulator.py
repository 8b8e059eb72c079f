"""How fast the local exchange serves an unmodified ccxt client on loopback.

Runs an in-process emulator on 127.0.0.1, drives it with ccxt.async_support.bybit for a bounded time
(a mix of public ticker reads, signed balance/position reads and order create+cancel), then prints
requests per second and p50/p99 latency per call kind and overall. Stops by itself.

    .venv/bin/python bench/emulator.py [--seconds 5] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import defaultdict
from typing import Any

from hedged.sim import Emulator, default_settings, make_client

SYMBOL = "BTC/USD:BTC"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


async def worker(client: Any, n: int, deadline: float, lat: dict[str, list[float]]) -> None:
    i = 0
    while time.monotonic() < deadline:
        i += 1
        kind = ("ticker", "balance", "positions", "order")[i % 4]
        t0 = time.perf_counter()
        if kind == "ticker":
            await client.fetch_ticker(SYMBOL)
        elif kind == "balance":
            await client.fetch_balance()
        elif kind == "positions":
            await client.fetch_positions([SYMBOL])
        else:
            o = await client.create_order(SYMBOL, "limit", "buy", 10, 60000, {"clientOrderId": f"b{n}-{i}"})
            lat["create"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await client.cancel_order(o["id"], SYMBOL)
            kind = "cancel"
        lat[kind].append(time.perf_counter() - t0)


async def main(seconds: float, concurrency: int) -> None:
    settings = default_settings(taker_flow_usd_per_s=0)
    async with Emulator(settings) as emu:
        client = make_client(emu.url, "demo-key", "demo-secret")
        try:
            await client.load_markets()
            lat: dict[str, list[float]] = defaultdict(list)
            t0 = time.monotonic()
            deadline = t0 + seconds
            await asyncio.gather(*(worker(client, n, deadline, lat) for n in range(concurrency)))
            elapsed = time.monotonic() - t0
        finally:
            await client.close()
    everything = [x for xs in lat.values() for x in xs]
    print(f"emulator bench: {len(everything)} requests in {elapsed:.2f}s over loopback, "
          f"concurrency {concurrency}, one ccxt client")
    print(f"{'call':<10} {'count':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for kind in sorted(lat):
        xs = lat[kind]
        print(f"{kind:<10} {len(xs):>7} {pct(xs, 0.5) * 1000:>8.2f} {pct(xs, 0.99) * 1000:>8.2f}")
    print(f"{'all':<10} {len(everything):>7} {statistics.median(everything) * 1000:>8.2f} "
          f"{pct(everything, 0.99) * 1000:>8.2f}")
    print(f"throughput: {len(everything) / elapsed:.0f} requests/s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    asyncio.run(main(args.seconds, args.concurrency))
