"""What the stream tests share: waiting on a condition, the exchange's position, a streamed venue's config,
and `streamed_keepers`, the factory of streamed keepers running against one local exchange."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore
from hedged.keeper import Keeper
from hedged.service import make_venues, secrets_of
from hedged.sim.server import Emulator
from hedged.sim.settings import binance_settings, default_settings
from hedged.stream import StreamedVenue, attach
from tests.keeper.conftest import keeper_config

INV = "BTC/USD:BTC"

# `start(heartbeat=20.0, hedge=None, limits=None, **keeper)`: a started keeper, running, on a streamed venue
Start = Callable[..., Awaitable[tuple[Emulator, Keeper, StreamedVenue]]]


async def until(cond: Callable[[], bool], what: str, bound: float = 60.0) -> None:
    for _ in range(int(bound / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {bound} s: {what}")


def position(emu: Emulator, symbol: str) -> Decimal:
    """The demo account's position on the exchange, in contracts (negative: short)."""
    for p in emu.engine.state()["accounts"]["demo-key"]["positions"]:
        if p["symbol"] == symbol:
            return Decimal(str(p["size"]))
    return Decimal(0)


def venue_cfg(exchange: str, url: str, heartbeat: float = 20.0) -> dict[str, Any]:
    """`[venues.sim]`, streamed, on ccxt's `exchange` ("bybit", "binancecoinm") at `url`."""
    return {"sim": {"exchange": exchange, "url": url, "api_key_env": "SIM_KEY", "secret_env": "SIM_SECRET",
                    "timeout": 2, "stream": True, "stream_heartbeat": heartbeat}}


@contextlib.asynccontextmanager
async def streamed_keepers(tmp_path: Path, exchange: str) -> AsyncIterator[Start]:
    """A local exchange ("bybit" or "binance": its COIN-M side) on the real clock, and `start` for keepers
    against it; on exit the keepers are stopped, their venues and stores closed, the exchange stopped."""
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = "demo-key", "demo-secret"
    if exchange == "binance":
        emu, ccxt_id, name = Emulator(binance_settings(speed=1.0), exchange="binance"), "binancecoinm", "b"
    else:
        emu, ccxt_id, name = Emulator(default_settings(speed=1.0)), "bybit", "s"
    await emu.start()
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    closers: list[Any] = []

    async def start(heartbeat: float = 20.0, hedge: list[dict[str, Any]] | None = None,
                    limits: dict[str, Any] | None = None, **keeper: Any) -> tuple[Emulator, Keeper, StreamedVenue]:
        cfg = keeper_config(emu.url, tmp_path / "k.db", venues=venue_cfg(ccxt_id, emu.url, heartbeat),
                            hedge=hedge or [{"asset": "BTC", "venue": "sim", "instrument": INV}],
                            keeper={"name": f"{name}{os.getpid()}", **keeper}, limits=limits or {})
        await upgrade(cfg.audit_url)
        store = await AuditStore.open(cfg.audit_url, cfg.keeper.name, secrets=secrets_of(cfg))
        venues = make_venues(cfg)
        k = Keeper(cfg, store, venues)
        attach(k)
        await k.start()
        closers.extend([*venues.values(), store])
        tasks.append(asyncio.create_task(k.run(stop)))
        v = venues["sim"]
        assert isinstance(v, StreamedVenue)
        return emu, k, v

    try:
        yield start
    finally:
        stop.set()
        for t in tasks:
            await asyncio.wait_for(t, 60)
        for c in closers:
            await c.close()
        await emu.stop()
