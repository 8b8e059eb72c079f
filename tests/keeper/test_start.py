"""Start-up while the exchange cannot be reached: no traceback, one line per attempt, an `error` and an alert,
`resolved` once it connects; `keeper.start_timeout` ends it with exit 4, a refused key with exit 5."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore
from hedged.exits import EXIT_REFUSED, EXIT_UNREACHABLE, StartFailed
from hedged.keeper import Keeper
from hedged.service import make_venues
from hedged.sim.server import Emulator
from hedged.sim.settings import default_settings

from .conftest import keeper_config

WAIT = 60.0  # generous bound on conditions polled below, never a deadline for the code under test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(cond: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not await cond():
        assert time.monotonic() < deadline, f"not within {WAIT}s: {what}"
        await asyncio.sleep(0.1)


async def test_keeper_start_retries_until_the_exchange_is_up(tmp_path: Path) -> None:
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = "demo-key", "demo-secret"
    port = free_port()
    cfg = keeper_config(f"http://127.0.0.1:{port}", tmp_path / "k.db")
    await upgrade(cfg.audit_url)
    store = await AuditStore.open(cfg.audit_url, cfg.keeper.name)
    venues = make_venues(cfg)
    keeper = Keeper(cfg, store, venues, start_backoff=(0.05, 0.2))
    task = asyncio.create_task(keeper.start())
    emu = Emulator(default_settings(speed=1.0), port=port)
    try:
        async def failed_twice() -> bool:
            return len([e for e in await store.tail(100) if e.kind == "error"]) >= 1 and not task.done()
        await until(failed_twice, "a start-up error recorded")
        await asyncio.sleep(0.5)  # several more attempts: still one error event and one alert
        events = await store.tail(100)
        assert [e.kind for e in events].count("error") == 1
        (alert,) = [e.payload for e in events if e.kind == "alert"]
        assert alert["code"] == "exchange_unreachable" and alert["data"]["status"] == "firing"
        assert "connection refused" in alert["message"] and "Traceback" not in alert["message"]
        await emu.start()
        await asyncio.wait_for(task, WAIT)
        kinds = [e.kind for e in await store.tail(100)]
        assert "start" in kinds and {"state"} <= set(kinds)
        resolved = [e.payload for e in await store.tail(100) if e.kind == "alert"
                    and e.payload["code"] == "exchange_unreachable" and e.payload["data"]["status"] == "resolved"]
        assert len(resolved) == 1
        res = await keeper.cycle()
        assert res.sent == 2  # and trades
    finally:
        task.cancel()
        await emu.stop()
        for v in venues.values():
            await v.close()
        await store.close()


async def test_refused_api_key_at_start_is_exit_5_at_once(tmp_path: Path) -> None:
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = "demo-key", "wrong-secret"
    try:
        async with Emulator(default_settings(speed=1.0)) as emu:
            cfg = keeper_config(emu.url, tmp_path / "k.db")
            await upgrade(cfg.audit_url)
            store = await AuditStore.open(cfg.audit_url, cfg.keeper.name)
            venues = make_venues(cfg)
            try:
                keeper = Keeper(cfg, store, venues, start_backoff=(0.05, 0.2))
                try:
                    await keeper.start()
                    raise AssertionError("started with a wrong secret")
                except StartFailed as exc:
                    assert exc.code == EXIT_REFUSED and "refused our API key" in str(exc)
            finally:
                for v in venues.values():
                    await v.close()
                await store.close()
    finally:
        os.environ["SIM_SECRET"] = "demo-secret"


def run_toml(tmp_path: Path, port: int, interval: float = 0.2, **keeper: Any) -> Path:
    extra = "".join(f"{k} = {v}\n" for k, v in keeper.items())
    path = tmp_path / "keeper.toml"
    path.write_text(f"""
[keeper]
name = "start"
interval = {interval}
{extra}
[venues.sim]
exchange = "bybit"
url = "http://127.0.0.1:{port}"
api_key_env = "SIM_KEY"
secret_env = "SIM_SECRET"
timeout = 1

[[hedge]]
asset = "BTC"
venue = "sim"
instrument = "BTC/USD:BTC"

[audit]
url = "sqlite:///audit.db"
""")
    return path


def env() -> dict[str, str]:
    return {**os.environ, "SIM_KEY": "demo-key", "SIM_SECRET": "demo-secret"}


async def test_hedged_run_with_start_timeout_exits_4_with_one_line(tmp_path: Path) -> None:
    cfg = run_toml(tmp_path, free_port(), start_timeout=5)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hedged", "run", "--config", str(cfg), env=env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), WAIT)
    text = out.decode() + err.decode()
    assert proc.returncode == EXIT_UNREACHABLE, text
    assert "Traceback" not in text
    errors = [line for line in err.decode().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach 127.0.0.1" in errors[0] and "start_timeout" in errors[0], text
    attempts = [line for line in text.splitlines() if "keeper.start_failed" in line]
    # how many attempts fit in 5 s depends on the machine's speed: at least one, each one line
    assert attempts and all("connection refused" in a for a in attempts), text


async def test_hedged_run_waits_for_the_exchange_then_reconciles_and_trades(tmp_path: Path) -> None:
    port = free_port()
    cfg = run_toml(tmp_path, port)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hedged", "run", "--config", str(cfg), env=env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    db = tmp_path / "audit.db"

    def kinds() -> list[tuple[str, str]]:
        if not db.exists():
            return []
        try:
            with sqlite3.connect(db) as c:
                return [(k, p) for k, p in c.execute("SELECT kind, payload FROM events ORDER BY id")]
        except sqlite3.Error:
            return []

    emu = Emulator(default_settings(speed=1.0), port=port)
    try:
        async def down_alert() -> bool:
            return any(k == "alert" and "exchange_unreachable" in p for k, p in kinds()) and \
                any(k == "error" for k, _ in kinds())
        await until(down_alert, "error event and alert while the exchange is down")
        assert proc.returncode is None
        await emu.start()

        async def trading() -> bool:
            return bool(emu.engine.orders_list()) and any(k == "alert" and '"resolved"' in p for k, p in kinds())
        await until(trading, "connected, resolved alert, an order on the exchange")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), WAIT)
        await emu.stop()
    assert "Traceback" not in out.decode(), out.decode()
    assert proc.returncode == 0, out.decode()


OUTAGE_S = float(os.environ.get("HEDGED_OUTAGE_S", "4"))  # the proof used 60 s: HEDGED_OUTAGE_S=60


async def test_hedged_run_rides_out_an_exchange_outage_without_a_human(tmp_path: Path) -> None:
    """Kill the exchange under a running `hedged run`: nothing is sent while it is down, the transient breaker
    trips and alerts; once it is back the keeper resumes by itself and hedges a deposit made meanwhile."""
    port = free_port()
    cfg = run_toml(tmp_path, port, float(os.environ.get("HEDGED_OUTAGE_INTERVAL", "0.2")), max_failures=3,
                   resume_after=3)
    db = tmp_path / "audit.db"

    def rows(sql: str) -> list[tuple[Any, ...]]:
        try:
            with sqlite3.connect(db) as c:
                return list(c.execute(sql))
        except sqlite3.Error:
            return []

    def breaker_alerts() -> list[str]:
        import json

        return [json.loads(p)["data"]["status"] for (p,) in rows("SELECT payload FROM events WHERE kind = 'alert'")
                if json.loads(p).get("code") == "circuit_breaker"]

    emu = Emulator(default_settings(speed=1.0), port=port)
    await emu.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hedged", "run", "--config", str(cfg), env=env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        def position() -> float:
            for p in emu.engine.state()["accounts"]["demo-key"]["positions"]:
                if p["symbol"] == "BTC/USD:BTC":
                    return float(p["size"])
            return 0.0

        async def hedged() -> bool:
            return abs(position() + 650_000) <= 6_500 and not rows(
                "SELECT 1 FROM orders WHERE status IN ('intent','sent','open','partially_filled')")
        await until(hedged, "the hedge opened and settled")
        await emu.stop()
        down_at = len(emu.engine.orders_list())

        async def tripped() -> bool:
            return breaker_alerts() == ["firing"]
        await until(tripped, "breaker tripped while the exchange is down")
        ((reason,),) = rows("SELECT json_extract(payload, '$.reason') FROM events WHERE kind = 'state' "
                            "AND json_extract(payload, '$.state') = 'PAUSED'")
        assert str(reason).startswith("breaker (transient): 3 consecutive failed cycles: cannot reach"), reason
        await asyncio.sleep(OUTAGE_S)  # the outage goes on; the keeper keeps trying, quietly
        assert proc.returncode is None
        assert rows("SELECT count(*) FROM events WHERE kind = 'command'") == [(0,)]  # no halt: no human needed
        assert len(emu.engine.orders_list()) == down_at
        emu.engine.credit("demo-key", "BTC", Decimal(2))  # a deposit while we could not see it
        await emu.start()  # the exchange is back (same port, same book)

        async def resumed() -> bool:
            return breaker_alerts() == ["firing", "resolved"] and abs(position() + 780_000) <= 7_800
        await until(resumed, "RUNNING again by itself and back in band")
        states = [s for (s,) in rows("SELECT json_extract(payload, '$.state') FROM events WHERE kind = 'state'")]
        assert states[-2:] == ["PAUSED", "RUNNING"], states
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), WAIT)
        await emu.stop()
    assert "Traceback" not in out.decode()
    assert proc.returncode == 0, out.decode()[-2000:]


async def test_a_clock_far_off_at_start_is_said_and_corrected(tmp_path: Path) -> None:
    """Our clock an hour behind the exchange's (as ccxt sees it): the exchange refuses the request time; the
    keeper says so in one line, lets ccxt measure the offset, and starts."""
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = "demo-key", "demo-secret"
    async with Emulator(default_settings(speed=1.0)) as emu:
        cfg = keeper_config(emu.url, tmp_path / "k.db")
        await upgrade(cfg.audit_url)
        store = await AuditStore.open(cfg.audit_url, cfg.keeper.name)
        venues = make_venues(cfg)
        venues["sim"].exchange.options["timeDifference"] = 3_600_000  # requests signed an hour in the past
        try:
            keeper = Keeper(cfg, store, venues, start_backoff=(0.05, 0.2))
            await asyncio.wait_for(keeper.start(), WAIT)
            (error,) = [e.payload["message"] for e in await store.tail(100) if e.kind == "error"]
            assert "clock is off (check NTP)" in error and "Traceback" not in error
            assert venues["sim"].exchange.options["adjustForTimeDifference"] is True
            assert abs(venues["sim"].exchange.options["timeDifference"]) < 60_000
            assert (await keeper.cycle()).sent == 2
        finally:
            for v in venues.values():
                await v.close()
            await store.close()
