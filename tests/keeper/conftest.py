"""Keeper integration fixtures: the local exchange in-process, real ccxt, a real audit store."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore
from hedged.config import Config, parse_config
from hedged.keeper import Keeper
from hedged.service import make_venues, secrets_of
from hedged.sim.server import Emulator
from hedged.sim.settings import binance_settings, default_settings


def keeper_config(url: str, db: Path, exchange: str = "bybit", **sections: Any) -> Config:
    return parse_config(keeper_data(url, db, exchange, **sections), db.parent)


def keeper_data(url: str, db: Path, exchange: str = "bybit", **sections: Any) -> dict[str, Any]:
    hedges = sections.pop("hedge", [
        {"asset": "BTC", "venue": "sim", "instrument": "BTC/USD:BTC"},
        {"asset": "ETH", "venue": "sim", "instrument": "ETH/USD:ETH"},
    ])
    data: dict[str, Any] = {
        "keeper": {"name": "t1", "interval": 0.05, **sections.pop("keeper", {})},
        "venues": {"sim": {"exchange": exchange, "url": url, "api_key_env": "SIM_KEY", "secret_env": "SIM_SECRET",
                           "timeout": 2, **sections.pop("venue", {})}},
        "hedge": hedges,
        "audit": {"url": f"sqlite:///{db}"},
        "limits": {"max_order_usd": 10_000_000, "max_position_usd": 100_000_000,
                   "max_daily_turnover_usd": 1_000_000_000, "max_orders_per_hour": 100_000,
                   **sections.pop("limits", {})},
        **sections,
    }
    return data


def to_toml(data: dict[str, Any]) -> str:
    """The few shapes a keeper config has: tables, nested tables, arrays of tables, scalars."""
    import json

    def value(v: Any) -> str:
        return ("true" if v else "false") if isinstance(v, bool) else json.dumps(v) if isinstance(v, str) else str(v)

    def table(name: str, body: dict[str, Any]) -> list[str]:
        lines = [f"[{name}]"] + [f"{k} = {value(v)}" for k, v in body.items() if not isinstance(v, dict | list)]
        for k, v in body.items():
            if isinstance(v, dict):
                lines += table(f"{name}.{k}", v)
        return lines

    out: list[str] = []
    for key, v in data.items():
        if isinstance(v, list):
            for item in v:
                out += [f"[[{key}]]"] + [f"{k} = {value(x)}" for k, x in item.items()]
        else:
            out += table(key, v)
    return "\n".join(out) + "\n"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = "demo-key", "demo-secret"
    async with Emulator(default_settings(speed=1.0)) as emu:
        yield emu


class ShiftedClock:
    """The keeper's (and its store's) clock: wall time plus an offset a test moves forward at will."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, by: timedelta) -> None:
        self.offset += by


class Harness:
    def __init__(self, emu: Emulator, config: Config, store: AuditStore, clock: ShiftedClock | None = None) -> None:
        self.emu, self.config, self.store = emu, config, store
        self.clock = clock or ShiftedClock()
        self.venues = make_venues(config)
        self.keeper = Keeper(config, store, self.venues, clock=self.clock)

    async def close(self) -> None:
        for v in self.venues.values():
            await v.close()
        await self.store.close()


@pytest.fixture
async def harness_factory(emulator: Emulator, tmp_path: Path) -> AsyncIterator[Any]:
    made: list[Harness] = []

    async def make(**sections: Any) -> Harness:
        cfg = keeper_config(emulator.url, tmp_path / f"k{len(made)}.db", **sections)
        await upgrade(cfg.audit_url)
        clock = ShiftedClock()
        store = await AuditStore.open(cfg.audit_url, cfg.keeper.name, secrets=secrets_of(cfg), clock=clock)
        h = Harness(emulator, cfg, store, clock)
        await h.keeper.start()
        made.append(h)
        return h

    yield make
    for h in made:
        await h.close()


@pytest.fixture(params=["bybit", "binance"])
async def front_harness_factory(request: Any, tmp_path: Path) -> AsyncIterator[tuple[str, Any]]:
    """(front, harness factory) on each front of the local exchange: venue `sim` is bybit there, and
    binancecoinm on the Binance front (BTCUSD_PERP: 100 USD a contract)."""
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = "demo-key", "demo-secret"
    front = request.param
    # the keeper cycles every 50 ms here, far past Binance's request weight per minute: weight is off
    settings = default_settings(speed=1.0) if front == "bybit" else binance_settings(speed=1.0, weight_limit_1m=0)
    made: list[Harness] = []
    async with Emulator(settings, exchange=front) as emu:

        async def make(**sections: Any) -> Harness:
            cfg = keeper_config(emu.url, tmp_path / f"k{len(made)}.db",
                                "bybit" if front == "bybit" else "binancecoinm", **sections)
            await upgrade(cfg.audit_url)
            store = await AuditStore.open(cfg.audit_url, cfg.keeper.name, secrets=secrets_of(cfg))
            h = Harness(emu, cfg, store)
            await h.keeper.start()
            made.append(h)
            return h

        yield front, make
        for h in made:
            await h.close()
