"""The fast decision is the decision: on every step of random simulated runs, `decide()` (per-config structures
built once, the tag and the order history read only when an order is planned, no work for nothing in flight)
gives exactly what the planner and guard before the speed work gave (tests/simulate/reference_planner.py,
verbatim), followed by the hold-back rules one by one: plans, decisions, reasons (their text too), cancels."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hedged.config import Config, parse_config
from hedged.decide import _hold_back_one, decide, order_tag, reprices_due
from hedged.model import GuardResult, Plan
from hedged.replay import CycleInputs
from hedged.sim.settings import default_settings
from hedged.simulate.paths import PathSpec
from hedged.simulate.runner import SimOptions, simulate
from tests.simulate import reference_planner


def reference_decide(cfg: Config, i: CycleInputs) -> tuple[Plan, GuardResult]:
    p = reference_planner.plan(cfg, i.snapshot, order_tag=i.tag if i.tag is not None else order_tag(i.snapshot),
                               context=i.context)
    checked = reference_planner.guard(p, now=i.snapshot.time, limits=cfg.limits, state=i.state, recent=i.recent,
                    previous_marks=i.previous_marks)
    return p, GuardResult(tuple(_hold_back_one(d, i.context, cfg.execution) for d in checked.decisions),
                          reprices_due(p, i.snapshot, i.context, cfg.execution))


HEDGES: dict[str, list[dict[str, Any]]] = {
    "inverse": [{"asset": "BTC", "venue": "sim", "instrument": "BTC/USD:BTC"}],
    "linear": [{"asset": "BTC", "venue": "sim", "instrument": "BTC/USDT:USDT"}],
    "several": [{"asset": "BTC", "venue": "sim", "instrument": "BTC/USD:BTC", "sources": ["cold"]},
                {"asset": "ETH", "venue": "sim", "instrument": "ETH/USD:ETH", "off_exchange": Decimal(3)},
                {"asset": "SOL", "venue": "sim", "instrument": "ETH/USDT:USDT", "price_symbol": "SOL/USDT",
                 "beta": Decimal("1.2")},
                {"asset": "ETH", "venue": "sim", "instrument": "ETH/USD:ETH", "ratio": Decimal("0.5")}],
}


# resting orders for sure: re-priced, escalated, overshoot-cancelled, held back after fills
@example(hedges="inverse", kind="flat", seed=1, band=Decimal("0.002"), funding="0", hedged=False, timeout=30,
         escalate=True, takers=False)
@example(hedges="several", kind="flat", seed=2, band=Decimal("0.002"), funding="0.003", hedged=False, timeout=30,
         escalate=False, takers=False)
@example(hedges="linear", kind="gbm", seed=3, band=Decimal("0.0005"), funding="0.003", hedged=True, timeout=30,
         escalate=True, takers=False)
@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hedges=st.sampled_from(sorted(HEDGES)), kind=st.sampled_from(["gbm", "jumps", "crash", "flat"]),
       seed=st.integers(0, 10_000), band=st.sampled_from([Decimal("0.0005"), Decimal("0.002"), Decimal("0.01")]),
       funding=st.sampled_from(["0", "0.0001", "0.003"]), hedged=st.booleans(),
       timeout=st.sampled_from([30, 400]), escalate=st.booleans(), takers=st.booleans())
def test_decide_equals_the_reference_on_every_simulated_step(hedges: str, kind: str, seed: int, band: Decimal,
                                                             funding: str, hedged: bool, timeout: int,
                                                             escalate: bool, takers: bool) -> None:
    cfg = parse_config({
        "venues": {"sim": {"exchange": "bybit"}, "cold": {"exchange": "bybit"}},
        "execution": {"order_timeout": timeout, "max_reprices": 1, "escalate": escalate},
        "limits": {"max_order_usd": 200_000},
        "hedge": [{**h, "band": band, "min_band_usd": Decimal(5)} for h in HEDGES[hedges]],
    })
    steps = 60
    r = simulate(cfg, SimOptions(path=PathSpec(kind=kind, days=steps * 300 / 86400, step_s=300, seed=seed, vol=1.5),
                                 funding_rate=Decimal(funding), start_hedged=hedged, keep=frozenset(range(steps + 1)),
                                 rules=("config",),
                                 # without anonymous takers our orders rest: re-priced, escalated, held back
                                 exchange=None if takers else default_settings(taker_flow_usd_per_s=0)))
    kept = r.scenario("config").kept_cycles
    assert len({n for n, _ in kept}) == steps + 1
    for n, inputs in kept:
        assert decide(cfg, inputs.snapshot, state=inputs.state, recent=inputs.recent,
                      previous_marks=inputs.previous_marks, tag=inputs.tag,
                      context=inputs.context) == reference_decide(cfg, inputs), n
        if "cold" in inputs.snapshot.venues:  # and with a venue down (hedged.outage)
            venues = {k: v for k, v in inputs.snapshot.venues.items() if k != "cold"}
            down = replace(inputs, snapshot=replace(inputs.snapshot, venues=venues, unavailable={"cold": "timeout"}))
            assert decide(cfg, down.snapshot, state=down.state, context=down.context) == \
                reference_decide(cfg, replace(down, recent=(), previous_marks={}, tag=None)), n


def test_equity_is_the_engines_coin_summary() -> None:
    """The simulator values an account as the engine's coin summaries do (wallet + uPnL per coin, at index)."""
    from hedged.simulate.exchange import dec
    from hedged.simulate.runner import _venues, prepare

    cfg = parse_config({"venues": {"sim": {"exchange": "bybit"}, "cold": {"exchange": "bybit"}},
                        "hedge": HEDGES["several"]})
    opts = SimOptions(path=PathSpec(days=0.1, step_s=300, seed=5), balances={
        "BTC": Decimal(3), "ETH": Decimal(40), "SOL": Decimal(500), "USDT": Decimal(20000)})
    settings, path, balances, start = prepare(cfg, opts)
    v = _venues(cfg, settings, start, path.step_s, balances)["sim"]
    v.open_position("BTC/USD:BTC", Decimal(-150000))
    v.open_position("ETH/USD:ETH", Decimal(-60000))
    v.open_position("ETH/USDT:USDT", Decimal("-12.5"))
    acct = v.account
    for n in range(1, path.steps + 1):
        for asset in ("BTC", "ETH", "SOL"):
            v.move(asset, dec(path.close(asset)[n]))
        coins = set(acct.wallet) | {p.instrument.settle or p.instrument.quote for p in acct.positions.values()}
        assert v.equity_usd() == sum((v.engine.coin_summary(acct, c).equity * v.usd(c) for c in coins), Decimal(0))
