"""Quiet-market benchmark: what an idle, hedged keeper costs in REST requests, streamed and polling.

Runs the real keeper (real ccxt / ccxt.pro over loopback, SQLite audit store, default `interval` 10 s and
`resync` 60 s) against the in-process local exchange. The keeper first opens the hedge and the book goes
quiet (nothing of ours open); then nothing happens for N minutes: no deposit, no price move. It prints,
per venue, the REST requests per minute the local exchange counted for the account's key (plus unsigned
ones), the orders placed, the cycles run, and for streams the resyncs and the counted REST/stream
differences. Goal (issue 14): with streams ≤ 2 REST requests per venue per minute (resyncs only), zero
orders; polling as today (4 per cycle: balance, positions, tickers, open orders).

    .venv/bin/python bench/quiet.py [--minutes 10] [--polling-minutes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkeeper import KEY, running_keeper  # bench/ is the script's own directory

from hedged.keeper import Keeper
from hedged.log import configure
from hedged.sim.rest import RestFront
from hedged.sim.server import Emulator
from hedged.sim.settings import default_settings
from hedged.stream import StreamedVenue


async def run(stream: bool, minutes: float) -> str:
    async with Emulator(default_settings(speed=1.0)) as emu, \
            running_keeper(emu, "quiet", "bybit", stream) as (keeper, venues):  # interval 10 s, resync 60 s
        await settle(emu, keeper)
        v = venues["sim"]
        assert isinstance(emu.rest, RestFront)
        rest0, public0 = emu.rest.requests[KEY], emu.rest.requests["public"]
        orders0, cycles0 = len(emu.engine.orders_list()), keeper.cycles
        resyncs0 = v.resyncs if isinstance(v, StreamedVenue) else 0
        t0 = time.monotonic()
        await asyncio.sleep(minutes * 60)
        took = (time.monotonic() - t0) / 60
        rest, public = emu.rest.requests[KEY] - rest0, emu.rest.requests["public"] - public0
        orders, cycles = len(emu.engine.orders_list()) - orders0, keeper.cycles - cycles0
        line = (f"{'streams' if stream else 'polling':<8} {took:5.1f} min  venue sim: "
                f"REST {rest / took:5.2f}/min signed + {public / took:4.2f}/min public  orders={orders}  "
                f"cycles={cycles}")
        if isinstance(v, StreamedVenue):
            line += f"  resyncs={v.resyncs - resyncs0}  differences={v.differences}  reconnects={v.reconnects}"
        return line


async def settle(emu: Emulator, keeper: Keeper) -> None:
    """The hedge is open, nothing of ours is on the book or in flight, and one more cycle has run."""
    for _ in range(12000):
        orders = emu.engine.orders_list()
        if orders and not any(o["status"] in ("New", "PartiallyFilled") for o in orders) \
                and not await keeper.store.unsettled_orders():
            n = keeper.cycles + 1
            while keeper.cycles < n:  # noqa: ASYNC110 (a counter, not an event)
                await asyncio.sleep(0.05)
            return
        await asyncio.sleep(0.01)
    raise SystemExit("the hedge did not settle within 120 s")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0, help="quiet minutes with streams")
    ap.add_argument("--polling-minutes", type=float, default=10.0, help="quiet minutes polling (0: skip)")
    args = ap.parse_args()
    configure(level="warning")
    if args.minutes:
        print(await run(True, args.minutes), flush=True)
    if args.polling_minutes:
        print(await run(False, args.polling_minutes), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
