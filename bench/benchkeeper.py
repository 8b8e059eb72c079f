"""One keeper, as `hedged run` builds it, running against a local exchange for the stream benchmarks
(bench/quiet.py, bench/reaction.py): the config, store, venues, stream wiring and teardown they share."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore
from hedged.config import parse_config
from hedged.keeper import Keeper
from hedged.service import make_venues
from hedged.sim.server import Emulator
from hedged.stream import attach
from hedged.venue import CcxtVenue

INV = "BTC/USD:BTC"
KEY = "demo-key"


@asynccontextmanager
async def running_keeper(emu: Emulator, name: str, exchange: str, stream: bool,
                         **keeper: Any) -> AsyncIterator[tuple[Keeper, dict[str, CcxtVenue]]]:
    """A keeper hedging 10 BTC on venue `sim` (`exchange` is the ccxt id), cycling in the background until
    the block ends; `keeper` adds [keeper] fields (the defaults otherwise: interval 10 s, resync 60 s)."""
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = KEY, "demo-secret"
    tmp = Path(tempfile.mkdtemp())
    cfg = parse_config({
        "keeper": {"name": name, **keeper},
        "venues": {"sim": {"exchange": exchange, "url": emu.url, "api_key_env": "SIM_KEY",
                           "secret_env": "SIM_SECRET", "stream": stream}},
        "hedge": [{"asset": "BTC", "venue": "sim", "instrument": INV}],
        "audit": {"url": f"sqlite:///{tmp / f'{name}.db'}"},
        "limits": {"max_order_usd": 10_000_000, "max_position_usd": 100_000_000,
                   "max_daily_turnover_usd": 1_000_000_000, "max_orders_per_hour": 100_000},
    }, tmp)
    await upgrade(cfg.audit_url)
    store = await AuditStore.open(cfg.audit_url, cfg.keeper.name)
    venues = make_venues(cfg)
    k = Keeper(cfg, store, venues)
    attach(k)
    stop = asyncio.Event()
    await k.start()
    task = asyncio.create_task(k.run(stop))
    try:
        yield k, venues
    finally:
        stop.set()
        await task
        for v in venues.values():
            await v.close()
        await store.close()
