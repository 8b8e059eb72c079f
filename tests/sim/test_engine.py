"""The engine alone (no I/O): contract math, matching, taker flow, funding, paths."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from hedged.sim.engine import Engine, EngineError
from hedged.sim.paths import CsvPath, GbmPath, StepPath
from hedged.sim.settings import default_settings
from tests.clocks import manual_clock

KEY = "demo-key"


@pytest.fixture
def engine() -> Engine:
    return Engine(default_settings(clock="manual"), manual_clock())


def test_book_is_one_tick_either_side(engine: Engine) -> None:
    inst = engine.instrument("BTC/USD:BTC")
    assert (inst.bid, inst.ask) == (D("64999.5"), D("65000.5"))


def test_inverse_short_upnl_and_close_into_wallet(engine: Engine) -> None:
    inst = engine.instrument("BTC/USD:BTC")
    o = engine.place_order(KEY, inst, "Sell", "Limit", D(650000), D(65000), time_in_force="PostOnly")
    engine.step(10)
    assert o.status == "Filled"
    pos = engine.accounts[KEY].positions[inst.key]
    assert pos.size == -650000 and pos.entry == 65000
    engine.set_price(D(71500), asset="BTC")
    expected = D(650000) * (D(1) / D(71500) - D(1) / D(65000))
    assert pos.upnl(inst.price) == pytest.approx(expected, abs=D("1e-20"))
    assert float(expected) == pytest.approx(-0.909090909, abs=1e-9)
    c = engine.place_order(KEY, inst, "Buy", "Limit", D(650000), D(71500), reduce_only=True)
    engine.step(10)
    assert c.status == "Filled" and pos.size == 0
    fees = D("0.0002") * (D(650000) / 65000 + D(650000) / 71500)
    assert engine.accounts[KEY].wallet["BTC"] == pytest.approx(D(10) + expected - fees, abs=D("1e-18"))


def test_inverse_entry_is_contract_weighted_harmonic_mean(engine: Engine) -> None:
    inst = engine.instrument("BTC/USD:BTC")
    engine.set_price(D(60000), asset="BTC")
    engine.place_order(KEY, inst, "Buy", "Limit", D(60000), D(60000))
    engine.step(5)
    engine.set_price(D(70000), asset="BTC")
    engine.place_order(KEY, inst, "Buy", "Limit", D(70000), D(70000))
    engine.step(5)
    pos = engine.accounts[KEY].positions[inst.key]
    assert pos.size == 130000
    assert pos.entry == pytest.approx(D(130000) / (D(60000) / 60000 + D(70000) / 70000))  # 65000


def test_linear_entry_is_arithmetic_and_pnl_in_quote(engine: Engine) -> None:
    inst = engine.instrument("BTC/USDT:USDT")
    engine.place_order(KEY, inst, "Buy", "Limit", D(1), D(65000))
    engine.step(5)
    engine.set_price(D(66000), asset="BTC")
    pos = engine.accounts[KEY].positions[inst.key]
    assert pos.upnl(inst.price) == D(1000)


def test_funding_sign_inverse_and_linear(engine: Engine) -> None:
    inv = engine.instrument("BTC/USD:BTC")
    lin = engine.instrument("ETH/USDT:USDT")
    engine.place_order(KEY, inv, "Sell", "Limit", D(65000), D(65000))
    engine.place_order(KEY, lin, "Buy", "Limit", D(10), D(3000))
    engine.step(5)
    acct = engine.accounts[KEY]
    btc, usdt = acct.wallet["BTC"], acct.wallet["USDT"]
    engine.settle_funding(rate=D("0.001"))
    assert acct.wallet["BTC"] - btc == D("0.001")  # short receives 1 BTC · 0.1 %
    assert acct.wallet["USDT"] - usdt == D("-30")  # long pays 30,000 USDT · 0.1 %
    engine.settle_funding(inv.symbol, rate=D("-0.001"))
    assert acct.wallet["BTC"] - btc == 0


def test_funding_runs_on_the_clock(engine: Engine) -> None:
    inst = engine.instrument("BTC/USD:BTC")
    engine.place_order(KEY, inst, "Sell", "Limit", D(65000), D(65000))
    engine.step(5)
    before = engine.accounts[KEY].wallet["BTC"]
    engine.step(8 * 3600)
    assert engine.accounts[KEY].wallet["BTC"] - before == D("0.0001")
    assert [e.exec_type for e in engine.executions].count("Funding") == 1


def test_post_only_that_would_take_is_cancelled_and_never_fills(engine: Engine) -> None:
    inst = engine.instrument("BTC/USD:BTC")
    o = engine.place_order(KEY, inst, "Buy", "Limit", D(1000), D("65000.5"), time_in_force="PostOnly")
    engine.step(30)
    assert o.status == "Cancelled" and o.filled == 0
    assert o.reject_reason == "EC_PostOnlyWillTakeLiquidity"


def test_reduce_only_cannot_grow_a_position(engine: Engine) -> None:
    inst = engine.instrument("BTC/USD:BTC")
    with pytest.raises(EngineError) as err:
        engine.place_order(KEY, inst, "Sell", "Limit", D(100), D(65000), reduce_only=True)
    assert err.value.code == 110017
    engine.place_order(KEY, inst, "Sell", "Limit", D(100), D(65000))
    engine.step(2)
    with pytest.raises(EngineError):
        engine.place_order(KEY, inst, "Sell", "Limit", D(100), D(65000), reduce_only=True)
    o = engine.place_order(KEY, inst, "Buy", "Limit", D(500), D(65000), reduce_only=True)
    assert o.qty == 100  # capped at the position
    engine.step(2)
    assert engine.accounts[KEY].positions[inst.key].size == 0


def test_marketable_limit_takes_and_pays_taker_fee(engine: Engine) -> None:
    inst = engine.instrument("BTC/USDT:USDT")
    o = engine.place_order(KEY, inst, "Buy", "Limit", D("0.5"), D(65100))
    assert o.status == "Filled" and o.avg_price == inst.ask
    assert o.cum_fee == D("0.5") * inst.ask * D("0.00055")


def test_taker_flow_partial_fills_and_zero_disables() -> None:
    e = Engine(default_settings(clock="manual", taker_flow_usd_per_s=D(100000)), manual_clock())
    inst = e.instrument("BTC/USD:BTC")
    o = e.place_order(KEY, inst, "Sell", "Limit", D(650000), D("65000.5"))
    e.step(1)
    assert o.status == "PartiallyFilled" and o.filled == 100000
    e.taker_flow_usd_per_s = D(0)
    e.step(60)
    assert o.filled == 100000


def test_orders_behind_the_touch_wait_for_the_price(engine: Engine) -> None:
    inst = engine.instrument("BTC/USD:BTC")
    o = engine.place_order(KEY, inst, "Buy", "Limit", D(1000), D(64000))
    engine.step(60)
    assert o.filled == 0
    engine.set_price(D(63990), asset="BTC")
    assert o.status == "Filled" and o.avg_price == 64000


def test_insufficient_balance_rejected(engine: Engine) -> None:
    with pytest.raises(EngineError) as err:
        engine.place_order(KEY, engine.instrument("BTC/USD:BTC"), "Sell", "Limit", D(10_000_000), D(65000))
    assert err.value.code == 110007
    with pytest.raises(EngineError):
        engine.place_order(KEY, engine.instrument("BTC/USDT"), "Sell", "Limit", D(11), D(65000))


def test_spot_fees_buy_in_base_sell_in_quote(engine: Engine) -> None:
    inst = engine.instrument("ETH/USDT")
    acct = engine.accounts[KEY]
    engine.place_order(KEY, inst, "Buy", "Limit", D(1), D(3001))
    assert acct.wallet["ETH"] == D(101) - D("0.001")
    assert acct.wallet["USDT"] == D(1_000_000) - D("3000.01")


def test_basis_kept_when_index_moves(engine: Engine) -> None:
    engine.set_price(D(65650), symbol="BTC/USD:BTC")  # +1 % basis
    engine.set_price(D(70000), asset="BTC")
    assert engine.instrument("BTC/USD:BTC").price == D(70700)
    assert engine.instrument("BTC/USDT").price == D(70000)


def test_liquidation_price_approximation(engine: Engine) -> None:
    inst = engine.instrument("BTC/USDT:USDT")
    engine.place_order(KEY, inst, "Buy", "Limit", D(20), D(65000))
    engine.step(10)
    acct = engine.accounts[KEY]
    pos = acct.positions[inst.key]
    liq = engine.liquidation_price(acct, pos)
    w = acct.wallet["USDT"]
    assert liq is not None
    assert (w + pos.size * (liq - pos.entry)) == pytest.approx(D("0.005") * pos.size * liq, abs=D(3))


def test_paths() -> None:
    steps = StepPath([(0, D(1)), (10, D(2))])
    assert steps.price_at(0, D(5)) == D(1) and steps.price_at(5, D(1)) is None
    assert steps.price_at(11, D(1)) == D(2)
    a, b = GbmPath(0.8, seed=3), GbmPath(0.8, seed=3)
    pa, pb = D(100), D(100)
    for t in range(1, 50):
        pa = a.price_at(float(t), pa) or pa
        pb = b.price_at(float(t), pb) or pb
    assert pa == pb and pa != D(100)


def test_csv_path(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("seconds,price\n100,10\n160,12\n")
    path = CsvPath(f)
    assert path.price_at(0, D(1)) == D(10)
    assert path.price_at(61, D(10)) == D(12)


def test_gbm_path_drives_the_engine() -> None:
    s = default_settings(clock="manual", assets={
        "BTC": {"price": 65000, "path": {"kind": "gbm", "volatility": 2.0, "seed": 1}},
        "ETH": {"price": 3000}, "SOL": {"price": 150},
    })
    e = Engine(s, manual_clock())
    e.step(60)
    assert e.index["BTC"] != 65000
    assert e.index["ETH"] == 3000


def test_accelerated_and_manual_clock() -> None:
    import time

    from hedged.sim.clock import Clock

    fast = Clock(speed=1000.0, start_ms=0)
    time.sleep(0.05)
    assert fast.now_ms() >= 40_000  # 50 ms of wall time = 50 s of exchange time
    manual = Clock(manual=True, start_ms=0)
    time.sleep(0.01)
    assert manual.now_ms() == 0 and manual.step(2.5) == 2500
