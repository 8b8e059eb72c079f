"""The keeper's rules on its own orders, as pure functions: hold-back, re-pricing, escalation, episodes.

Each test builds a snapshot and a KeeperContext and calls the very `decide` the keeper and `hedged plan` call.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from hedged.decide import decide, settled
from hedged.model import Code, KeeperContext, OurOrder, TradingState
from hedged.order_state import OrderStatus
from hedged.planner import reduces_only
from hedged.snapshot import parse_snapshot

from .factory import MS, T0, config, inverse_market, position, snapshot, spot_market, ticker, venue

BIG: dict[str, Any] = {"limits": {"max_order_usd": 10**9, "max_position_usd": 10**10, "max_daily_turnover_usd": 10**10}}
KEY = ("bybit", "BTC/USD:BTC")


def cfg(**execution: Any) -> Any:
    return config({"asset": "BTC", "venue": "bybit", "instrument": "BTC/USD:BTC"}, **BIG,
                  execution=execution or {})


def snap(pos: int = 0, orders: list[dict[str, Any]] | None = None, price: int = 65000, btc: Any = 10) -> Any:
    positions = [position("BTC/USD:BTC", pos, 65000, price, 0)] if pos else []
    return parse_snapshot(snapshot({"bybit": venue([inverse_market("BTC")], [ticker("BTC/USD:BTC", price)],
                                                   {"BTC": btc}, positions, orders)}))


def ours(cid: str, status: OrderStatus, side: str, amount: int, *, age: float = 1.0, filled: int = 0,
         price: Any = "65000.5") -> OurOrder:
    return OurOrder("bybit", "BTC/USD:BTC", cid, status, side, Decimal(amount), Decimal(filled),  # type: ignore[arg-type]
                    T0 - timedelta(seconds=age), Decimal(price))


def book(cid: str, side: str, amount: int, price: Any = 65000) -> dict[str, Any]:
    return {"id": cid, "clientOrderId": cid, "symbol": "BTC/USD:BTC", "side": side, "amount": amount,
            "filled": 0, "price": price, "status": "open", "timestamp": MS}


def only(c: Any, s: Any, ctx: KeeperContext) -> Any:
    p, result = decide(c, s, state=TradingState.RUNNING, context=ctx, tag="t")
    assert len(result.decisions) == 1
    return p.instruments[0], result.decisions[0], result.cancels


def codes(d: Any) -> list[str]:
    return [r.code for r in d.reasons]


# --- order_changed -------------------------------------------------------------------------------------------


def test_fills_or_cancels_this_cycle_hold_the_instrument() -> None:
    _, d, _ = only(cfg(), snap(), KeeperContext(touched=frozenset({KEY})))
    assert d.action == "hold" and d.order is None and codes(d)[-1] is Code.ORDER_CHANGED


def test_a_change_elsewhere_does_not_hold_this_instrument() -> None:
    _, d, _ = only(cfg(), snap(), KeeperContext(touched=frozenset({("bybit", "ETH/USD:ETH")})))
    assert d.action == "trade" and d.order is not None


# --- the duplicate-send guard: an unconfirmed order is in flight, never sent twice -------------------------------


def test_an_unconfirmed_order_for_the_whole_drift_blocks_a_second_order() -> None:
    """10 BTC to hedge; a sell of 650,000 was sent, its reply lost: nothing more may be sent for it."""
    for status in (OrderStatus.SENT, OrderStatus.INTENT):
        ip, d, _ = only(cfg(), snap(), KeeperContext(orders=(ours("main_a-0", status, "sell", 650_000),)))
        assert ip.inflight == Decimal(-10) and ip.intent is None
        assert d.action == "hold" and d.order is None


def test_an_unconfirmed_capped_order_lets_only_the_rest_of_the_drift_go() -> None:
    _, d, _ = only(cfg(), snap(), KeeperContext(orders=(ours("main_a-0", OrderStatus.SENT, "sell", 200_000),)))
    assert d.action == "trade" and d.order is not None
    assert (d.order.side, d.order.amount) == ("sell", Decimal(450_000))  # 650,000 − the unconfirmed 200,000


def test_an_unconfirmed_order_on_the_book_is_counted_once() -> None:
    s = snap(orders=[book("main_a-0", "sell", 200_000)])
    ip, d, _ = only(cfg(), s, KeeperContext(orders=(ours("main_a-0", OrderStatus.SENT, "sell", 200_000),)))
    assert ip.inflight == Decimal(-200_000) / 65000
    assert d.order is not None and d.order.amount == 450_000


def test_an_unconfirmed_order_blocks_an_order_the_other_way() -> None:
    """It may have filled already (the position shows it) while we still count it: an opposite order could
    only come from counting it twice, so wait until it is resolved."""
    # hedged: −650,000 held; the unconfirmed sell of 100,000 actually filled and shows in the position too
    s = snap(pos=-750_000)
    _, d, _ = only(cfg(), s, KeeperContext(orders=(ours("main_a-0", OrderStatus.SENT, "sell", 100_000),)))
    assert d.action == "blocked" and d.order is None and codes(d)[-1] is Code.UNRESOLVED_ORDER


def test_a_lost_order_is_not_in_flight() -> None:
    ip, d, _ = only(cfg(), snap(), KeeperContext(orders=(ours("main_a-0", OrderStatus.LOST, "sell", 650_000),)))
    assert ip.inflight == 0 and d.order is not None and d.order.amount == 650_000


# --- escalation -----------------------------------------------------------------------------------------------


def test_after_max_reprices_the_order_escalates_to_a_marketable_limit_within_slippage() -> None:
    c = cfg(max_reprices=2, escalate=True, max_slippage_bps=20)
    _, first, _ = only(c, snap(), KeeperContext(reprices={KEY: 1}))
    assert first.order is not None and first.order.post_only and Code.ESCALATE not in codes(first)
    _, d, _ = only(c, snap(), KeeperContext(reprices={KEY: 2}))
    assert d.action == "trade" and d.order is not None and codes(d)[-1] is Code.ESCALATE
    # a sell 20 bps through the mark (65,000 → 64,870), on the tick grid, towards the mark; not post-only
    assert d.order.price == Decimal("64870.0") and not d.order.post_only
    assert (65000 - d.order.price) / 65000 * 10000 <= 20
    assert d.order.price < Decimal("64999.5")  # below the best bid: marketable


def test_without_escalate_the_order_stays_passive() -> None:
    _, d, _ = only(cfg(max_reprices=2, escalate=False), snap(), KeeperContext(reprices={KEY: 5}))
    assert d.order is not None and d.order.post_only and Code.ESCALATE not in codes(d)


# --- re-pricing and band hysteresis ------------------------------------------------------------------------------


def test_a_timed_out_order_is_repriced_while_the_position_is_outside_the_band() -> None:
    c = cfg(order_timeout=30, max_reprices=2)
    s = snap(orders=[book("main_a-0", "sell", 650_000, "65010")])
    order = ours("main_a-0", OrderStatus.OPEN, "sell", 650_000, age=31, price="65010")  # the ask fell to 65,000
    _, d, cancels = only(c, s, KeeperContext(orders=(order,)))
    assert d.action == "hold"  # the resting order covers the drift
    assert [(x.client_id, x.reason.code) for x in cancels] == [("main_a-0", Code.REPRICE)]
    # still at the touch: it keeps its place in the queue
    at_touch = ours("main_a-0", OrderStatus.OPEN, "sell", 650_000, age=31, price="65000")
    _, _, kept = only(c, s, KeeperContext(orders=(at_touch,)))
    assert kept == ()
    # young orders rest; a spent budget without escalation leaves the order resting
    _, _, young = only(c, s, KeeperContext(orders=(ours("main_a-0", OrderStatus.OPEN, "sell", 650_000, age=29),)))
    _, _, spent = only(c, s, KeeperContext(orders=(order,), reprices={KEY: 2}))
    assert young == () and spent == ()
    # with escalation on, the budget never runs out: the re-post is the marketable one
    _, _, escalating = only(cfg(order_timeout=30, max_reprices=2, escalate=True), s,
                            KeeperContext(orders=(order,), reprices={KEY: 2}))
    assert [x.reason.code for x in escalating] == [Code.REPRICE]


def test_an_order_the_price_moved_inside_the_band_stays_on_the_book() -> None:
    """Band hysteresis: 10.15 BTC held, 10 hedged, a sell for the 0.15 rests. The price moves and the position
    alone is back inside the band: the order still reduces |drift| and is left alone, so the price moving back
    finds it there instead of placing another."""
    c = cfg(order_timeout=30)
    order = ours("main_a-0", OrderStatus.OPEN, "sell", 9_750, age=600, price="65010")
    s = snap(pos=-650_000, btc="10.15", orders=[book("main_a-0", "sell", 9_750, "65010")])
    ip, _, cancels = only(c, s, KeeperContext(orders=(order,)))
    assert abs(ip.hedge - ip.target) > ip.band and [x.reason.code for x in cancels] == [Code.REPRICE]
    s = snap(pos=-650_000, btc="10.05", orders=[book("main_a-0", "sell", 9_750, "65010")])
    ip, d, cancels = only(c, s, KeeperContext(orders=(order,)))
    assert abs(ip.hedge - ip.target) <= ip.band and d.order is None
    assert cancels == ()


def test_a_resting_order_that_would_overshoot_the_band_is_cancelled() -> None:
    c = cfg(order_timeout=30)
    order = ours("main_a-0", OrderStatus.OPEN, "sell", 200_000, age=600)
    s = snap(pos=-650_000, orders=[book("main_a-0", "sell", 200_000, "65000.5")])
    _, _, cancels = only(c, s, KeeperContext(orders=(order,)))
    assert [x.reason.code for x in cancels] == [Code.OVERSHOOT]


# --- episodes: when the reprice count starts again ----------------------------------------------------------------


def test_the_reprice_count_survives_a_resting_order_and_resets_once_the_position_is_in_band() -> None:
    c = cfg()
    # the drift is covered by our resting order (|D| within the band) but the position is not: not settled
    s = snap(orders=[book("main_a-0", "sell", 650_000)])
    ctx = KeeperContext(orders=(ours("main_a-0", OrderStatus.OPEN, "sell", 650_000),), reprices={KEY: 1})
    ip, d, _ = only(c, s, ctx)
    assert d.action == "hold" and not settled(ip, ctx)
    # filled: the position alone is in the band
    ip, _, _ = only(c, snap(pos=-650_000), KeeperContext(reprices={KEY: 1}))
    assert settled(ip, KeeperContext())
    # cancelled for a re-post: nothing on the book, but an order is wanted: the episode goes on
    ip, d, _ = only(c, snap(), KeeperContext(reprices={KEY: 1}))
    assert d.order is not None and not settled(ip, KeeperContext())


# --- reduce-only with orders in flight ---------------------------------------------------------------------------


def test_reduce_only_counts_our_reducing_orders_in_flight() -> None:
    assert reduces_only(Decimal(-10), Decimal(6), ())
    assert not reduces_only(Decimal(-10), Decimal(6), (Decimal(6),))  # 6 + 6 > 10: would be refused
    assert reduces_only(Decimal(-10), Decimal(4), (Decimal(6), Decimal(-3)))  # the sell does not reduce
    assert not reduces_only(Decimal(-10), Decimal(-1), ())  # growing the short
    assert not reduces_only(Decimal(0), Decimal(1), ())


# --- staleness reads the ticker the price came from --------------------------------------------------------------


def test_staleness_is_checked_on_the_ticker_the_price_came_from() -> None:
    """The entry's own venue prices SOL (fresh); another venue listed first has a stale SOL ticker: unused."""
    c = config({"asset": "SOL", "venue": "bybit", "instrument": "BTC/USD:BTC", "price_symbol": "SOL/USDT"},
               venues=("other", "bybit"), **BIG)
    stale = MS - 3_600_000
    raw = snapshot({
        "other": venue([spot_market("SOL")], [ticker("SOL/USDT", 140, tick="0.01", ts=stale)], {}, ts=stale),
        "bybit": venue([inverse_market("BTC"), spot_market("SOL")],
                       [ticker("BTC/USD:BTC", 65000), ticker("SOL/USDT", 150, tick="0.01")], {"SOL": 100}),
    })
    p, result = decide(c, parse_snapshot(raw), state=TradingState.RUNNING)
    assert p.hedges[0].price == 150
    assert result.decisions[0].action == "trade", [str(r) for r in result.decisions[0].reasons]


# --- one basis definition ------------------------------------------------------------------------------------


def test_the_cycle_row_and_the_basis_monitor_read_one_basis() -> None:
    """Without an index the reference is a spot ticker of the base, for the row and the monitor alike."""
    from hedged.alerts.monitors import instrument_risk
    from hedged.exposure import basis_bps

    t = {**ticker("BTC/USD:BTC", 65130), "indexPrice": None}
    raw = snapshot({"bybit": venue([inverse_market("BTC"), spot_market("BTC", "USDT")],
                                   [t, ticker("BTC/USDT", 65000, tick="0.01")], {"BTC": 10})})
    s = parse_snapshot(raw)
    _, result = decide(cfg(), s, state=TradingState.RUNNING)
    p = result.decisions[0].plan
    row = basis_bps(s, p.venue, p.market, p.mark)
    assert row == Decimal(130) / 65000 * 10000  # 20 bps
    assert instrument_risk(s, result.decisions[0]).basis_bps == row
