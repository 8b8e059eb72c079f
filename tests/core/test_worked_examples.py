"""The seed articles' worked examples, and the inverse invariance of docs/architecture.md
("The math"), pinned exactly."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from hedged.config import Config
from hedged.decide import decide
from hedged.model import InstrumentPlan, TradingState
from hedged.planner import plan
from hedged.snapshot import parse_snapshot

from .factory import T0, config, inverse_market, linear_market, position, snapshot, spot_market, ticker, venue

BIG: dict[str, Any] = {"limits": {"max_order_usd": 10**9, "max_position_usd": 10**10, "max_daily_turnover_usd": 10**10}}


def only_intent(cfg: Config, raw: dict[str, Any]) -> InstrumentPlan:
    p = plan(cfg, parse_snapshot(raw))
    assert len(p.instruments) == 1
    return p.instruments[0]


@pytest.mark.parametrize(("size", "expected"), [(1, 650_000), (100, 6_500)])
def test_ten_btc_on_inverse_contracts(size: int, expected: int) -> None:
    cfg = config({"asset": "BTC", "venue": "bybit", "instrument": "BTC/USD:BTC"}, **BIG)
    raw = snapshot({"bybit": venue([inverse_market("BTC", size=size)], [ticker("BTC/USD:BTC", 65000)], {"BTC": 10})})
    ip = only_intent(cfg, raw)
    assert ip.intent is not None
    assert (ip.intent.side, ip.intent.amount) == ("sell", Decimal(expected))
    assert ip.target == Decimal(-10)
    assert ip.intent.reduce_only is False
    _, result = decide(cfg, parse_snapshot(raw), state=TradingState.RUNNING)
    assert result.orders[0].amount == expected


def test_300k_of_btc_on_linear_thousandth_contracts() -> None:
    cfg = config({"asset": "BTC", "venue": "bybit", "instrument": "BTC/USDT:USDT"}, **BIG)
    raw = snapshot({"bybit": venue([linear_market("BTC", size=0.001)], [ticker("BTC/USDT:USDT", 60000)],
                                   {"BTC": 5, "USDT": 20000})})
    ip = only_intent(cfg, raw)
    assert ip.intent is not None
    assert (ip.intent.side, ip.intent.amount) == ("sell", Decimal(5000))


def test_500_ada_on_100_ada_contracts() -> None:
    cfg = config({"asset": "ADA", "venue": "bybit", "instrument": "ADA/USDT:USDT"}, **BIG)
    raw = snapshot({"bybit": venue([linear_market("ADA", size=100, tick=0.0001)],
                                   [ticker("ADA/USDT:USDT", "0.5", tick="0.0001")], {"ADA": 500})})
    ip = only_intent(cfg, raw)
    assert ip.intent is not None
    assert (ip.intent.side, ip.intent.amount) == ("sell", Decimal(5))


def test_ratio_half_gives_half() -> None:
    cfg = config({"asset": "BTC", "venue": "bybit", "instrument": "BTC/USD:BTC", "ratio": 0.5}, **BIG)
    raw = snapshot({"bybit": venue([inverse_market("BTC")], [ticker("BTC/USD:BTC", 65000)], {"BTC": 10})})
    ip = only_intent(cfg, raw)
    assert ip.intent is not None and ip.intent.amount == Decimal(325_000)


def test_sol_proxy_hedged_on_btc_inverse_with_beta() -> None:
    cfg = config({"asset": "SOL", "venue": "bybit", "instrument": "BTC/USD:BTC", "beta": 1.5,
                  "price_symbol": "SOL/USDT"}, **BIG)
    raw = snapshot({"bybit": venue([inverse_market("BTC"), spot_market("SOL")],
                                   [ticker("BTC/USD:BTC", 65000), ticker("SOL/USDT", 150, tick="0.01")],
                                   {"SOL": 100})})
    p = plan(cfg, parse_snapshot(raw))
    # T = -1.5 × 100 SOL × 150 / 65,000 BTC, i.e. 22,500 USD of 1-USD contracts
    assert p.hedges[0].target == Decimal("-1.5") * 100 * 150 / 65000
    intent = p.instruments[0].intent
    assert intent is not None and (intent.side, intent.amount) == ("sell", Decimal(22_500))


def test_entries_sharing_an_instrument_add_up() -> None:
    cfg = config(
        {"asset": "BTC", "venue": "bybit", "instrument": "BTC/USD:BTC"},
        {"asset": "SOL", "venue": "bybit", "instrument": "BTC/USD:BTC", "price_symbol": "SOL/USDT"},
        **BIG,
    )
    raw = snapshot({"bybit": venue([inverse_market("BTC"), spot_market("SOL")],
                                   [ticker("BTC/USD:BTC", 65000), ticker("SOL/USDT", 130, tick="0.01")],
                                   {"BTC": 1, "SOL": 500})})
    p = plan(cfg, parse_snapshot(raw))
    assert len(p.instruments) == 1
    intent = p.instruments[0].intent
    assert intent is not None and intent.amount == 65_000 + 65_000


@pytest.mark.parametrize("factor", ["0.7", "1.5", "0.2", "5"])
def test_inverse_hedge_is_invariant_to_price_and_keeps_usd_value(factor: str) -> None:
    """Hold Q, short N = Q·P0: at any P, E = Q·P0/P and H = −Q·P0/P, so D = 0 and nothing trades."""
    q, p0 = Decimal(10), Decimal(65000)
    p = p0 * Decimal(factor)
    n = q * p0
    upnl = n * (1 / p - 1 / p0)  # a short gains coins when the price falls
    cfg = config({"asset": "BTC", "venue": "bybit", "instrument": "BTC/USD:BTC"})
    raw = snapshot({"bybit": venue([inverse_market("BTC")], [ticker("BTC/USD:BTC", p)], {"BTC": q},
                                   [position("BTC/USD:BTC", -n, p0, p, upnl)])})
    plan_, result = decide(cfg, parse_snapshot(raw), state=TradingState.RUNNING)
    ip = plan_.instruments[0]
    assert abs(ip.drift) < Decimal("1e-20")
    assert result.decisions[0].action == "hold" and result.orders == ()
    assert abs(plan_.hedges[0].exposure * p - q * p0) < Decimal("1e-15")  # the holder's USD value stays put


def test_ignoring_collateral_and_upnl_would_see_false_drift() -> None:
    """The naive keeper (coins = wallet only, excluding uPnL) sees drift after a move; ours does not."""
    q, p0, p = Decimal(10), Decimal(65000), Decimal(52000)
    n = q * p0
    upnl = n * (1 / p - 1 / p0)
    raw = snapshot({"bybit": venue([inverse_market("BTC")], [ticker("BTC/USD:BTC", p)], {"BTC": q},
                                   [position("BTC/USD:BTC", -n, p0, p, upnl)])})
    ours = plan(config({"asset": "BTC", "venue": "bybit", "instrument": "BTC/USD:BTC"}), parse_snapshot(raw))
    assert ours.instruments[0].intent is None
    naive_drift = -n / p + q  # H − T with E = wallet only
    assert abs(naive_drift) > ours.instruments[0].band


def test_until_unwinds_with_reduce_only_orders() -> None:
    cfg = config({"asset": "BTC", "venue": "bybit", "instrument": "BTC/USD:BTC",
                  "until": (T0 - timedelta(minutes=1)).isoformat()}, **BIG)
    raw = snapshot({"bybit": venue([inverse_market("BTC")], [ticker("BTC/USD:BTC", 65000)], {"BTC": 10},
                                   [position("BTC/USD:BTC", -650000, 65000, 65000, 0)])})
    plan_, result = decide(cfg, parse_snapshot(raw), state=TradingState.RUNNING)
    assert plan_.hedges[0].ratio == 0 and plan_.instruments[0].target == 0
    order = result.orders[0]
    assert (order.side, order.amount, order.reduce_only) == ("buy", Decimal(650000), True)
    # sold at the ask, bought at the bid, on the tick grid
    assert order.price == Decimal("64999.5")


def test_own_open_orders_count_as_inflight_and_others_do_not() -> None:
    cfg = config({"asset": "BTC", "venue": "bybit", "instrument": "BTC/USD:BTC"}, **BIG)
    ours = {"id": "1", "clientOrderId": "main_abc-0", "symbol": "BTC/USD:BTC", "side": "sell", "amount": 650000,
            "filled": 50000, "price": 65000, "status": "open"}
    theirs = {**ours, "id": "2", "clientOrderId": "manual-1", "filled": 0}
    # keeper `main-b` on the same account: its ids start with "main-b_", never with "main_"
    sibling = {**ours, "id": "3", "clientOrderId": "main-b_abc-0", "filled": 0}
    raw = snapshot({"bybit": venue([inverse_market("BTC")], [ticker("BTC/USD:BTC", 65000)], {"BTC": 10},
                                   [position("BTC/USD:BTC", -50000, 65000, 65000, 0)], [ours, theirs, sibling])})
    ip = plan(cfg, parse_snapshot(raw)).instruments[0]
    assert ip.inflight == Decimal(-600000) / 65000
    assert ip.drift == 0 and ip.intent is None

