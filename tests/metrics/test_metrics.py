"""/metrics from a keeper trading against the local exchange, parsed with prometheus_client's parser."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hedged.audit.store import AuditStore
from hedged.model import TradingState

from .conftest import Running

VS, VSA = {"venue", "symbol"}, {"venue", "symbol", "asset"}
# family (as the parser names it) → (type, label names of its samples, "le" aside)
FAMILIES: dict[str, tuple[str, set[str]]] = {
    "hedged_exposure_coins": ("gauge", VSA),
    "hedged_exposure_usd": ("gauge", VSA),
    "hedged_hedge_coins": ("gauge", VS),
    "hedged_hedge_usd": ("gauge", VS),
    "hedged_target_coins": ("gauge", VS),
    "hedged_drift_coins": ("gauge", VS),
    "hedged_band_coins": ("gauge", VS),
    "hedged_inflight_coins": ("gauge", VS),
    "hedged_hedge_ratio": ("gauge", VS),
    "hedged_mark_price": ("gauge", VS),
    "hedged_funding_rate": ("gauge", VS),
    "hedged_funding_cost_usd_per_day": ("gauge", VS),
    "hedged_basis_ratio": ("gauge", VS),
    "hedged_liquidation_distance_ratio": ("gauge", VS),
    "hedged_open_orders": ("gauge", VS),
    "hedged_leverage_ratio": ("gauge", {"venue"}),
    "hedged_venue_requests": ("counter", {"venue"}),
    "hedged_venue_errors": ("counter", {"venue", "class"}),
    "hedged_venue_read_latency_seconds": ("histogram", {"venue"}),
    "hedged_orders_sent": ("counter", VS),
    "hedged_orders_filled": ("counter", VS),
    "hedged_orders_cancelled": ("counter", VS | {"reason"}),
    "hedged_orders_rejected": ("counter", VS | {"reason"}),
    "hedged_guard_denials": ("counter", VS | {"reason"}),
    "hedged_guard_cuts": ("counter", VS | {"reason"}),
    "hedged_cycles": ("counter", set()),
    "hedged_cycle_failures": ("counter", set()),
    "hedged_cycle_duration_seconds": ("histogram", set()),
    "hedged_trading_state": ("gauge", {"state"}),
    "hedged_last_cycle_timestamp_seconds": ("gauge", set()),
    "hedged_audit_write_duration_seconds": ("histogram", set()),
    "hedged_mqtt_connected": ("gauge", set()),
    "hedged_stream_up": ("gauge", {"venue"}),
    "hedged_stream_resyncs": ("counter", {"venue"}),
    "hedged_stream_differences": ("counter", {"venue"}),
    "hedged_stream_reconnects": ("counter", {"venue"}),
}
BTC = {"venue": "sim", "symbol": "BTC/USD:BTC"}


def series(fams: dict[str, Any]) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {(s.name, tuple(sorted(s.labels.items()))) for f in fams.values() for s in f.samples}


async def settled(r: Running) -> bool:
    """Both hedges open, nothing in flight, every instrument inside its band."""
    fams = await r.scrape()
    if not fams["hedged_hedge_coins"].samples:
        return False
    for s in fams["hedged_drift_coins"].samples:
        band = next(b.value for b in fams["hedged_band_coins"].samples if b.labels == s.labels)
        if abs(s.value) > band:
            return False
    hedges = [s.value for s in fams["hedged_hedge_coins"].samples]
    inflight = [s.value for s in fams["hedged_inflight_coins"].samples]
    return len(hedges) == 2 and all(h < 0 for h in hedges) and all(i == 0 for i in inflight)


async def command(r: Running, state: TradingState) -> None:
    """What `hedged pause` / `hedged resume` do: a command row in the keeper's audit store."""
    store = await AuditStore.open(r.config.audit_url, r.config.keeper.name)
    try:
        await store.command(state, via="test", reason=f"test {state.value}")
    finally:
        await store.close()


async def test_families_types_labels_deposit_and_bounded_cardinality(running: Any) -> None:
    r: Running = await running(keeper={"interval": 0.2})
    await r.until("hedges settled", lambda: settled(r))

    fams = await r.scrape()
    for name, (kind, labels) in FAMILIES.items():
        assert name in fams, f"{name} missing"
        assert fams[name].type == kind, (name, fams[name].type)
        for s in fams[name].samples:
            assert set(s.labels) - {"le"} == labels, (name, s.labels)
    assert not [n for n in fams if n.startswith("hedged_") and n not in FAMILIES], "undocumented family"
    for name in ("hedged_hedge_coins", "hedged_exposure_usd", "hedged_orders_sent", "hedged_venue_requests",
                 "hedged_venue_read_latency_seconds", "hedged_cycle_duration_seconds",
                 "hedged_audit_write_duration_seconds", "hedged_trading_state"):
        assert fams[name].samples, f"{name} has no samples"
    # the values are the keeper's: 10 BTC held at 65,000 and hedged
    # (less the fees paid in BTC and the short's uPnL)
    assert 9.9 < (await r.value("hedged_exposure_coins", **BTC, asset="BTC") or 0) <= 10
    assert 643_500 < (await r.value("hedged_exposure_usd", **BTC, asset="BTC") or 0) <= 650_000
    hedge = await r.value("hedged_hedge_coins", **BTC)
    assert hedge is not None and -10.2 < hedge < -9.8
    assert 0.98 < (await r.value("hedged_hedge_ratio", **BTC) or 0) < 1.02
    assert await r.value("hedged_trading_state", state="RUNNING") == 1
    assert await r.value("hedged_trading_state", state="HALTED") == 0
    assert await r.value("hedged_mqtt_connected") == 0
    # the venue streams (the default on Bybit): alive, resynced over REST at least at the start, nothing lost
    await r.until("streams up", lambda: _is(r, "hedged_stream_up", 1, venue="sim"))
    assert (await r.value("hedged_stream_resyncs", "_total", venue="sim") or 0) >= 1
    assert await r.value("hedged_stream_differences", "_total", venue="sim") == 0

    # quiet cycles add no series
    before, cycles = series(await r.scrape()), await r.value("hedged_cycles", "_total") or 0
    await r.until("ten more cycles", lambda: _more(r, "hedged_cycles", cycles + 10))
    assert series(await r.scrape()) == before

    # a deposit while paused: the drift gauge shows it (the guard blocks, reason `paused`) ...
    sent = await r.value("hedged_orders_sent", "_total", **BTC) or 0
    await command(r, TradingState.PAUSED)
    await r.until("state PAUSED", lambda: _is(r, "hedged_trading_state", 1, state="PAUSED"))
    r.emu.engine.credit("demo-key", "BTC", Decimal(2))

    async def drift_moved() -> bool:
        drift = await r.value("hedged_drift_coins", **BTC)
        return drift is not None and 1.9 < drift < 2.1
    await r.until("drift shows the deposit", drift_moved)
    assert -12 <= (await r.value("hedged_target_coins", **BTC) or 0) < -11.9
    assert (await r.value("hedged_guard_denials", "_total", **BTC, reason="paused") or 0) >= 1
    assert await r.value("hedged_orders_sent", "_total", **BTC) == sent

    # ... and once resumed the order goes out and the hedge follows
    await command(r, TradingState.RUNNING)
    await r.until("order sent", lambda: _more(r, "hedged_orders_sent", sent + 1, **BTC))
    await r.until("back in band", lambda: settled(r))
    hedge = await r.value("hedged_hedge_coins", **BTC)
    assert hedge is not None and -12.3 < hedge < -11.7
    assert (await r.value("hedged_orders_filled", "_total", **BTC) or 0) >= 2
    assert 11.9 < (await r.value("hedged_exposure_coins", **BTC, asset="BTC") or 0) <= 12


async def _more(r: Running, family: str, at_least: float, **labels: str) -> bool:
    v = await r.value(family, "_total", **labels)
    return v is not None and v >= at_least


async def _is(r: Running, family: str, want: float, **labels: str) -> bool:
    return await r.value(family, **labels) == want
