"""The keeper's cycle through real ccxt against the local exchange, with a real SQLite audit store."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from hedged.audit.lock import AccountLocked
from hedged.service import run_keeper

from .conftest import Harness, keeper_config


def position(emu: Any, symbol: str) -> Decimal:
    for p in emu.engine.state()["accounts"]["demo-key"]["positions"]:
        if p["symbol"] == symbol:
            return Decimal(str(p["size"]))
    return Decimal(0)


def exchange_orders(emu: Any) -> list[dict[str, Any]]:
    return list(emu.engine.orders_list())


async def settle(h: Harness, cycles: int = 60) -> None:
    """Cycle until nothing is in flight and every instrument holds."""
    for _ in range(cycles):
        res = await h.keeper.cycle()
        if not await h.store.unsettled_orders() and all(d.action == "hold" for d in res.decisions):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("did not settle")


async def test_first_cycle_opens_the_hedge_then_price_moves_trade_nothing(harness_factory: Any) -> None:
    h = await harness_factory()
    res = await h.keeper.cycle()
    assert res.sent == 2  # the first cycle opens both hedges
    await settle(h)
    assert abs(position(h.emu, "BTC/USD:BTC") + 650_000) <= Decimal("0.01") * 650_000
    assert abs(position(h.emu, "ETH/USD:ETH") + 300_000) <= Decimal("0.01") * 300_000
    before = len(exchange_orders(h.emu))
    for factor in ("0.7", "1.5"):  # −30 %, then +50 % of the start
        h.emu.engine.set_price(Decimal(65000) * Decimal(factor), asset="BTC")
        h.emu.engine.set_price(Decimal(3000) * Decimal(factor), asset="ETH")
        for _ in range(3):
            res = await h.keeper.cycle()
            assert res.sent == 0, [str(r) for d in res.decisions for r in d.reasons]
            assert all(abs(d.plan.drift) <= d.plan.band for d in res.decisions)
    assert len(exchange_orders(h.emu)) == before


async def test_deposit_is_hedged_within_a_cycle_plus_fill_time(harness_factory: Any) -> None:
    h = await harness_factory()
    await settle(h)
    h.emu.engine.credit("demo-key", "BTC", Decimal(2))
    res = await h.keeper.cycle()
    # one order, for the deposit: a second one means the settle phase planned on a view that hid a fill
    assert res.sent == 1, ([(d.plan.symbol, d.action, str(d.plan.hedge), str(d.plan.drift)) for d in res.decisions],
                           {s: str(position(h.emu, s)) for s in ("BTC/USD:BTC", "ETH/USD:ETH")})
    await settle(h)
    # 12 BTC × 65,000, less the BTC paid in fees, within the 1 % band
    assert abs(position(h.emu, "BTC/USD:BTC") + 780_000) <= Decimal("0.01") * 780_000


async def test_until_passing_unwinds_with_reduce_only_orders(harness_factory: Any) -> None:
    # `until` is a day away on the keeper's clock, which the test then moves past it: however slow the
    # machine, the hedge opens before `until` and unwinds after it. Data age is measured on the same clock
    # against the exchange's wall-time stamps, so it is not what this test checks.
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    h = await harness_factory(hedge=[{"asset": "BTC", "venue": "sim", "instrument": "BTC/USD:BTC", "until": until}],
                              limits={"max_data_age": 3 * 86400})
    await settle(h)
    assert position(h.emu, "BTC/USD:BTC") < -640_000
    h.emu.engine.taker_flow_usd_per_s = Decimal(250_000)
    n = len(exchange_orders(h.emu))
    h.clock.advance(timedelta(days=1, hours=1))
    await settle(h)
    assert position(h.emu, "BTC/USD:BTC") == 0
    unwind = exchange_orders(h.emu)[n:]
    assert unwind and all(o["reduce_only"] and o["side"].lower() == "buy" for o in unwind), unwind


async def test_shadow_mode_sends_nothing_and_audits_intents(harness_factory: Any) -> None:
    h = await harness_factory(keeper={"mode": "shadow"})
    for _ in range(3):
        res = await h.keeper.cycle()
        assert res.sent == 0
    assert exchange_orders(h.emu) == []
    shadows = [e for e in await h.store.tail(100) if e.kind == "shadow"]
    assert len(shadows) == 6 and {e.symbol for e in shadows} == {"BTC/USD:BTC", "ETH/USD:ETH"}


async def test_halt_command_blocks_orders_and_resume_resumes(harness_factory: Any) -> None:
    from hedged.audit.store import TradingState as StoreState

    h = await harness_factory()
    await h.store.command(StoreState.HALTED, via="test")
    res = await h.keeper.cycle()
    assert res.sent == 0 and all(d.action == "blocked" for d in res.decisions)
    assert all(any(r.code == "halted" for r in d.reasons) for d in res.decisions)
    await h.store.command(StoreState.RUNNING, via="test")
    res = await h.keeper.cycle()
    assert res.sent == 2


async def test_kill_file_halts(harness_factory: Any, tmp_path: Any) -> None:
    kill = tmp_path / "STOP"
    h = await harness_factory(keeper={"kill_file": str(kill)})
    kill.write_text("")
    res = await h.keeper.cycle()
    assert res.sent == 0 and res.state.value == "HALTED"


async def test_second_keeper_on_the_same_account_is_refused(emulator: Any, tmp_path: Any) -> None:
    cfg = keeper_config(emulator.url, tmp_path / "one.db")
    stop = asyncio.Event()
    first = asyncio.create_task(run_keeper(cfg, stop=stop, install_signals=False))
    db = tmp_path / "one.db"
    for _ in range(600):  # wait (generously) until the first keeper has started: it holds the lock by then
        if db.exists() and not first.done():
            with sqlite3.connect(db) as c:
                try:
                    if c.execute("SELECT 1 FROM events WHERE kind = 'start'").fetchone():
                        break
                except sqlite3.Error:
                    pass
        await asyncio.sleep(0.1)
    assert not first.done()
    with pytest.raises(AccountLocked):
        await run_keeper(cfg, stop=asyncio.Event(), install_signals=False)
    stop.set()
    await asyncio.wait_for(first, 10)
