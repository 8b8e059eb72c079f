"""`hedged simulate` speed: simulated cycles per second for one instrument, and where a quiet step spends it.

Prints µs per step of the config rule (decide + exchange model + series) over a GBM path of minute steps,
wall and CPU time of this process for each run (on a loaded machine the CPU figure is the steadier one), then
µs of each part of a quiet step measured alone, and with --profile the cProfile top functions of the run.
The issue's goal is >= 20,000 cycles/s per instrument (<= 50 µs; a year of minute steps in under 30 s).

    .venv/bin/python bench/simulate.py [--days 7] [--runs 3] [--scenario inverse|linear|multi] [--profile]

Scenarios: `inverse` (BTC/USD:BTC), `linear` (BTC/USDT:USDT), `multi` (three [[hedge]] entries on three
instruments: BTC and ETH inverse, SOL proxy-hedged on ETH/USDT:USDT); µs per step is also given per instrument.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import pstats
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hedged.config import Config, parse_config
from hedged.decide import decide
from hedged.model import TradingState
from hedged.planner import plan
from hedged.simulate.exchange import snapshot_of
from hedged.simulate.metrics import Series
from hedged.simulate.paths import PathSpec
from hedged.simulate.runner import SimOptions, _Book, _record, _venues, prepare, run_rule

SCENARIOS: dict[str, list[dict[str, str]]] = {
    "inverse": [{"asset": "BTC", "venue": "sim", "instrument": "BTC/USD:BTC"}],
    "linear": [{"asset": "BTC", "venue": "sim", "instrument": "BTC/USDT:USDT"}],
    "multi": [{"asset": "BTC", "venue": "sim", "instrument": "BTC/USD:BTC"},
              {"asset": "ETH", "venue": "sim", "instrument": "ETH/USD:ETH"},
              {"asset": "SOL", "venue": "sim", "instrument": "ETH/USDT:USDT", "price_symbol": "SOL/USDT",
               "beta": "1.2"}],
}


def config_of(name: str) -> Config:
    return parse_config({"venues": {"sim": {"exchange": "bybit"}},
                         "hedge": [{k: (Decimal(v) if k == "beta" else v) for k, v in h.items()}
                                   for h in SCENARIOS[name]]})


def timed(fn: Callable[[], object], n: int, chunks: int = 5) -> tuple[float, float]:
    """Best µs per call over `chunks` chunks of `n` calls: (wall, CPU of this process). On a loaded machine the
    CPU time is the steadier figure (the wall clock also counts the time other processes held the core)."""
    wall = cpu = math.inf
    for _ in range(chunks):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            fn()
        wall = min(wall, (time.perf_counter() - w0) / n * 1e6)
        cpu = min(cpu, (time.process_time() - c0) / n * 1e6)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    for name in names:
        cfg = config_of(name)
        opts = SimOptions(path=PathSpec(kind="gbm", days=args.days, step_s=60, seed=1),
                          funding_rate=Decimal("0.0001"), rules=("config",))
        settings, path, balances, start = prepare(cfg, opts)
        steps = path.steps
        n_inst = len({h.instrument for h in cfg.hedge})
        walls, cpus = [], []
        for _ in range(args.runs):
            w0, c0 = time.perf_counter(), time.process_time()
            sc = run_rule("config", cfg, path, settings, balances, start, opts)
            walls.append((time.perf_counter() - w0) / steps * 1e6)
            cpus.append((time.process_time() - c0) / steps * 1e6)
        print(f"{name} ({n_inst} instrument{'s' if n_inst > 1 else ''}), {steps} minute steps ({args.days:g} days), "
              f"orders {len(sc.orders)}: µs per step, wall {' / '.join(f'{x:.1f}' for x in walls)}, "
              f"CPU {' / '.join(f'{x:.1f}' for x in cpus)}; best CPU {min(cpus):.1f} µs "
              f"({min(cpus) / n_inst:.1f} per instrument, {1e6 * n_inst / min(cpus):,.0f} instrument-cycles/s)")
    print("goal: <= 50 µs per instrument-step (>= 20,000 cycles/s: a year of minute steps in < 30 s)")

    # the parts of a quiet step, each alone
    cfg = config_of("inverse")
    opts = SimOptions(path=PathSpec(kind="gbm", days=args.days, step_s=60, seed=1), funding_rate=Decimal("0.0001"),
                      rules=("config",))
    settings, path, balances, start = prepare(cfg, opts)
    venues = _venues(cfg, settings, start, path.step_s, balances)
    v = venues["sim"]
    for ip in plan(cfg, snapshot_of(venues)).instruments:
        if ip.intent is not None:
            v.open_position(ip.symbol, ip.intent.signed_amount)
    n = 2000
    snap = snapshot_of(venues)
    closes = path.close("BTC")
    it = iter(range(10**9))

    def engine_step() -> None:
        v.advance(60)
        v.move("BTC", Decimal(repr(closes[next(it) % len(closes)])))

    p = plan(cfg, snap)
    value = v.equity_usd()
    book = _Book()

    def record() -> None:
        series = Series()  # fresh: the lists would grow without bound
        _record(series, 0.0, p, value, 0.0, book, 0.0001)

    parts = {
        "decide() (plan + guard + hold-back)": lambda: decide(cfg, snap, state=TradingState.RUNNING),
        "  of which plan()": lambda: plan(cfg, snap),
        "snapshot of the engine": lambda: snapshot_of(venues, snap.time),
        "engine: clock step + one price move": engine_step,
        "portfolio valuation": v.equity_usd,
        "series row (Decimal -> float)": record,
        "executions seen (fees, funding)": lambda: book.collect(venues),
    }
    print("inverse, each part of a quiet step alone (best of 5 x 2000 calls): wall / CPU µs")
    total = 0.0
    for k, fn in parts.items():
        wall, cpu = timed(fn, n)
        total += cpu if not k.startswith(" ") else 0.0
        print(f"  {k:<40} {wall:8.1f} {cpu:8.1f}")
    print(f"  {'sum of the parts (CPU)':<40} {'':8} {total:8.1f}  (the rest of a step: the runner's own loop)")

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
