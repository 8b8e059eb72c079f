"""CLI start-up benchmark: wall time of `hedged --help`, `hedged --version` and `hedged config check`,
each a fresh process (what a person or a shell script pays), and the modules `import hedged.cli` loads.

Goal: under 0.5 s each on the target VPS. Prints the median and the worst of N runs.

    .venv/bin/python bench/cli_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """
[venues.bybit]
exchange = "bybit"
api_key_env = "BYBIT_KEY"
secret_env = "BYBIT_SECRET"

[[hedge]]
asset = "BTC"
venue = "bybit"
instrument = "BTC/USD:BTC"
"""
HEAVY = ("pydantic", "rich", "sqlalchemy", "aiohttp", "ccxt", "aiomqtt", "asyncpg")


def hedged() -> list[str]:
    script = Path(sys.executable).parent / "hedged"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hedged"]


def timed(args: list[str], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    n = ap.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "hedged.toml"
        cfg.write_text(CONFIG)
        base = hedged()
        for label, args in (("hedged --help", ["--help"]), ("hedged --version", ["--version"]),
                            ("hedged config check", ["config", "check", str(cfg)])):
            median, worst = timed(base + args, n)
            print(f"{label:<22} median {median:.3f} s   worst {worst:.3f} s   ({n} runs)")
    code = f"import sys, hedged.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules) or 'none')"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    print(f"import hedged.cli loads of {', '.join(HEAVY)}: {loaded}")


if __name__ == "__main__":
    main()
