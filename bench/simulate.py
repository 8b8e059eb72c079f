"""`hedged simulate` speed: simulated cycles per second for one instrument, and where a quiet step spends it.

Prints cycles/s and µs per step of the config rule (decide + exchange model + series) over a GBM path of
minute steps, then µs per step of each part measured alone (decide, the snapshot, the engine step), and with
--profile the cProfile top functions of the run. The issue's goal is >= 20,000 cycles/s (a year of minute
steps in under 30 s).

    .venv/bin/python bench/simulate.py [--days 7] [--instrument BTC/USD:BTC] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hedged.config import parse_config
from hedged.decide import decide
from hedged.model import TradingState
from hedged.planner import plan
from hedged.simulate.exchange import snapshot_of
from hedged.simulate.paths import PathSpec
from hedged.simulate.runner import SimOptions, _venues, prepare, run_rule


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--instrument", default="BTC/USD:BTC")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    cfg = parse_config({"venues": {"sim": {"exchange": "bybit"}},
                        "hedge": [{"asset": "BTC", "venue": "sim", "instrument": args.instrument}]})
    opts = SimOptions(path=PathSpec(kind="gbm", days=args.days, step_s=60, seed=1), funding_rate=Decimal("0.0001"),
                      rules=("config",))
    settings, path, balances, start = prepare(cfg, opts)
    steps = path.steps

    t0 = time.perf_counter()
    sc = run_rule("config", cfg, path, settings, balances, start, opts)
    wall = time.perf_counter() - t0
    print(f"{args.instrument}: {steps} minute steps ({args.days:g} days) in {wall:.2f} s: "
          f"{steps / wall:,.0f} cycles/s, {wall / steps * 1e6:.1f} µs per step; orders {len(sc.orders)}")
    print(f"a year of minute steps at this rate: {525600 * wall / steps:.0f} s (goal: < 30 s, >= 20,000 cycles/s)")

    # the parts of a quiet step, each alone
    venues = _venues(cfg, settings, start, path.step_s, balances)
    v = venues["sim"]
    for ip in plan(cfg, snapshot_of(venues)).instruments:
        if ip.intent is not None:
            v.open_position(ip.symbol, ip.intent.signed_amount)
    n = 5000
    snap = snapshot_of(venues)
    parts: dict[str, float] = {}
    t0 = time.perf_counter()
    for _ in range(n):
        decide(cfg, snap, state=TradingState.RUNNING)
    parts["decide() (plan + guard)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n):
        plan(cfg, snap)
    parts["  of which plan()"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n):
        snapshot_of(venues)
    parts["snapshot of the engine"] = time.perf_counter() - t0
    closes = path.close("BTC")
    t0 = time.perf_counter()
    for i in range(n):
        v.advance(60)
        v.move("BTC", Decimal(repr(closes[i % len(closes)])))
    parts["engine: clock step + one price move"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n):
        v.equity_usd()
    parts["portfolio valuation"] = time.perf_counter() - t0
    for k, t in parts.items():
        print(f"  {k:<40} {t / n * 1e6:8.1f} µs")

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(20000):
            decide(cfg, snap, state=TradingState.RUNNING)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
        print("a quiet decide(), 20,000 times:")
        print(out.getvalue())
        prof = cProfile.Profile()
        prof.enable()
        run_rule("config", cfg, path, settings, balances, start, opts)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(30)
        print("the whole run:")
        print(out.getvalue())


if __name__ == "__main__":
    main()
