"""A venue that could not be read blocks exactly the instruments that depend on it (pure, replayable)."""

from __future__ import annotations

from decimal import Decimal

from hedged.decide import decide
from hedged.model import TradingState
from hedged.snapshot import parse_snapshot

from .factory import config, inverse_market, position, snapshot, ticker, venue


def _snap(unavailable: dict[str, str]) -> dict[str, object]:
    bybit = venue([inverse_market("BTC"), inverse_market("ETH")],
                  [ticker("BTC/USD:BTC", 65000), ticker("ETH/USD:ETH", 3000, "0.05")], {"BTC": 0, "ETH": 0},
                  [position("BTC/USD:BTC", -650_000, 65000, 65000, 0)])
    venues = {"bybit": bybit}
    if "spot" not in unavailable:
        venues["spot"] = venue([], [], {"BTC": 10, "ETH": 100})
    return {**snapshot(venues), "unavailable": unavailable}


CFG = config({"asset": "BTC", "venue": "bybit", "instrument": "BTC/USD:BTC", "sources": ["spot"]},
             {"asset": "ETH", "venue": "bybit", "instrument": "ETH/USD:ETH"}, venues=("bybit", "spot"))


def test_a_source_outage_blocks_its_hedge_only_and_does_not_unwind() -> None:
    snap = parse_snapshot(_snap({"spot": "ExchangeNotAvailable: binance 503"}))
    _, result = decide(CFG, snap, state=TradingState.RUNNING)
    btc, eth = result.decisions
    assert btc.action == "blocked" and btc.order is None and btc.plan.drift == 0
    assert [r.code for r in btc.reasons] == ["venue_unavailable"]
    assert btc.reasons[0].detail == "venue spot could not be read: ExchangeNotAvailable: binance 503"
    assert eth.action == "hold"  # ETH does not count the spot venue: planned as usual


def test_without_the_outage_the_same_hedge_holds() -> None:
    _, result = decide(CFG, parse_snapshot(_snap({})), state=TradingState.RUNNING)
    assert result.decisions[0].action == "hold" and result.decisions[0].plan.target == Decimal(-10)


def test_the_hedge_venue_itself_unreadable_is_listed_not_planned() -> None:
    raw = _snap({"bybit": "RequestTimeout: bybit"})
    raw["venues"] = {"spot": venue([], [], {"BTC": 10})}
    plan, result = decide(CFG, parse_snapshot(raw), state=TradingState.RUNNING)
    assert result.decisions == ()
    assert [(b.symbol, [r.code for r in b.reasons]) for b in plan.unreadable] == [
        ("BTC/USD:BTC", ["venue_unavailable"]), ("ETH/USD:ETH", ["venue_unavailable"])]
