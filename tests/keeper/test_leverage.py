"""Leverage and margin mode set by the keeper at start, through real ccxt, on both fronts of the local
exchange: a fresh account at 10x cross becomes 1x isolated; a refusal is alerted and blocks trading."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore
from hedged.config import parse_config
from hedged.keeper import Keeper
from hedged.leverage import Current, Wanted, changes
from hedged.service import make_venues, secrets_of
from hedged.sim.server import Emulator
from hedged.sim.settings import binance_settings, default_settings

INV = "BTC/USD:BTC"


@pytest.fixture(params=["bybit", "binancecoinm"])
async def exchange(request: Any) -> AsyncIterator[tuple[str, Emulator]]:
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = "demo-key", "demo-secret"
    bybit = request.param == "bybit"
    emu = Emulator(default_settings()) if bybit else Emulator(binance_settings(), exchange="binance")
    async with emu:
        yield request.param, emu


async def start(exchange: str, emu: Emulator, tmp_path: Path) -> tuple[Keeper, AuditStore, dict[str, Any]]:
    cfg = parse_config({
        "keeper": {"name": "lv", "interval": 0.05},
        "venues": {"perp": {"exchange": exchange, "url": emu.url, "api_key_env": "SIM_KEY",
                            "secret_env": "SIM_SECRET", "timeout": 2, "leverage": 1, "margin_mode": "isolated"}},
        "hedge": [{"asset": "BTC", "venue": "perp", "instrument": INV}],
        "audit": {"url": f"sqlite:///{tmp_path / 'lv.db'}"},
        "limits": {"max_order_usd": 10_000_000, "max_position_usd": 100_000_000,
                   "max_daily_turnover_usd": 1_000_000_000, "max_orders_per_hour": 100_000},
    }, tmp_path)
    await upgrade(cfg.audit_url)
    store = await AuditStore.open(cfg.audit_url, cfg.keeper.name, secrets=secrets_of(cfg))
    venues = make_venues(cfg)
    keeper = Keeper(cfg, store, venues)
    await keeper.start()
    return keeper, store, venues


async def alerts(store: AuditStore) -> list[dict[str, Any]]:
    ev = await store.last_event("alert")
    return [ev.payload] if ev is not None else []


def test_changes_in_order() -> None:
    assert changes(Wanted(Decimal(1), "isolated"), Current(Decimal(10), "cross", True)) == [
        "position_mode", "margin_mode", "leverage"]
    assert changes(Wanted(Decimal(1), "isolated"), Current(Decimal(1), "isolated", False)) == []
    assert changes(Wanted(None, "cross"), Current(Decimal(5), "isolated", None)) == ["margin_mode"]


async def test_fresh_account_at_10x_cross_becomes_1x_isolated(exchange: tuple[str, Emulator], tmp_path: Path) -> None:
    name, emu = exchange
    acct = emu.engine.accounts["demo-key"]
    inst = emu.engine.instrument(INV)
    assert emu.engine.leverage_of(acct, inst) == 10 and emu.engine.margin_mode_of(acct, inst) == "cross"
    keeper, store, venues = await start(name, emu, tmp_path)
    try:
        assert emu.engine.leverage_of(acct, inst) == 1 and emu.engine.margin_mode_of(acct, inst) == "isolated"
        assert keeper.settings_refused == {}
        ev = await store.last_event("account_settings")
        assert ev is not None and ev.payload["margin_mode"] == "isolated" and ev.payload["leverage"] == "1"
        res = await keeper.cycle()
        assert res.sent == 1  # and it trades
    finally:
        for v in venues.values():
            await v.close()
        await store.close()


async def test_exchange_refusal_is_alerted_and_blocks_trading(exchange: tuple[str, Emulator], tmp_path: Path) -> None:
    name, emu = exchange
    inst = emu.engine.instrument(INV)
    # a position opened by hand: both venues refuse a margin-mode switch while one is open
    emu.engine.place_order("demo-key", inst, "Sell", "Market", Decimal(100))
    keeper, store, venues = await start(name, emu, tmp_path)
    try:
        why = keeper.settings_refused[("perp", INV)]
        assert why.startswith("the exchange refused the account settings") or "still differ" in why
        ev = await store.last_event("alert")
        assert ev is not None and ev.payload["level"] == "critical" and ev.payload["code"] == "account_settings"
        n = len(emu.engine.orders)
        res = await keeper.cycle()
        (d,) = res.decisions
        assert res.sent == 0 and d.action == "blocked" and d.reasons[-1].code == "account_settings"
        assert len(emu.engine.orders) == n
    finally:
        for v in venues.values():
            await v.close()
        await store.close()
