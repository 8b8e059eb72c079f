"""`hedged demo` end to end: emulator + keeper in one process, then the audit it leaves behind."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


def _hedged(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hedged", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_demo_runs_trades_and_leaves_a_verifiable_audit(tmp_path: Path) -> None:
    state = tmp_path / "state"
    run = _hedged("demo", "--duration", "12", "--state-dir", str(state), timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "deposited" in run.stdout
    assert "audit verify" in run.stdout
    config = state / "hedged.toml"
    db = state / "hedged.db"
    assert config.is_file()
    assert db.is_file()

    verify = _hedged("audit", "verify", "--config", str(config))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    words = verify.stdout.split()
    assert words[0] == "ok" and words[2] == "events", verify.stdout
    assert int(words[1]) > 0

    status = _hedged("status", "--config", str(config), "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["keeper"] == "demo"
    assert data["instruments"] and data["alive"]["verdict"] == "stopped"

    with sqlite3.connect(db) as conn:
        sent = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        filled = conn.execute("SELECT count(*) FROM orders WHERE status = 'filled'").fetchone()[0]
        live = conn.execute(
            "SELECT count(*) FROM orders WHERE status NOT IN ('filled', 'cancelled', 'rejected')").fetchone()[0]
    assert sent >= 1
    assert filled >= 1
    assert live == 0  # the stop cancelled whatever was still open


async def test_the_live_screen_fits_80_columns_and_grows_when_wider() -> None:
    import io
    from decimal import Decimal as D

    from rich.console import Console

    from hedged.demo import LEGEND, DemoView, demo_settings
    from hedged.keeper import CycleResult
    from hedged.model import Code, Decision, InstrumentPlan, Market, Reason, TradingState
    from hedged.sim.server import Emulator

    def decision(symbol: str, mark: str, hedge: str, exposure_usd: str) -> Decision:
        base = symbol.split("/")[0]
        market = Market(symbol, base, "USD", base, "inverse", D(1), D("0.05"), D(1), D(1))
        plan = InstrumentPlan("sim", symbol, market, D(hedge), D(0), D(hedge) - D("0.0123456"), D("0.0123456"),
                              D(mark), D("0.1204"), D(exposure_usd), None)
        return Decision(plan, "hold", None, (Reason(Code.WITHIN_BAND, "|drift| 0.0123 <= band 0.1204"),))

    async with Emulator(demo_settings()) as emu:
        view = DemoView(emu)
        view.on_cycle(CycleResult((decision("BTC/USD:BTC", "65123.5", "-12.0404123", "781042.123"),
                                   decision("ETH/USD:ETH", "3075.55", "-117.021345", "359866.789")),
                                  sent=3, state=TradingState.RUNNING), None)
        for n in range(30):
            view.log(f"BTC post-only sell @ 65,{n:03d} bounced: would cross the book; re-pricing")
        view.deposit("BTC", D(2))
        view.log("deposited 2 BTC and 20 ETH: exposure jumps, the hedge follows")
        screens = {}
        for width, height in ((80, 24), (200, 50)):
            console = Console(width=width, height=height, file=io.StringIO(), record=True, color_system=None)
            console.print(view.render(width, height))
            screens[width] = console.export_text().splitlines()
    narrow, wide = screens[80], screens[200]
    assert max(len(line) for line in narrow) <= 80 and len(narrow) <= 23  # one line is the demo's banner
    table = "\n".join(narrow[2:5])
    for cell in ("65,123.5", "12", "-12.0404", "$781,042", "3,075.6", "-117.0213", "$359,867", "10%"):
        assert cell in table, (cell, table)
    assert "…" not in table and LEGEND[0] in narrow and LEGEND[1] in narrow
    assert narrow[-2].endswith("deposited 2 BTC and 20 ETH: exposure jumps, the hedge follows")
    assert "BTC/USD:BTC" in "\n".join(wide) and "within_band" in "\n".join(wide) and "in-flight" in wide[2]
    assert sum("bounced" in line for line in wide) > sum("bounced" in line for line in narrow)


def test_cross_venue_demo_hedges_binance_spot_and_a_cold_wallet_on_bybit(tmp_path: Path) -> None:
    import re
    from decimal import Decimal

    state = tmp_path / "cv"
    run = _hedged("demo", "--scenario", "cross-venue", "--duration", "9", "--state-dir", str(state), timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    config = (state / "hedged.toml").read_text()
    assert 'exchange = "binance"' in config and 'sources = ["spot"]' in config and "off_exchange = 5" in config
    assert "deposited 2 BTC" in run.stdout
    # the screen's held coins (and the summary's) are what the keeper counts, not only Bybit's wallet
    assert "holding 25 BTC and 250 ETH (Binance spot + cold wallet + Bybit collateral)" in run.stdout
    assert "  BTC: 27 BTC worth " in run.stdout and "  ETH: 270 ETH worth " in run.stdout
    # after the deposit: 10 + 2 BTC on Binance spot, 5 in the cold wallet, 10 as Bybit collateral, each once
    # (the single-venue demo's 12 BTC would give a target near -12)
    targets = [Decimal(t) for t in re.findall(r"BTC/USD:BTC hedge=\S+ inflight=\S+ target=(\S+)", run.stdout)]
    assert targets and -28.5 < targets[-1] < -25.5, targets  # the short's uPnL moves Bybit's equity a little
    verify = _hedged("audit", "verify", "--config", str(state / "hedged.toml"))
    assert verify.returncode == 0 and verify.stdout.startswith("ok"), verify.stdout + verify.stderr
    with sqlite3.connect(state / "hedged.db") as conn:
        filled = conn.execute("SELECT count(*) FROM orders WHERE status = 'filled'").fetchone()[0]
    assert filled >= 1


def test_demo_refuses_an_unknown_scenario(tmp_path: Path) -> None:
    run = _hedged("demo", "--scenario", "moon", "--state-dir", str(tmp_path / "x"))
    assert run.returncode == 2 and "--scenario: expected one of single, cross-venue" in run.stderr
    assert "Traceback" not in run.stderr


async def test_log_lines_print_above_the_live_screen_not_into_it(capsys: pytest.CaptureFixture[str]) -> None:
    """structlog holds the stderr it was configured with; written there during the live screen, a warning
    shifts the screen and each redraw leaves a stale copy of its top lines behind (seen at 200×50)."""
    import io

    from rich.console import Console

    from hedged import log
    from hedged.demo import DemoView, demo_settings, live_screen
    from hedged.sim.server import Emulator

    log.configure(level="warning")  # as `hedged demo` does, before the screen is up
    screen_out = io.StringIO()
    console = Console(file=screen_out, force_terminal=True, width=80, height=24, color_system=None)
    async with Emulator(demo_settings()) as emu:
        view = DemoView(emu)
        with live_screen(console, view, reroute_logs=True) as screen:
            log.get_logger("test").warning("venue.retry", call="fetch_positions", attempt=1)
            screen.refresh()
    assert "venue.retry" not in capsys.readouterr().err  # not written past the screen
    assert "venue.retry" in screen_out.getvalue()  # printed above it by the screen's console
    log.get_logger("test").warning("after.the.screen")
    assert "after.the.screen" in capsys.readouterr().err  # and to stderr again once the screen is down


async def test_the_table_never_cuts_a_number_between_the_two_layouts() -> None:
    """At 120 columns the wide layout once needed ~150 and rich cut every cell to "…"; each width now gets
    the widest layout whose cells fit, and the reasons only when 20 columns are left for them."""
    import io
    from decimal import Decimal as D

    from rich.console import Console

    from hedged.demo import DemoView, demo_settings
    from hedged.keeper import CycleResult
    from hedged.model import Code, Decision, InstrumentPlan, Market, Reason, TradingState
    from hedged.sim.server import Emulator

    def decision(symbol: str, mark: str, hedge: str) -> Decision:
        base = symbol.split("/")[0]
        market = Market(symbol, base, "USD", base, "inverse", D(1), D("0.05"), D(1), D(1))
        plan = InstrumentPlan("sim", symbol, market, D(hedge), D(0), D(hedge) - D("0.0123456"), D("0.0123456"),
                              D(mark), D("0.1204"), -D(hedge) * D(mark), None)
        return Decision(plan, "hold", None, (Reason(Code.WITHIN_BAND, "|drift| 0.00226161 <= band 0.12172395"),))

    async with Emulator(demo_settings()) as emu:
        view = DemoView(emu)
        view.on_cycle(CycleResult((decision("BTC/USD:BTC", "66908.5", "-11.6343123"),
                                   decision("ETH/USD:ETH", "3096.55", "-117.161345")),
                                  sent=3, state=TradingState.RUNNING), None)
        tables = {}
        for width in (80, 100, 119, 120, 150, 200):
            console = Console(width=width, height=40, file=io.StringIO(), record=True, color_system=None)
            console.print(view._table(width))
            tables[width] = console.export_text().splitlines()
    for width, lines in tables.items():
        assert max(len(line.rstrip()) for line in lines) <= width, width
        numbers = [line.split("  within_band")[0] for line in lines]
        assert not any("…" in n for n in numbers), (width, lines)
        assert "66,908.5" in lines[1] and "-117.1613" in lines[2], (width, lines)
    assert "target" not in tables[100][0] and "target" in tables[119][0] and "target" in tables[120][0]
    assert "why" not in tables[120][0] and "why" in tables[150][0]
    assert "within_band: |drift| 0.00226161 <= band 0.12172395" in tables[200][1]
