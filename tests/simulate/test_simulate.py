"""hedged simulate: the real decision on the engine over seeded paths (short paths; long ones live in bench/)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hedged.cli import app
from hedged.config import Config, parse_config
from hedged.model import Code
from hedged.report import dumps, plan_json
from hedged.simulate.exchange import inputs_v1
from hedged.simulate.paths import PathSpec
from hedged.simulate.runner import SimOptions, simulate

INVERSE, LINEAR = "BTC/USD:BTC", "BTC/USDT:USDT"


def config(instrument: str = INVERSE, **hedge: Any) -> Config:
    data: dict[str, Any] = {"venues": {"sim": {"exchange": "bybit"}},
                            "hedge": [{"asset": "BTC", "venue": "sim", "instrument": instrument, **hedge}]}
    return parse_config(data)


def run(cfg: Config, kind: str = "gbm", days: float = 2, step: int = 300, funding: str = "0", **kw: Any) -> Any:
    spec = PathSpec(kind=kind, days=days, step_s=step, seed=kw.pop("seed", 7), vol=0.6)
    return simulate(cfg, SimOptions(path=spec, funding_rate=Decimal(funding), **kw))


@pytest.mark.parametrize("instrument", [INVERSE, LINEAR])
@pytest.mark.parametrize("kind", ["gbm", "jumps", "crash"])
def test_price_only_paths_place_no_order(instrument: str, kind: str) -> None:
    r = run(config(instrument), kind, rules=("config",))
    s = r.scenario("config").summary
    assert s["orders"] == 0, s
    assert s["time_outside_band_pct"] == 0
    if kind == "crash":  # the path really fell by half over the day
        closes = r.path.close("BTC")
        assert min(closes) < 0.55 * closes[0]
    assert s["hedge_effectiveness"] >= 0.9999


def test_funding_income_is_hedged_by_sells_only_and_never_churned() -> None:
    # a large rate so that the coins earned cross the band within days
    r = run(config(INVERSE), "gbm", days=4, step=300, funding="0.003", rules=("config",))
    sc = r.scenario("config")
    assert sc.summary["funding_usd"] > 0
    assert sc.summary["orders"] >= 1
    assert {o.side for o in sc.orders} == {"sell"}  # only growing the short by what funding paid in
    assert sc.summary["cancelled_unfilled"] == 0
    # outside the band only at the steps that sent an order, and back inside at the next step
    outside = {t for t, out in zip(sc.series.t, sc.series.outside, strict=True) if out}
    assert outside == {o.t for o in sc.orders}


def test_naive_churns_on_an_inverse_hedge_where_ours_places_nothing() -> None:
    cfg = config(INVERSE, band=Decimal("0.002"))
    r = run(cfg, "gbm", days=5, step=300, funding="0")
    ours, naive = r.scenario("config").summary, r.scenario("naive").summary
    assert ours["orders"] == 0
    assert naive["orders"] >= 100
    assert naive["fees_usd"] > 0 and ours["fees_usd"] == 0
    assert f"naive rule: {naive['orders']} orders" in r.json()["note"]
    assert "config: 0 orders" in r.json()["note"]


@pytest.mark.parametrize("instrument", [INVERSE, LINEAR])
def test_own_coin_hedge_effectiveness(instrument: str) -> None:
    r = run(config(instrument), "gbm", days=8, step=900, funding="0.0001", rules=("config",))
    s = r.scenario("config").summary
    assert s["he_interval_s"] == 86400
    assert s["hedge_effectiveness"] >= 0.9999
    assert r.scenario("unhedged").summary["worst_day_usd"] < s["worst_day_usd"]


def test_proxy_hedge_effectiveness_is_bounded_by_the_paths_r2() -> None:
    cfg = parse_config({"venues": {"sim": {"exchange": "bybit"}}, "hedge": [
        {"asset": "SOL", "venue": "sim", "instrument": LINEAR, "beta": Decimal("1.5"), "price_symbol": "SOL/USDT"}]})
    r = run(cfg, "gbm", days=40, step=3600, funding="0", rules=("config",),
            balances={"SOL": Decimal(1000), "USDT": Decimal(100000)})
    he = r.scenario("config").summary["hedge_effectiveness"]
    r2 = r.json()["path"]["r2"]
    assert 0.1 < he <= r2 + 0.02, (he, r2)


def test_same_seed_same_result() -> None:
    a = run(config(INVERSE, band=Decimal("0.002")), days=1, rules=("naive",)).json()
    b = run(config(INVERSE, band=Decimal("0.002")), days=1, rules=("naive",)).json()
    assert a == b


def test_plan_snapshot_replays_every_kept_step(tmp_path: Path) -> None:
    cfg_file = tmp_path / "hedged.toml"
    cfg_file.write_text('[venues.sim]\nexchange = "bybit"\n[[hedge]]\nasset = "BTC"\nvenue = "sim"\n'
                        'instrument = "BTC/USD:BTC"\n[limits]\nmax_order_usd = 150000\n')
    from hedged.config import load_config

    cfg = load_config(cfg_file)
    keep = frozenset({0, 1, 2, 3, 4, 7, 20, 100})
    r = simulate(cfg, SimOptions(path=PathSpec(days=1, step_s=300, seed=3), start_hedged=False, keep=keep,
                                 rules=("config",)))
    sc = r.scenario("config")
    kept = sc.kept
    assert set(kept) == keep == set(sc.kept_inputs)
    trades = 0
    runner = CliRunner()
    for i, (snap, plan, result) in sorted(kept.items()):
        assert result is not None
        trades += len(result.orders)
        assert sc.kept_inputs[i].snapshot is snap
        f = tmp_path / f"snap{i}.json"
        f.write_text(json.dumps(inputs_v1(sc.kept_inputs[i])))
        out = runner.invoke(app, ["plan", "--config", str(cfg_file), "--snapshot", str(f), "--json"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.output) == json.loads(dumps(plan_json(plan, result))), i
    assert trades >= 3  # the opening orders (capped at 150k USD each) are among the replayed decisions
    # and so are the keeper's holds after each fill (the keeper section carries what landed)
    held = [i for i, (_, _, result) in kept.items() if result is not None
            and any(r.code is Code.ORDER_CHANGED for d in result.decisions for r in d.reasons)]
    assert held, "no order_changed hold among the replayed steps"


def test_until_unwinds_the_hedge_and_deposits_are_hedged() -> None:
    # the hedge ends after one day: the keeper buys it back; a weekly-style deposit is hedged as it lands
    from datetime import UTC, datetime

    from hedged.simulate.runner import Deposit

    cfg = parse_config({"venues": {"sim": {"exchange": "bybit"}}, "limits": {"max_order_usd": 1000000},
                        "hedge": [{"asset": "BTC", "venue": "sim", "instrument": INVERSE,
                                   "until": "2026-03-02T00:00:00Z"}]})
    r = simulate(cfg, SimOptions(path=PathSpec(days=2, step_s=600, seed=2), funding_rate=Decimal(0),
                                 start=datetime(2026, 3, 1, tzinfo=UTC), rules=("config",),
                                 deposits=(Deposit("BTC", Decimal(2), 0.5),)))
    sc = r.scenario("config")
    sides = [(o.t, o.side) for o in sc.orders]
    assert any(side == "sell" and t < 86400 for t, side in sides)  # the deposits at 12 h are hedged
    assert any(side == "buy" and t >= 86400 for t, side in sides)  # after `until`: unwound
    assert sc.venues["sim"].account.positions[next(iter(sc.venues["sim"].account.positions))].size == 0
    assert sc.summary["deposits_usd"] > 0


def test_reprice_then_escalate_like_the_executor() -> None:
    # no taker flow and a flat price: a post-only order at the touch never fills; after order_timeout it is
    # cancelled and re-posted, max_reprices times, then it goes out as a marketable limit and fills
    from hedged.sim.settings import default_settings

    cfg = parse_config({"venues": {"sim": {"exchange": "bybit"}},
                        "execution": {"order_timeout": 30, "max_reprices": 2, "escalate": True},
                        "limits": {"max_order_usd": 1000000},
                        "hedge": [{"asset": "BTC", "venue": "sim", "instrument": INVERSE}]})
    r = simulate(cfg, SimOptions(path=PathSpec(kind="flat", days=0.01, step_s=60), funding_rate=Decimal(0),
                                 exchange=default_settings(taker_flow_usd_per_s=0), start_hedged=False,
                                 rules=("config",)))
    orders = r.scenario("config").orders
    assert [o.status for o in orders[:3]] == ["cancelled", "cancelled", "filled"]
    assert [o.t for o in orders[:3]] == [0, 60, 120]
    assert orders[2].price < orders[0].price  # escalated: below the bid, within max_slippage_bps of mark
    assert len(orders) == 3 and r.scenario("config").summary["cancelled_unfilled"] == 2
