"""The keeper on Binance COIN-M through real ccxt (`binancecoinm`) against the local exchange's Binance
front: docs/architecture.md's worked example, where a contract is 100 USD (10 BTC at $65,000 → 6,500)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore
from hedged.config import parse_config
from hedged.keeper import Keeper
from hedged.service import make_venues, secrets_of
from hedged.sim.server import Emulator
from hedged.sim.settings import binance_settings


def coinm_position(emu: Emulator, symbol: str = "BTC/USD:BTC") -> Decimal:
    for p in emu.engine.state()["accounts"]["demo-key"]["positions"]:
        if p["symbol"] == symbol:
            return Decimal(p["size"])
    return Decimal(0)


class Clock:
    """The keeper's injectable clock: wall time plus a shift the test moves (for `until`)."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift


@pytest.fixture
async def binance() -> AsyncIterator[Emulator]:
    os.environ["BN_KEY"], os.environ["BN_SECRET"] = "demo-key", "demo-secret"
    async with Emulator(binance_settings(), exchange="binance") as emu:
        yield emu


async def make_keeper(emu: Emulator, tmp_path: Path, hedges: list[dict[str, Any]], clock: Clock) -> Any:
    cfg = parse_config({
        "keeper": {"name": "bn", "interval": 0.05},
        "venues": {"coinm": {"exchange": "binancecoinm", "url": emu.url, "api_key_env": "BN_KEY",
                             "secret_env": "BN_SECRET", "timeout": 2}},
        "hedge": hedges,
        "audit": {"url": f"sqlite:///{tmp_path / 'bn.db'}"},
        "limits": {"max_order_usd": 10_000_000, "max_position_usd": 100_000_000,
                   "max_daily_turnover_usd": 1_000_000_000, "max_orders_per_hour": 100_000,
                   # the test moves the keeper's clock 2 h ahead of the exchange's stamps (for `until`)
                   "max_data_age": 86_400},
    }, tmp_path)
    await upgrade(cfg.audit_url)
    store = await AuditStore.open(cfg.audit_url, cfg.keeper.name, secrets=secrets_of(cfg))
    venues = make_venues(cfg)
    keeper = Keeper(cfg, store, venues, clock=clock)
    await keeper.start()
    return keeper, store, venues


async def settle(keeper: Keeper, store: AuditStore, cycles: int = 80) -> None:
    import asyncio

    for _ in range(cycles):
        res = await keeper.cycle()
        if not await store.unsettled_orders() and all(d.action == "hold" for d in res.decisions):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("did not settle")


async def test_worked_example_on_binance_coinm(binance: Emulator, tmp_path: Path) -> None:
    clock = Clock()
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    keeper, store, venues = await make_keeper(
        binance, tmp_path, [{"asset": "BTC", "venue": "coinm", "instrument": "BTC/USD:BTC", "until": until}], clock)
    try:
        res = await keeper.cycle()
        assert res.sent == 1
        first = binance.engine.orders_list()[0]
        assert first["side"] == "sell" and Decimal(first["qty"]) == 6500  # 10 BTC × 65,000 / 100 USD
        await settle(keeper, store)
        assert abs(coinm_position(binance) + 6500) <= 65  # within the 1 % band (fees are paid in BTC)
        n = len(binance.engine.orders_list())
        for factor in ("0.7", "1.3"):  # ±30 %: an inverse short hedges coin collateral at any price
            binance.engine.set_price(Decimal(65000) * Decimal(factor), asset="BTC")
            for _ in range(3):
                res = await keeper.cycle()
                assert res.sent == 0, [str(r) for d in res.decisions for r in d.reasons]
        assert len(binance.engine.orders_list()) == n
        binance.engine.set_price(Decimal(65000), asset="BTC")
        res = await keeper.cycle()  # back from +30 %: the price-jump guard holds this one cycle
        assert res.sent == 0
        binance.engine.credit("demo-key", "BTC", Decimal(2))  # a deposit into the COIN-M wallet
        res = await keeper.cycle()
        assert res.sent == 1
        await settle(keeper, store)
        assert abs(coinm_position(binance) + 7800) <= 78
        n = len(binance.engine.orders_list())
        clock.shift = timedelta(hours=2)  # `until` has passed on the keeper's clock
        await settle(keeper, store)
        assert coinm_position(binance) == 0
        unwind = binance.engine.orders_list()[n:]
        assert unwind and all(o["reduce_only"] and o["side"] == "buy" for o in unwind), unwind
    finally:
        for v in venues.values():
            await v.close()
        await store.close()
