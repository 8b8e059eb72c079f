"""`hedged status` gives four different, correct answers: a keeper running, one kill -9'd a minute ago,
one halted by the circuit breaker, one halted by an operator. Time is the view's `now` (a fixed clock),
never a real minute; the running and killed keeper is the real `hedged run` process against the local
exchange in this process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from hedged.audit.lock import config_locks, hold_locks
from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore, TradingState
from hedged.cli import app
from hedged.config import load_config
from hedged.sim.server import Emulator
from hedged.sim.settings import default_settings
from hedged.status import StatusView, as_json, collect, render

from .test_lock import env, write_config

pytestmark = pytest.mark.timeout(180)
runner = CliRunner()
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture
def cfg(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for k, v in env().items():
        if k.startswith("HT_"):
            monkeypatch.setenv(k, v)
    return write_config(tmp_path, "sqlite:///audit.db" if db_url.startswith("sqlite") else db_url)


async def view_at(cfg_path: Path, now: datetime | None = None) -> StatusView:
    cfg = load_config(cfg_path)
    async with await AuditStore.open(cfg.audit_url, cfg.keeper.name, read_only=True) as store:
        return await collect(cfg, store, now or datetime.now(UTC))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def _keeper_history(url: str, clock: Clock) -> None:
    """What a keeper writes while it runs: a start, reconciliation, two cycles on one instrument."""
    async with await AuditStore.open(url, "main", clock=clock) as store:
        await store.append("start", {"mode": "live", "venues": ["perp", "spot"]})
        await store.append("state", {"state": "reconciled"})
        for drift in (D("0.5"), D("0.01")):
            clock.now += timedelta(seconds=10)
            store.start_cycle()
            await store.record_cycle(venue="perp", symbol="BTC/USD:BTC", action="hold", reasons=["within_band"],
                                     exposure=D(10), hedge=D("-9.99"), inflight=D(0), target=D(-10), drift=drift,
                                     band=D("0.1"), mark=D(65000), funding_rate=D("0.0001"),
                                     payload={"liquidation_price": D(130000), "funding_interval_hours": D(8)})


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


# --- (a) running and (b) kill -9'd a minute ago: the real keeper process -------------------------------


KEEPER_TOML = """
[keeper]
name = "st"
interval = 0.5

[venues.sim]
exchange = "bybit"
url = "{url}"
api_key_env = "SIM_KEY"
secret_env = "SIM_SECRET"

[[hedge]]
asset = "BTC"
venue = "sim"
instrument = "BTC/USD:BTC"

[limits]
max_order_usd = 10000000
max_position_usd = 100000000
max_daily_turnover_usd = 1000000000
max_orders_per_hour = 100000

[audit]
url = "sqlite:///audit.db"
"""


async def test_running_keeper_then_killed_a_minute_ago(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIM_KEY", "demo-key")
    monkeypatch.setenv("SIM_SECRET", "demo-secret")
    async with Emulator(default_settings()) as emu:
        path = tmp_path / "hedged.toml"
        path.write_text(KEEPER_TOML.format(url=emu.url))
        await upgrade(load_config(path).audit_url)
        with (tmp_path / "keeper.log").open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hedged", "run", "--config", str(path),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=dict(os.environ))
        try:
            view = await view_at(path)
            for _ in range(600):  # the first cycles, however slow the machine (polled, not timed)
                if len({i.cycle for i in view.instruments} | {0}) > 1 and view.alive.last_cycle is not None \
                        and view.alive.verdict == "running":
                    break
                assert proc.returncode is None, (tmp_path / "keeper.log").read_text()[-2000:]
                await asyncio.sleep(0.1)
                view = await view_at(path)
            # (a) alive: a fresh cycle and the account lock held by that process
            assert view.alive.verdict == "running", view.alive
            assert view.alive.lock.held is True and f"pid {proc.pid}" in view.alive.lock.detail
            assert view.trading.state == "RUNNING" and view.trading.why.startswith("no command ever sent")
            assert [i.symbol for i in view.instruments] == ["BTC/USD:BTC"]
            text = render(view)
            assert text.startswith("keeper st: RUNNING\n") and "[bold]" not in text and "reconciled" not in text
            # the CLI reads the store while the keeper writes to it (read-only)
            code, out = await asyncio.to_thread(_cli, "status", "--config", str(path))
            assert code == 0 and out.startswith("keeper st: RUNNING"), out
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
            await proc.wait()
        # (b) kill -9, judged a minute after its last cycle: not running, no clean stop, lock free
        last = (await view_at(path)).alive.last_cycle
        assert last is not None
        dead = await view_at(path, last + timedelta(seconds=60))
        assert dead.alive.verdict == "not running", dead.alive
        assert dead.alive.lock.held is False
        assert "never stopped cleanly" in dead.alive.detail and "last cycle 60 s ago" in dead.alive.detail
        text = render(dead)
        assert text.startswith("keeper st: NOT RUNNING\n") and "trading RUNNING (last recorded)" in text
        assert as_json(dead)["alive"]["verdict"] == "not running"


# --- (c) halted by the circuit breaker ---------------------------------------------------------------


async def test_halted_by_the_breaker(cfg: Path, db_url: str) -> None:
    clock = Clock()
    await upgrade(db_url)
    await _keeper_history(db_url, clock)
    config = load_config(cfg)
    async with hold_locks(config_locks(config)):  # as the running keeper holds it
        async with await AuditStore.open(db_url, "main", clock=clock) as store:
            clock.now += timedelta(seconds=5)
            await store.error("AuthenticationError: bybit invalid api key", error_type="AuthenticationError")
            await store.command(TradingState.HALTED, via="circuit-breaker",
                                reason="breaker (permanent): 5 consecutive failed cycles: AuthenticationError: "
                                       "bybit invalid api key")
            await store.record_state(TradingState.HALTED, reason="command")
            clock.now += timedelta(seconds=5)
            store.start_cycle()
            await store.record_cycle(venue="perp", symbol="BTC/USD:BTC", action="hold", reasons=["halted"],
                                     exposure=D(10), hedge=D("-9.99"), target=D(-10), drift=D("0.01"),
                                     band=D("0.1"), mark=D(65000))
        view = await view_at(cfg, clock.now + timedelta(seconds=2))
        assert view.alive.verdict == "running" and view.alive.lock.held is True
        assert view.trading.state == "HALTED" and view.trading.requested == "HALTED"
        assert view.trading.why == ("circuit breaker 7 s ago: breaker (permanent): 5 consecutive failed cycles: "
                                    "AuthenticationError: bybit invalid api key")
        assert view.last_error is not None and "invalid api key" in view.last_error.message

        # a transient trip is a state change with its reason, no command: shown as recorded
        async with await AuditStore.open(db_url, "main", clock=clock) as store:
            await store.command(TradingState.RUNNING, via="cli", reason="key fixed")
            await store.record_state(TradingState.RUNNING, reason="command")
            await store.record_state(TradingState.HALTED, reason="breaker (transient): 5 consecutive failed "
                                                                 "cycles: cannot reach 127.0.0.1:9")
        view = await view_at(cfg, clock.now + timedelta(seconds=2))
        assert view.trading.state == "HALTED"
        assert view.trading.why == "breaker (transient): 5 consecutive failed cycles: cannot reach 127.0.0.1:9"
        assert view.trading.requested == "RUNNING" and "applied at the next cycle" in view.trading.pending


# --- (d) halted by an operator -----------------------------------------------------------------------


async def test_halted_by_an_operator(cfg: Path, db_url: str) -> None:
    clock = Clock()
    await upgrade(db_url)
    await _keeper_history(db_url, clock)
    code, out = await asyncio.to_thread(_cli, "halt", "--config", str(cfg), "--reason", "exchange maintenance")
    assert code == 0, out
    config = load_config(cfg)
    async with hold_locks(config_locks(config)):
        # the keeper has not cycled since the command: the view says it is pending
        code, out = await asyncio.to_thread(_cli, "status", "--config", str(cfg), "--json")
        data = json.loads(out)
        assert code == 0 and data["state"] == "RUNNING" and data["requested_state"] == "HALTED"
        assert "applied at the next cycle" in data["pending"]
        async with await AuditStore.open(db_url, "main") as store:  # the keeper's next cycle obeys it
            await store.record_state(TradingState.HALTED, reason="command")
        code, out = await asyncio.to_thread(_cli, "status", "--config", str(cfg), "--json")
        data = json.loads(out)
        assert data["state"] == "HALTED" and data["pending"] is None
        assert data["why"].startswith("halt by cli (") and data["why"].endswith(": exchange maintenance")
        assert data["instruments"][0]["drift_pct_of_band"] == "10"  # |0.01| / 0.1
        assert data["instruments"][0]["ratio"] == "0.999"
        assert data["instruments"][0]["funding_usd_per_day"] == "-194.805"  # 0.0001 × −9.99 × 65000 × 3
        assert data["instruments"][0]["liquidation_distance_pct"] == "100"
        code, text = await asyncio.to_thread(_cli, "status", "--config", str(cfg))
        assert code == 0 and "trading HALTED since" in text and "why: halt by cli (" in text
        assert "earns $195/day funding" in text and "liquidation 100.0% away" in text
        assert "open orders: none" in text and "[bold]" not in text and "reconciled" not in text


async def test_clean_stop_and_never_ran(cfg: Path, db_url: str) -> None:
    await upgrade(db_url)
    assert (await view_at(cfg)).alive.verdict == "never ran"
    clock = Clock()
    await _keeper_history(db_url, clock)
    async with await AuditStore.open(db_url, "main", clock=clock) as store:
        await store.append("stop", {"cycles": 2})
    view = await view_at(cfg, clock.now + timedelta(hours=2))
    assert view.alive.verdict == "stopped" and view.alive.detail.startswith("stopped cleanly 2 h ago")
    assert view.trading.state == "RUNNING"
