"""The audit store gone and back (issue 17, items 10 and 10b): the failure is published straight to MQTT and
retained in the state, audited once the store returns, and trading resumes after a probe write with a
`resolved` alert; a dropped Postgres session is reconnected instead of halting the keeper."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore, EventKind
from hedged.model import TradingState
from hedged.sim.server import Emulator
from tests.keeper.conftest import keeper_config
from tests.mqtt.brokers import MACHINE_BROKER, need, port_open, subscribed
from tests.mqtt.test_bridge import running, until

HOST, PORT = MACHINE_BROKER
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIM_KEY", "demo-key")
    monkeypatch.setenv("SIM_SECRET", "demo-secret")


async def take_write_lock(conn: sqlite3.Connection, within: float) -> None:
    """BEGIN IMMEDIATE, tried again while the keeper's writes (every cycle) keep winning the lock."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            await asyncio.to_thread(conn.execute, "BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or loop.time() > deadline:
                raise


async def test_store_outage_alerts_over_mqtt_and_trading_resumes_when_it_is_back(emulator: Emulator,
                                                                                  tmp_path: Path) -> None:
    need(port_open(HOST, PORT), f"no Mosquitto on {HOST}:{PORT}")
    prefix = f"hedgedtest/{uuid.uuid4().hex[:10]}"
    db = tmp_path / "k.db"
    # a keeper name of its own: the MQTT client id derives from it, and the broker is shared.
    # quiet_every = 0: every cycle writes its rows. A keeper finds its store unwritable at its next write, and
    # one that has converged writes only a heartbeat every quiet_every (600 s by default) — so with the default
    # the outage is noticed only if the lock is taken while the keeper is still trading, which on a loaded
    # machine it often is not (the blocker's BEGIN waits out the keeper's writes, then the keeper goes quiet).
    cfg = keeper_config(emulator.url, db, keeper={"interval": 0.1, "name": f"o{uuid.uuid4().hex[:8]}"},
                        audit={"url": f"sqlite:///{db}", "write_timeout": 0.5, "quiet_every": 0},
                        mqtt={"enabled": True, "host": HOST, "port": PORT, "prefix": prefix, "keepalive": 5})
    await upgrade(cfg.audit_url)
    base = f"{prefix}/{cfg.keeper.name}"
    blocker: sqlite3.Connection | None = None
    async with subscribed(HOST, PORT, f"{base}/alerts", f"{base}/state") as rec, running(cfg) as cycles:
        await until(lambda: len(cycles) >= 3, within=60, what="cycles")

        def alerts() -> list[dict[str, Any]]:
            return [json.loads(p) for p in rec.on(f"{base}/alerts")]

        # another process takes the database's write lock and keeps it: every audit write now fails
        blocker = sqlite3.connect(db, timeout=5, check_same_thread=False,
                                  isolation_level=None)  # waits out the keeper's own writes
        await take_write_lock(blocker, within=90)
        try:
            await until(lambda: any(a.get("code") == "audit_store" and a.get("level") == "critical" for a in alerts()),
                        within=60, what="the audit_store alert on MQTT while the store is locked")
            state = json.loads(await rec.wait_for(f"{base}/state", lambda p: not json.loads(p)["audit"]["writable"],
                                                  within=30))
            assert state["halted"] and state["audit"]["error"]
            n = len(cycles)
            await until(lambda: len(cycles) >= n + 3, within=60, what="halted cycles")
            assert all(r.state is TradingState.HALTED for _, r in cycles[n:])
        finally:
            blocker.rollback() if blocker.in_transaction else None
            blocker.close()
        await until(lambda: cycles[-1][1].state is TradingState.RUNNING, within=60, what="trading to resume")
        # (the audit keeps an alert's code, level and message; its `data` is dropped by the store's allow-list)
        await until(lambda: any(a.get("code") == "audit_store" and a.get("level") == "info"
                                and "writable again" in a.get("message", "") for a in alerts()),
                    within=30, what="the resolved alert")
    store = await AuditStore.open(cfg.audit_url, cfg.keeper.name)
    try:
        audited = [e.payload for e in await store.events_after(0, 100_000, kinds=(EventKind.ALERT,))]
    finally:
        await store.close()
    codes = [(a.get("code"), a.get("level")) for a in audited if isinstance(a, dict)]
    assert ("audit_store", "critical") in codes  # delivered to the store once it came back
    assert ("audit_store", "info") in codes


async def test_dropped_postgres_sessions_reconnect_instead_of_halting(emulator: Emulator, tmp_path: Path) -> None:
    from tests.audit.conftest import ADMIN_DSN, pg_execute

    try:
        await pg_execute(ADMIN_DSN, "SELECT 1")
    except Exception as exc:
        need(False, f"no Postgres at {ADMIN_DSN}: {type(exc).__name__}")
    dbname = f"hedged_outage_{uuid.uuid4().hex[:8]}"
    await pg_execute(ADMIN_DSN, f"CREATE DATABASE {dbname}")
    url = ADMIN_DSN.rpartition("/")[0] + f"/{dbname}"
    try:
        cfg = keeper_config(emulator.url, tmp_path / "unused.db", keeper={"interval": 0.05},
                            audit={"url": url, "write_timeout": 2})
        await upgrade(cfg.audit_url)
        async with running(cfg) as cycles:
            await until(lambda: len(cycles) >= 3, within=60, what="cycles")
            for _ in range(15):  # a failover / idle-session killer, again and again, mid-run
                await pg_execute(ADMIN_DSN, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                            f"WHERE datname = '{dbname}' AND application_name = 'hedged-audit'")
                n = len(cycles)
                await until(lambda n=n: len(cycles) > n + 1, within=60, what="cycles after the kill")
            await until(lambda: cycles[-1][1].state is TradingState.RUNNING, within=60, what="RUNNING")
            assert cycles[-1][1].state is TradingState.RUNNING
    finally:
        await pg_execute(ADMIN_DSN, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
