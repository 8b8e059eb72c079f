"""Property tests (hypothesis) of docs/architecture.md ("The math", "The guard"), for inverse and linear contracts."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from hedged.decide import decide
from hedged.exposure import to_coins
from hedged.guard import guard
from hedged.model import RecentOrder, TradingState
from hedged.planner import plan
from hedged.snapshot import parse_snapshot

from .factory import T0, config, inverse_market, linear_market, position, snapshot, ticker, venue

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

prices = st.decimals(min_value=Decimal(100), max_value=Decimal(200000), places=1)
factors = st.decimals(min_value=Decimal("0.2"), max_value=Decimal(5), places=3)
coins = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=4)
inverse_sizes = st.sampled_from([Decimal(1), Decimal(10), Decimal(100)])
linear_sizes = st.sampled_from([Decimal("0.001"), Decimal("0.01"), Decimal("0.1"), Decimal(1)])


def inverse_state(q: Decimal, p0: Decimal, p: Decimal, size: Decimal, contracts: Decimal):  # type: ignore[no-untyped-def]
    upnl = contracts * size * (1 / p0 - 1 / p)  # signed contracts: a short (negative) gains as p falls
    return snapshot({"bybit": venue([inverse_market("BTC", size=float(size))], [ticker("BTC/USD:BTC", p)],
                                    {"BTC": q}, [position("BTC/USD:BTC", contracts, p0, p, upnl)]
                                    if contracts else [])})


CFG_INV = config({"asset": "BTC", "venue": "bybit", "instrument": "BTC/USD:BTC"})
CFG_LIN = config({"asset": "BTC", "venue": "bybit", "instrument": "BTC/USDT:USDT"})


@SETTINGS
@given(q=coins, p0=prices, f=factors, size=inverse_sizes)
def test_inverse_hedge_at_target_never_trades_on_price_alone(q: Decimal, p0: Decimal, f: Decimal,
                                                             size: Decimal) -> None:
    n = (q * p0 / size).to_integral_value()  # the hedge as placed: whole contracts at p0
    assume(n * size >= 250 * size)  # a real hedge: at least a few hundred lots of notional
    p = (p0 * f).quantize(Decimal("0.5"))
    assume(p > 0)
    snap = parse_snapshot(inverse_state(q, p0, p, size, -n))
    p_, result = decide(CFG_INV, snap, state=TradingState.RUNNING)
    ip = p_.instruments[0]
    assert abs(ip.drift) <= ip.band, (ip.drift, ip.band)
    assert result.orders == ()
    # holdings + hedge keep their USD value: E·p = N·size + r·p where r = Q − N·size/p0 is the coin
    # residual the whole-contract rounding left unhedged (|r| ≤ half a contract at p0)
    value = p_.hedges[0].exposure * p
    assert abs(value - q * p0) <= size * abs(p / p0 - 1) / 2 + Decimal("1e-12")


@SETTINGS
@given(q=coins, p0=prices, f=factors, size=linear_sizes)
def test_linear_hedge_at_target_never_trades_on_price_alone(q: Decimal, p0: Decimal, f: Decimal,
                                                            size: Decimal) -> None:
    n = (q / size).to_integral_value()
    assume(n >= 1)
    p = (p0 * f).quantize(Decimal("0.1"))
    upnl_usdt = -n * size * (p - p0)
    raw = snapshot({"bybit": venue([linear_market("BTC", size=float(size))], [ticker("BTC/USDT:USDT", p, "0.1")],
                                   {"BTC": q, "USDT": 1000}, [position("BTC/USDT:USDT", -n, p0, p, upnl_usdt)])})
    _, result = decide(CFG_LIN, parse_snapshot(raw), state=TradingState.RUNNING)
    assert result.orders == ()
    # USD value of coins + the short's PnL stays at its p0 value, within the half lot rounding left unhedged
    value = q * p + upnl_usdt
    assert abs(value - q * p0) <= abs(q - n * size) * abs(p - p0) + Decimal("1e-9")


@SETTINGS
@given(q=coins, held=st.decimals(min_value=Decimal(-2), max_value=Decimal("0.5"), places=3), p=prices,
       size=inverse_sizes, linear=st.booleans())
def test_rounding_never_carries_the_hedge_more_than_one_lot_past_target(q: Decimal, held: Decimal, p: Decimal,
                                                                        size: Decimal, linear: bool) -> None:
    p = p.quantize(Decimal("0.5"))
    if linear:
        lsize = size / 1000
        contracts = (held * q / lsize).to_integral_value()
        raw = snapshot({"bybit": venue([linear_market("BTC", size=float(lsize))], [ticker("BTC/USDT:USDT", p)],
                                       {"BTC": q}, [position("BTC/USDT:USDT", contracts, p, p, 0)] if contracts
                                       else [])})
        cfg = CFG_LIN
    else:
        contracts = (held * q * p / size).to_integral_value()
        raw = inverse_state(q, p, p, size, contracts)
        cfg = CFG_INV
    ip = plan(cfg, parse_snapshot(raw)).instruments[0]
    lot = to_coins(ip.market, ip.market.lot, ip.mark)
    if ip.intent is None:
        assert abs(ip.drift) <= ip.band or abs(ip.drift) < ip.market.min_amount * lot
        return
    after = ip.hedge + ip.inflight + to_coins(ip.market, ip.intent.signed_amount, ip.mark)
    assert abs(after - ip.target) <= lot
    assert ip.intent.reduce_only == (contracts != 0 and (contracts > 0) != (ip.intent.side == "buy")
                                     and ip.intent.amount <= abs(contracts))


limit_values = st.fixed_dictionaries({
    "max_ratio": st.sampled_from([0.5, 1.0, 1.05]),
    "max_order_usd": st.integers(min_value=1000, max_value=2_000_000),
    "max_position_usd": st.integers(min_value=10_000, max_value=5_000_000),
    "max_orders_per_hour": st.integers(min_value=0, max_value=5),
    "max_daily_turnover_usd": st.integers(min_value=0, max_value=3_000_000),
    "max_price_deviation_bps": st.sampled_from([1, 5, 50]),
    "max_data_age": st.sampled_from([5, 30]),
})


@settings(SETTINGS, max_examples=400)
@given(limits=limit_values, q=st.decimals(min_value=Decimal(1), max_value=Decimal(200), places=2),
       held=st.sampled_from([Decimal(x) for x in ("-2", "-1.5", "-1.1", "-0.8", "-0.5", "0", "0.3", "1")]),
       p=prices, spread_ticks=st.sampled_from([1, 1, 1, 2, 5, 400]), age=st.sampled_from([0, 1, 3, 10, 40]),
       recent=st.lists(st.tuples(st.integers(min_value=0, max_value=2000), st.integers(min_value=0, max_value=10**6)),
                       max_size=4),
       state=st.sampled_from([TradingState.RUNNING] * 4 + [TradingState.REDUCING, TradingState.PAUSED,
                                                               TradingState.HALTED]),
       linear=st.booleans())
def test_guard_never_approves_an_order_that_breaks_a_limit(limits, q, held, p, spread_ticks, age, recent,  # type: ignore[no-untyped-def]
                                                           state, linear) -> None:
    cfg = config({"asset": "BTC", "venue": "bybit",
                  "instrument": "BTC/USDT:USDT" if linear else "BTC/USD:BTC", "ratio": limits["max_ratio"]},
                 limits=limits)
    p = p.quantize(Decimal("0.5"))
    ts = int((T0 - timedelta(seconds=age)).timestamp() * 1000)
    tick = Decimal("0.5")
    t = ticker(cfg.hedge[0].instrument, p + spread_ticks * tick, tick=spread_ticks * tick, ts=ts)
    t["markPrice"] = str(p)
    if linear:
        contracts = (held * q / Decimal("0.001")).to_integral_value()
        market = linear_market("BTC", size=0.001, tick=0.5)
    else:
        contracts = (held * q * p).to_integral_value()
        market = inverse_market("BTC")
    pos = [position(cfg.hedge[0].instrument, contracts, p, p, 0, ts=ts)] if contracts else []
    snap = parse_snapshot(snapshot({"bybit": venue([market], [t], {"BTC": q}, pos, ts=ts)}))
    history = [RecentOrder(T0 - timedelta(minutes=m), Decimal(usd)) for m, usd in recent]
    p_ = plan(cfg, snap)
    result = guard(p_, now=T0, limits=cfg.limits, state=state, recent=history)
    lim = cfg.limits
    count_hour = sum(1 for r in history if r.time > T0 - timedelta(hours=1))
    turnover = sum((r.notional_usd for r in history if r.time > T0 - timedelta(days=1)), Decimal(0))
    for d in result.decisions:
        o = d.order
        event(f"action {d.action} {' '.join(sorted({r.code for r in d.reasons}))}")
        if o is None:
            continue
        ip = d.plan
        assert state not in (TradingState.HALTED, TradingState.PAUSED)
        assert state is TradingState.RUNNING or o.reduce_only
        assert age <= lim.max_data_age
        assert count_hour < lim.max_orders_per_hour
        notional = to_coins(ip.market, o.amount, ip.mark) * ip.mark
        assert notional <= lim.max_order_usd + Decimal("1e-9")
        assert turnover + notional <= lim.max_daily_turnover_usd + Decimal("1e-9")
        assert abs(o.price - ip.mark) / ip.mark * 10000 <= lim.max_price_deviation_bps
        current = ip.hedge + ip.inflight
        after = current + to_coins(ip.market, o.signed_amount, ip.mark)
        assert not (o.side == "buy" and after > 0)
        if abs(after) > abs(current):
            cap = min(lim.max_position_usd, lim.max_ratio * ip.exposure_usd)
            assert abs(after) * ip.mark <= cap + Decimal("1e-9")
        assert o.amount >= ip.market.min_amount and o.amount % ip.market.lot == 0
