"""The risk monitors on crafted snapshots: funding signs and APR, basis, liquidation distance, leverage,
drift persistence, staleness, state changes, exchange errors, and silence on a calm book."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hedged.alerts import monitors as mon
from hedged.alerts.monitors import (
    Alert,
    MonitorState,
    evaluate,
    event_alert,
    funding_apr_pct,
    instrument_risks,
    venue_risks,
)
from hedged.config import ConfigError, MonitorsConfig, parse_config
from hedged.model import TradingState
from hedged.sim import Emulator, default_settings, make_client
from hedged.snapshot import load_snapshot, parse_market, parse_snapshot, parse_ticker
from tests.clocks import manual_clock
from tests.core.factory import MS, T0, ticker

from .crafted import INV, KEEPER, LIN, MONITORS, decided, observe, raw

D = Decimal


def risk(kind: str = "inverse", **kw: Any) -> mon.InstrumentRisk:
    snap, decisions = decided(raw(kind, **kw), kind)
    (r,) = instrument_risks(snap, decisions)
    return r


def run(observations: list[Any], config: MonitorsConfig = MONITORS,
        memory: MonitorState | None = None) -> tuple[MonitorState, list[tuple[Alert, ...]]]:
    """Feed observations in order; the alerts of each cycle."""
    state = memory or MonitorState()
    out: list[tuple[Alert, ...]] = []
    for obs in observations:
        state, alerts = evaluate(config, obs, state)
        out.append(alerts)
    return state, out


def codes(alerts: tuple[Alert, ...]) -> list[tuple[str, str, str]]:
    return [(a.code, a.level, a.data.get("status", "")) for a in alerts]


# --- funding ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["inverse", "linear"])
@pytest.mark.parametrize(("hedge", "rate", "per_day"), [
    (-2, "0.0001", D("-30")),   # short, positive rate: receives 0.0001 × 2 BTC × 50,000 × 3 = 30 USD/day
    (-2, "-0.0001", D("30")),   # short, negative rate: pays
    (2, "0.0001", D("30")),     # long, positive rate: pays
    (2, "-0.0001", D("-30")),   # long, negative rate: receives
])
def test_funding_cost_sign_and_size_for_shorts_and_longs_inverse_and_linear(
        kind: str, hedge: int, rate: str, per_day: Decimal) -> None:
    r = risk(kind, held=2, hedge=hedge, funding=rate)
    assert r.hedge == hedge  # base coin for both kinds (inverse: 100,000 USD contracts / 50,000)
    assert r.funding_rate == D(rate)
    assert r.funding_interval_hours == 8  # unknown → 8 h
    assert r.funding_cost_usd_per_day == per_day
    assert r.funding_apr_pct == D(rate) * 3 * 365 * 100


@pytest.mark.parametrize(("minutes", "apr"), [(None, "10.95"), (480, "10.95"), (240, "21.9"), (60, "87.6")])
def test_apr_follows_the_markets_funding_interval(minutes: int | None, apr: str) -> None:
    r = risk("linear", funding="0.0001", interval_min=minutes)
    assert r.funding_apr_pct == D(apr)
    assert r.funding_interval_hours == (D(minutes) / 60 if minutes else 8)
    # 10 BTC short at 50,000 receives 0.0001 × 500,000 × periods a day
    assert r.funding_cost_usd_per_day == -D(50) * 24 / r.funding_interval_hours


def test_apr_of_one_basis_point_every_8h() -> None:
    assert funding_apr_pct(D("0.0001")) == D("10.95")
    assert funding_apr_pct(D("0.0001"), D(1)) == D("87.60")


def test_same_hedge_in_coin_costs_the_same_on_inverse_and_linear() -> None:
    inverse = risk("inverse", price=64000, hedge="-1.5", held="1.5", funding="0.0003")
    linear = risk("linear", price=64000, hedge="-1.5", held="1.5", funding="0.0003")
    assert inverse.hedge == linear.hedge == D("-1.5")
    assert inverse.funding_cost_usd_per_day == linear.funding_cost_usd_per_day == D("-86.4")


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(kind=st.sampled_from(["inverse", "linear"]),
       hedge=st.integers(min_value=-500, max_value=500).map(lambda n: D(n) / 10),
       rate=st.integers(min_value=-3000, max_value=3000).map(lambda n: D(n) / 10**6),
       price=st.integers(min_value=100, max_value=200000),
       minutes=st.sampled_from([None, 60, 240, 480]))
def test_funding_cost_sign_is_sign_of_rate_times_sign_of_hedge(kind: str, hedge: Decimal, rate: Decimal, price: int,
                                                               minutes: int | None) -> None:
    r = risk(kind, price=price, held=abs(hedge) + 1, hedge=hedge, funding=rate, interval_min=minutes)
    assert r.funding_cost_usd_per_day is not None and r.funding_apr_pct is not None
    sign: Callable[[Decimal], int] = lambda d: (d > 0) - (d < 0)  # noqa: E731
    assert sign(r.funding_cost_usd_per_day) == sign(rate) * sign(hedge)
    assert sign(r.funding_apr_pct) == sign(rate)
    # cost per day = APR/365/100 × signed notional
    assert abs(r.funding_cost_usd_per_day - r.funding_apr_pct / 36500 * hedge * price) < D("1e-12")


def test_next_funding_rate_and_time_are_read() -> None:
    r = risk("linear", funding="0.0001", next_funding="-0.0002", next_time=str(MS + 3600_000))
    assert r.next_funding_rate == D("-0.0002")
    assert r.next_funding_cost_usd_per_day == D(300)  # the short will pay 0.0002 × 500,000 × 3
    assert r.next_funding_apr_pct == D("-21.9")
    assert r.next_funding_time is not None and (r.next_funding_time - T0).total_seconds() == 3600


def test_funding_alert_only_when_the_hedge_pays() -> None:
    # the short pays 0.0005 × 3 × 365 × 100 = 54.75 % a year: above 30
    _, (alerts,) = run([observe(raw(funding="-0.0005"))])
    assert codes(alerts) == [("funding", "warning", "firing")]
    assert alerts[0].data["paid_apr_pct"] == "54.75"
    assert alerts[0].data["cost_usd_per_day"] == "750"  # 0.0005 × 10 BTC × 50,000 × 3
    assert "short pays" in alerts[0].message
    # the short receives 54.75 %: income, no alert
    _, (alerts,) = run([observe(raw(funding="0.0005"))])
    assert alerts == ()
    # a long pays a positive rate
    _, (alerts,) = run([observe(raw(hedge=10, funding="0.0005"))])
    assert codes(alerts) == [("funding", "warning", "firing")]
    assert "long pays" in alerts[0].message
    # below the threshold: 0.0002 → 21.9 %
    _, (alerts,) = run([observe(raw(funding="-0.0002"))])
    assert alerts == ()


def test_funding_alert_on_the_next_rate() -> None:
    _, (alerts,) = run([observe(raw("linear", usdt=10**6, funding="0.0001", next_funding="-0.0004"), "linear")])
    assert codes(alerts) == [("funding", "warning", "firing")]
    assert alerts[0].data["which"] == "next"
    assert alerts[0].data["paid_apr_pct"] == "43.8"


# --- basis ----------------------------------------------------------------------------------------------


def test_basis_against_index_then_spot() -> None:
    assert risk(index=49000).basis_bps == (D(50000) - 49000) / 49000 * 10000
    assert risk(index=50000).basis_bps == 0
    spot = ticker("BTC/USDT", 50250, tick="0.01")
    r = risk(index=None, extra_tickers=[spot])
    assert r.reference_price == D(50250)
    assert r.basis_bps == (D(50000) - 50250) / 50250 * 10000
    assert risk(index=None).basis_bps is None


def test_basis_alert_beyond_threshold_either_side() -> None:
    _, (alerts,) = run([observe(raw(index=49000))])  # +204 bps
    assert codes(alerts) == [("basis", "warning", "firing")]
    _, (alerts,) = run([observe(raw(index=51000))])  # -196 bps
    assert codes(alerts) == [("basis", "warning", "firing")]
    _, (alerts,) = run([observe(raw(index=49600))])  # +80.6 bps
    assert alerts == ()


# --- liquidation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("hedge", "liq", "distance"), [
    (-10, 60000, D(20)),  # short: liquidated above the mark
    (-10, 52500, D(5)),
    (10, 40000, D(20)),  # long: below
    (10, 47500, D(5)),
])
def test_liquidation_distance_for_long_and_short(hedge: int, liq: int, distance: Decimal) -> None:
    for kind in ("inverse", "linear"):
        r = risk(kind, hedge=hedge, liq=liq, usdt=10**6)
        assert r.liquidation_price == liq
        assert r.liquidation_distance_pct == distance


def test_no_liquidation_price_no_distance() -> None:
    assert risk(liq=None).liquidation_distance_pct is None
    assert risk(liq=0).liquidation_distance_pct is None  # Bybit: 0 / "" when it cannot be liquidated
    assert risk(hedge=0, liq=None).liquidation_distance_pct is None


@pytest.mark.parametrize(("liq", "level"), [
    (80000, None),        # 60 % away
    (65000, None),        # exactly 30 %: not below the warning threshold
    (64999, "warning"),   # just under 30 %
    (57500, "warning"),   # exactly 15 %: not below the critical threshold
    (57499, "critical"),  # just under 15 %
    (36000, "warning"),   # 28 % on the wrong side of a short still counts: the distance is |mark − liq|
])
def test_liquidation_warning_and_critical_thresholds(liq: int, level: str | None) -> None:
    _, (alerts,) = run([observe(raw(liq=liq))])
    assert codes(alerts) == ([("liquidation", level, "firing")] if level else [])


def test_liquidation_critical_below_critical_threshold() -> None:
    _, (alerts,) = run([observe(raw(liq=55000))])  # 10 %
    assert codes(alerts) == [("liquidation", "critical", "firing")]
    assert alerts[0].data["distance_pct"] == "10"
    assert alerts[0].data["venue"] == "bybit" and alerts[0].data["symbol"] == INV
    assert alerts[0].data["key"] == f"liquidation:bybit:{INV}"


# --- leverage -------------------------------------------------------------------------------------------


def lev(kind: str = "inverse", **kw: Any) -> mon.VenueRisk:
    snap, decisions = decided(raw(kind, **kw), kind)
    (v,) = venue_risks(snap, decisions)
    return v


def test_leverage_of_a_coin_margined_hedge_is_one() -> None:
    v = lev(held=10, hedge=-10)
    assert (v.leverage, v.notional_usd, v.equity_usd) == (D(1), D(500000), D(500000))


def test_leverage_counts_inverse_upnl_in_coin() -> None:
    v = lev(held=10, hedge=-10, upnl="0.5")  # 10.5 BTC of equity at 50,000 behind 500,000 USD of contracts
    assert v.equity_usd == 525000
    assert v.leverage == D(500000) / D(525000)


def test_leverage_of_a_linear_account() -> None:
    v = lev("linear", held=0, usdt=20000, hedge=-1, upnl=-5000)  # 50,000 USD short on 15,000 USDT
    assert (v.notional_usd, v.equity_usd) == (D(50000), D(15000))
    assert v.leverage == D(50000) / D(15000)


def test_leverage_of_linear_hedge_margined_by_the_coins_held() -> None:
    v = lev("linear", held=10, usdt=0, hedge=-10)  # unified account: the BTC held is the margin
    assert v.leverage == 1


def test_no_position_no_leverage() -> None:
    assert lev(hedge=0).leverage == 0


@pytest.mark.parametrize(("usdt", "level"), [(20000, None), (15000, "warning"), (10000, "warning"),
                                             (9000, "critical")])
def test_leverage_thresholds(usdt: int, level: str | None) -> None:
    # 50,000 USD short on a USDT account: 2.5×, 3.33×, exactly 5× (not above critical), 5.56×
    _, (alerts,) = run([observe(raw("linear", held=0, usdt=usdt, hedge=-1), "linear")])
    assert codes(alerts) == ([("leverage", level, "firing")] if level else [])


# --- drift ----------------------------------------------------------------------------------------------

BLOCKED: dict[str, Any] = {"limits": {"max_orders_per_hour": 0}}  # every order blocked with reason order_rate


def test_drift_alert_after_more_than_n_cycles_then_reset_when_back_in_band() -> None:
    config = MonitorsConfig(drift_cycles=2)
    out_of_band = raw(held=12, hedge=-10)  # target -12: drift +2 BTC, band 0.12
    in_band = raw(held=10, hedge=-10)
    obs = [observe(out_of_band, at=i, **BLOCKED) for i in range(3)]
    state, alerts = run(obs, config)
    assert [codes(a) for a in alerts] == [[], [], [("drift", "warning", "firing")]]
    a = alerts[2][0]
    assert a.data["cycles"] == 3
    assert a.data["action"] == "blocked"
    assert any(r.startswith("order_rate") for r in a.data["reasons"])
    assert a.data["drift"] == "2"
    assert state.drift_counts == {("bybit", INV): 3}
    # back in band: the counter resets and the alert resolves
    state, (resolved,) = run([observe(in_band, at=3, **BLOCKED)], config, state)
    assert codes(resolved) == [("drift", "info", "resolved")]
    assert state.drift_counts == {}
    # out again: counts from 1, so two more cycles are quiet
    state, alerts = run([observe(out_of_band, at=4 + i, **BLOCKED) for i in range(3)], config, state)
    assert [codes(a) for a in alerts] == [[], [], [("drift", "warning", "firing")]]


def test_drift_counter_resets_on_a_single_in_band_cycle() -> None:
    config = MonitorsConfig(drift_cycles=2)
    out, ok = raw(held=12, hedge=-10), raw(held=10, hedge=-10)
    seq = [out, out, ok, out, out]
    _, alerts = run([observe(s, at=i, **BLOCKED) for i, s in enumerate(seq)], config)
    assert all(a == () for a in alerts)


def test_one_cycle_out_of_band_is_counted_not_alerted() -> None:
    config = MonitorsConfig(drift_cycles=1)
    state, alerts = run([observe(raw(held=12, hedge=-10))], config)
    assert alerts == [()]
    assert state.drift_counts == {("bybit", INV): 1}


# --- stale data, exchange errors, trading state -----------------------------------------------------------


def test_stale_data_alerts_and_resolves() -> None:
    stale = raw(held=12, hedge=-10, ts=MS - 120_000)  # wants to trade, data two minutes old
    state, (alerts,) = run([observe(stale)])
    assert codes(alerts) == [("stale_data", "warning", "firing")]
    assert alerts[0].data["reasons"][0].startswith("stale_data:")
    state, (alerts,) = run([observe(raw(held=12, hedge=-10), at=1)], memory=state)
    assert codes(alerts) == [("stale_data", "info", "resolved")]


def test_exchange_error_while_cycles_fail_then_resolved() -> None:
    state, alerts = run([
        observe(None, error="fetch_balance: timeout", at=0),
        observe(None, error="fetch_balance: timeout", at=1),
        observe(None, error="fetch_positions: 502", at=2),
    ])
    assert [codes(a) for a in alerts] == [[("exchange_error", "warning", "firing")], [], []]
    assert alerts[0][0].data["error"] == "fetch_balance: timeout"
    assert state.failures == 3
    state, (resolved,) = run([observe(raw(), at=3)], memory=state)
    assert codes(resolved) == [("exchange_error", "info", "resolved")]
    assert state.failures == 0


def test_a_failed_cycle_neither_resolves_nor_counts() -> None:
    config = MonitorsConfig(drift_cycles=1)
    bad = raw(held=12, hedge=-10, liq=55000)
    state, _ = run([observe(bad, at=0, **BLOCKED), observe(bad, at=1, **BLOCKED)], config)
    assert set(state.dedupe.active) == {f"liquidation:bybit:{INV}", f"drift:bybit:{INV}"}
    state, (alerts,) = run([observe(None, error="timeout", at=2)], config, state)
    assert codes(alerts) == [("exchange_error", "warning", "firing")]  # no resolved for the others
    assert set(state.dedupe.active) == {f"liquidation:bybit:{INV}", f"drift:bybit:{INV}", "exchange_error"}
    assert state.drift_counts == {("bybit", INV): 2}


def test_trading_state_changes_are_one_shot_alerts() -> None:
    calm = raw()
    _, alerts = run([
        observe(calm, at=0, state=TradingState.RUNNING),  # first observation: only recorded
        observe(calm, at=1, state=TradingState.RUNNING),
        observe(calm, at=2, state=TradingState.REDUCING),
        observe(calm, at=3, state=TradingState.HALTED),
        observe(calm, at=4, state=TradingState.HALTED),
        observe(calm, at=5, state=TradingState.RUNNING),
    ])
    assert [codes(a) for a in alerts] == [[], [], [("state", "warning", "")], [("state", "critical", "")], [],
                                          [("state", "info", "")]]
    assert alerts[3][0].data == {"from": "REDUCING", "to": "HALTED"}
    assert alerts[3][0].message == "trading state REDUCING → HALTED"


def test_a_calm_book_says_nothing_cycle_after_cycle() -> None:
    calm = raw(funding="0.0003", next_funding="0.0002", liq=150000, index=50010,
               extra_tickers=[ticker("BTC/USDT", 50005, tick="0.01")])
    state, alerts = run([observe(calm, at=i) for i in range(100)], MonitorsConfig(cooldown=0))
    assert all(a == () for a in alerts)
    assert state.dedupe.active == {}
    assert state.drift_counts == {}


def test_a_calm_linear_book_says_nothing() -> None:
    calm = raw("linear", usdt=1000, funding="0.0001", liq=95000, index=49990)
    _, alerts = run([observe(calm, "linear", at=i) for i in range(10)])
    assert all(a == () for a in alerts)


# --- the alert itself -------------------------------------------------------------------------------------


def test_alert_json_shape() -> None:
    _, (alerts,) = run([observe(raw(liq=55000))])
    j = alerts[0].as_json()
    assert set(j) == {"id", "ts", "keeper", "level", "code", "message", "data"}
    assert re.fullmatch(r"[0-9a-f]{32}", j["id"])
    assert j["ts"] == "2026-11-21T12:00:00.000Z"
    assert j["keeper"] == KEEPER
    assert json.loads(json.dumps(j)) == j  # JSON-able as is
    assert j["data"]["status"] == "firing"


def test_event_alert_makes_data_json_able() -> None:
    a = event_alert(KEEPER, "fill", "info", "sold 100 BTC/USD:BTC at 50000",
                    {"amount": D("100.0"), "price": D("5E+4"), "state": TradingState.RUNNING, "at": T0,
                     "ids": ("a", "b")}, T0)
    assert a.data == {"amount": "100", "price": "50000", "state": "RUNNING", "at": "2026-11-21T12:00:00.000Z",
                      "ids": ["a", "b"]}
    b = event_alert(KEEPER, "start", "info", "started", {}, T0)
    assert a.id != b.id
    assert json.dumps(b.as_json())


def test_instrument_risk_as_json() -> None:
    j = risk(funding="0.0001", liq=60000).as_json()
    assert j["funding_cost_usd_per_day"] == "-150"
    assert j["liquidation_distance_pct"] == "20"
    assert j["hedge_ratio"] == "1"
    assert json.dumps(j)


# --- inputs: snapshot fields and config -------------------------------------------------------------------


def test_snapshot_reads_funding_interval_and_next_funding_time_from_bybit_info() -> None:
    snap = parse_snapshot(raw("linear", funding="0.0001", interval_min=240, next_time="1795348800000"))
    v = snap.venues["bybit"]
    assert v.markets[LIN].funding_interval_hours == 4
    next_time = v.tickers[LIN].next_funding_time
    assert next_time is not None
    assert int(next_time.timestamp()) == 1795348800


@pytest.mark.parametrize("bad", ["soon", "", "0", None, -5])
def test_unreadable_monitor_only_fields_are_unknown_not_errors(bad: Any) -> None:
    snap = parse_snapshot(raw(interval_min=bad, next_time=bad))
    assert snap.venues["bybit"].markets[INV].funding_interval_hours is None
    assert snap.venues["bybit"].tickers[INV].next_funding_time is None


def test_the_example_snapshot_still_parses_and_has_funding() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "snapshot.json"
    snap = load_snapshot(path.read_text())
    t = snap.venues["bybit"].tickers[INV]
    assert t.funding_rate == D("0.0001")
    assert t.next_funding_rate is None


def test_monitors_config_defaults_and_order_checks() -> None:
    m = MonitorsConfig()
    assert (m.leverage_warning, m.leverage_critical, m.worsen_factor) == (D(3), D(5), D("1.5"))
    base = {"venues": {"b": {"exchange": "bybit"}}, "hedge": [{"asset": "BTC", "venue": "b", "instrument": INV}]}
    with pytest.raises(ConfigError) as err:
        parse_config({**base, "monitors": {"liquidation_critical_pct": 40, "leverage_critical": 2}})
    assert any(p.startswith("monitors.liquidation_critical_pct:") for p in err.value.problems)
    assert any(p.startswith("monitors.leverage_critical:") for p in err.value.problems)
    with pytest.raises(ConfigError):
        parse_config({**base, "monitors": {"worsen_factor": 1}})


async def test_the_local_exchange_through_ccxt_serves_what_the_monitors_read() -> None:
    """Bybit v5 shapes via unmodified ccxt: fundingInterval in the market's info, nextFundingTime in the
    ticker's info (both raw strings/ints), funding rate and index price."""
    async with Emulator(default_settings(clock="manual"), clock=manual_clock()) as emu:
        client = make_client(emu.url, "demo-key", "demo-secret", timeout_ms=5000)
        try:
            await client.load_markets()
            market = parse_market(client.market(INV), INV)
            t = parse_ticker(await client.fetch_ticker(INV), INV, INV)
        finally:
            await client.close()
    assert market.funding_interval_hours == 8
    assert t.funding_rate is not None and t.index is not None and t.mark is not None
    assert t.next_funding_time is not None and t.next_funding_time.minute == 0
