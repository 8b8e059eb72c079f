"""The keeper on MQTT, against real Mosquitto: status and last will, retained state, events, alerts through
a broker outage, Home Assistant discovery, and signed commands. The exchange is the local one, via ccxt."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from hedged.alerts.commands import signed_command
from hedged.audit.store import AuditStore, EventKind
from hedged.config import Config
from hedged.keeper import CycleResult
from hedged.model import Snapshot, TradingState
from hedged.service import run_keeper
from hedged.sim.server import Emulator
from tests.keeper.conftest import keeper_config

from .brokers import MACHINE_BROKER, OwnBroker, Recorder, have_mosquitto, need, port_open, subscribed

pytestmark = pytest.mark.timeout(120)
HOST, PORT = MACHINE_BROKER
# Unique per run: the bridge's MQTT client id is hedged-<keeper name>, and the shared broker disconnects a
# client when another connects with the same id (another worktree running these tests at the same moment).
NAME = f"t{uuid.uuid4().hex[:8]}"
SECRETS = {"SIM_KEY": "demo-key", "SIM_SECRET": "demo-secret", "HEDGED_TEST_MQTT_PW": "mqtt-pw-Zq81x",
           "HEDGED_TEST_CMD_SECRET": "cmd-secret-Wv27k"}


@pytest.fixture(autouse=True)
def _env() -> None:
    os.environ.update(SECRETS)


def machine_broker() -> None:
    need(port_open(HOST, PORT), f"no Mosquitto on {HOST}:{PORT}")


def config(emu: Emulator, tmp: Path, prefix: str, port: int = PORT, **mqtt: Any) -> Config:
    return keeper_config(emu.url, tmp / "k.db", keeper={"interval": 0.1, "name": NAME}, mqtt={
        "enabled": True, "host": HOST, "port": port, "prefix": prefix, "keepalive": 10, "username": "keeper",
        "password_env": "HEDGED_TEST_MQTT_PW", **mqtt})


@contextlib.asynccontextmanager
async def running(cfg: Config) -> AsyncIterator[list[tuple[float, CycleResult]]]:
    """run_keeper in a task (as `hedged run` does), recording each cycle's end time; stopped cleanly."""
    stop = asyncio.Event()
    cycles: list[tuple[float, CycleResult]] = []

    def on_cycle(result: CycleResult, _snap: Snapshot | None) -> None:
        cycles.append((time.monotonic(), result))

    task = asyncio.create_task(run_keeper(cfg, stop=stop, on_cycle=on_cycle, install_signals=False))
    try:
        yield cycles
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


async def until(predicate: Callable[..., bool], within: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def audited(cfg: Config, kind: str) -> list[Any]:
    async with await AuditStore.open(cfg.audit_url, cfg.keeper.name, read_only=True) as store:
        return [e for e in await store.events_after(0, 100_000) if e.kind == kind]


def no_secrets(*recorders: Recorder) -> None:
    for rec in recorders:
        for topic, payload, _ in rec.messages:
            for name, value in SECRETS.items():
                assert value.encode() not in payload, f"{name} leaked on {topic}"


async def clear_retained(port: int, prefix: str, topics: list[str]) -> None:
    """Leave the shared broker as we found it."""
    with contextlib.suppress(aiomqtt.MqttError):
        async with aiomqtt.Client(HOST, port) as c:
            for t in topics:
                await c.publish(t, b"", qos=1, retain=True)


# --- the machine's broker ---------------------------------------------------------------------------------


async def test_late_subscriber_sees_online_and_state_events_follow_orders_offline_on_stop(
        emulator: Emulator, tmp_path: Path) -> None:
    machine_broker()
    prefix = f"hedgedtest/{uuid.uuid4().hex[:10]}"
    base = f"{prefix}/{NAME}"
    cfg = config(emulator, tmp_path, prefix, homeassistant=True, discovery_prefix=f"{prefix}/ha")
    async with subscribed(HOST, PORT, f"{base}/events", f"{base}/alerts") as early, running(cfg) as cycles:
        await early.wait_for(f"{base}/events", lambda p: json.loads(p)["event"] == "filled")
        await until(lambda: len(cycles) >= 3, what="3 cycles")
        async with subscribed(HOST, PORT, f"{base}/status", f"{base}/state", f"{prefix}/ha/#") as late:
            assert await late.wait_for(f"{base}/status") == b"online"
            assert all(retained for t, _, retained in late.messages if t == f"{base}/status")
            state = json.loads(await late.wait_for(f"{base}/state"))
            assert state["state"] == "RUNNING" and state["halted"] is False
            btc = state["instruments"]["sim:BTC/USD:BTC"]
            for field in ("exposure_usd", "hedge", "target", "drift", "mark", "funding_rate",
                          "funding_cost_usd_per_day", "liquidation_distance_pct", "hedge_ratio"):
                assert field in btc, field
            assert Decimal(btc["hedge"]) < 0  # short the BTC held
            await until(lambda: len([m for m in late.messages if m[0].endswith("/config")]) >= 9,
                        what="discovery")
            configs = [json.loads(p) for t, p, _ in late.messages if t.endswith("/config")]
            assert {c["availability_topic"] for c in configs} == {f"{base}/status"}
            assert {c["state_topic"] for c in configs} == {f"{base}/state"}
            assert sum(1 for c in configs if c["name"] == "halted") == 1
            # Home Assistant restarts: discovery is sent again
            async with aiomqtt.Client(HOST, PORT) as ha:
                await ha.publish(f"{prefix}/ha/status", b"online", qos=1)
            await until(lambda: len([m for m in late.messages if m[0].endswith("/config")]) >= 18,
                        what="discovery re-published")
    async with subscribed(HOST, PORT, f"{base}/status") as after:
        assert await after.wait_for(f"{base}/status") == b"offline"  # said on the way out, retained

    # events: every order the store sent is on the events topic, in audit order
    sent_audit = [e.payload["client_order_id"] for e in await audited(cfg, EventKind.SENT)]
    sent_mqtt = [json.loads(p)["data"]["client_order_id"] for p in early.on(f"{base}/events")
                 if json.loads(p)["event"] == "sent"]
    assert sent_mqtt == sent_audit and sent_audit
    alerts = [json.loads(p) for p in early.on(f"{base}/alerts")]
    assert alerts[0]["code"] == "start" and alerts[-1]["code"] == "stop"
    assert any(a["code"] == "fill" for a in alerts)
    assert alerts == [e.payload for e in await audited(cfg, EventKind.ALERT)]
    no_secrets(early, late, after)
    discovery = [t for t, _, _ in late.messages if t.endswith("/config")]
    await clear_retained(PORT, prefix, [f"{base}/status", f"{base}/state", *set(discovery)])


def _toml(cfg_dir: Path, emu: Emulator, prefix: str, keepalive: int, mqtt_extra: str = "") -> Path:
    cfg_dir.mkdir(exist_ok=True)
    path = cfg_dir / "hedged.toml"
    path.write_text(f"""
[keeper]
name = "{NAME}"
interval = 0.2

[venues.sim]
exchange = "bybit"
url = "{emu.url}"
api_key_env = "SIM_KEY"
secret_env = "SIM_SECRET"
timeout = 2

[[hedge]]
asset = "BTC"
venue = "sim"
instrument = "BTC/USD:BTC"

[audit]
url = "sqlite:///{cfg_dir / 'k.db'}"

[mqtt]
enabled = true
host = "{HOST}"
port = {PORT}
prefix = "{prefix}"
keepalive = {keepalive}
{mqtt_extra}""")
    return path


async def test_kill_9_gives_offline_from_the_last_will_within_one_and_a_half_keepalives(
        emulator: Emulator, tmp_path: Path) -> None:
    machine_broker()
    prefix = f"hedgedtest/{uuid.uuid4().hex[:10]}"
    status = f"{prefix}/{NAME}/status"
    keepalive = 2
    cfg_file = _toml(tmp_path, emulator, prefix, keepalive)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "hedged", "run", "--config", str(cfg_file),
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with subscribed(HOST, PORT, status) as rec:
            await rec.wait_for(status, lambda p: p == b"online", within=30)
            await asyncio.sleep(0.5)
            killed = time.monotonic()
            proc.send_signal(signal.SIGKILL)
            await rec.wait_for(status, lambda p: p == b"offline", within=1.5 * keepalive)
            took = time.monotonic() - killed
        assert took <= 1.5 * keepalive, took
        assert rec.on(status)[-1] == b"offline"
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), timeout=10)
    async with subscribed(HOST, PORT, status) as late:  # retained for whoever looks later
        assert await late.wait_for(status) == b"offline"
    await clear_retained(PORT, prefix, [status, f"{prefix}/{NAME}/state"])


# --- a broker we stop and restart -------------------------------------------------------------------------


async def test_broker_outage_never_slows_cycles_and_alerts_arrive_in_order_as_audited(
        emulator: Emulator, tmp_path: Path) -> None:
    need(have_mosquitto(), "mosquitto binary not installed")
    broker = OwnBroker(tmp_path / "broker")
    broker.folder.mkdir()
    broker.start()
    prefix = "outage"
    alerts_topic = f"{prefix}/{NAME}/alerts"
    cfg = config(emulator, tmp_path, prefix, port=broker.port)
    try:
        # a persistent QoS 1 session: the broker keeps what arrives for it while it is away
        async with subscribed(HOST, broker.port, alerts_topic, identifier="watcher", clean_session=False):
            pass
        async with running(cfg) as cycles:
            async with subscribed(HOST, broker.port, alerts_topic, identifier="watcher", clean_session=False) as r1:
                await r1.wait_for(alerts_topic, lambda p: json.loads(p)["code"] == "start")
            await until(lambda: len(cycles) >= 10, what="10 cycles")
            before = _pace(cycles[-8:])
            async with await AuditStore.open(cfg.audit_url, NAME) as store:
                mark = await store.head_id()
                broker.stop()
                outage_start = len(cycles)
                # raise alerts while the broker is down: state changes, and a deposit to trade
                for state in (TradingState.REDUCING, TradingState.RUNNING, TradingState.PAUSED,
                              TradingState.RUNNING):
                    await store.command(state, via="test", reason="outage drill")
                    n = len(cycles)
                    await until(lambda n=n: len(cycles) >= n + 3, what="cycles during the outage")
                fills_before = len(await audited(cfg, EventKind.FILL))
                emulator.engine.credit("demo-key", "BTC", Decimal(1))
                await until(lambda: len(cycles) >= outage_start + 40, what="40 cycles in the outage")
                during = _pace(cycles[outage_start + 2:])
                assert len(await audited(cfg, EventKind.FILL)) > fills_before  # trading went on
                assert (broker.folder / "mosquitto.db").exists()  # the watcher's session survives the restart
                broker.start()
                expected = [e.payload for e in await audited(cfg, EventKind.ALERT) if e.id > mark]
                assert len(expected) >= 4
                async with subscribed(HOST, broker.port, alerts_topic, identifier="watcher",
                                      clean_session=False) as r2:
                    want = expected[-1]["id"]
                    await r2.wait_for(alerts_topic, lambda p: json.loads(p)["id"] == want, within=30)
                    got = [json.loads(p) for p in r2.on(alerts_topic)]
        got_ids = [a["id"] for a in got]
        start = got_ids.index(expected[0]["id"])
        assert got[start:start + len(expected)] == expected  # every one, in order, exactly as audited
        # a dead broker does not slow the cycles: same pace as before, within scheduling noise
        print(f"pace before={before:.3f}s during={during:.3f}s alerts={len(expected)}")
        assert during <= before * 1.5 + 0.05, (before, during)
    finally:
        broker.stop()


def _pace(cycles: list[tuple[float, CycleResult]]) -> float:
    gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(cycles))
    return gaps[len(gaps) // 2]


# --- commands ---------------------------------------------------------------------------------------------


async def test_signed_commands_halt_and_resume_and_bad_ones_are_refused_and_audited(
        emulator: Emulator, tmp_path: Path) -> None:
    machine_broker()
    prefix = f"hedgedtest/{uuid.uuid4().hex[:10]}"
    base = f"{prefix}/{NAME}"
    secret = SECRETS["HEDGED_TEST_CMD_SECRET"]
    cfg = config(emulator, tmp_path, prefix, commands=True, command_secret_env="HEDGED_TEST_CMD_SECRET")

    def orders() -> int:
        return len(list(emulator.engine.orders_list()))

    async with subscribed(HOST, PORT, f"{base}/#") as rec, aiomqtt.Client(HOST, PORT) as op, running(cfg) as cycles:
        await rec.wait_for(f"{base}/events", lambda p: json.loads(p)["event"] == "filled")
        await until(lambda: len(cycles) >= 3, what="cycles")

        async def send(payload: bytes) -> dict[str, Any]:
            n = len(rec.on(f"{base}/cmd/result"))
            await op.publish(f"{base}/cmd", payload, qos=1)
            await until(lambda: len(rec.on(f"{base}/cmd/result")) > n, within=10, what="a command result")
            result: dict[str, Any] = json.loads(rec.on(f"{base}/cmd/result")[n])
            return result

        halt = signed_command(secret, "halt", ts=time.time(), reason="drill")
        assert (await send(halt))["accepted"] is True
        await until(lambda: cycles[-1][1].state is TradingState.HALTED, within=5, what="HALTED")
        before = orders()
        emulator.engine.credit("demo-key", "BTC", Decimal(2))  # a reason to trade, while halted
        n = len(cycles)
        await until(lambda: len(cycles) >= n + 10, what="10 halted cycles")
        assert orders() == before  # no orders while halted
        state = json.loads(await rec.wait_for(f"{base}/state", lambda p: json.loads(p)["halted"]))
        assert state["state"] == "HALTED"

        refused = [
            json.dumps({"command": "resume", "ts": time.time()}).encode(),  # unsigned
            signed_command("not-the-secret", "resume", ts=time.time()),  # wrongly signed
            halt,  # replayed
            signed_command(secret, "resume", ts=time.time() - 120),  # stale
        ]
        for bad in refused:
            verdict = await send(bad)
            assert verdict["accepted"] is False, verdict
        await asyncio.sleep(0.5)
        assert cycles[-1][1].state is TradingState.HALTED and orders() == before

        assert (await send(signed_command(secret, "resume", ts=time.time())))["accepted"] is True
        await until(lambda: orders() > before, within=10, what="trading to resume")

        # the operator's command line: signs, sends, prints the keeper's answer
        cli_cfg = _toml(tmp_path / "operator", emulator, prefix, 2,
                        mqtt_extra='commands = true\ncommand_secret_env = "HEDGED_TEST_CMD_SECRET"\n')
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hedged", "command", "pause", "--config", str(cli_cfg), "-r", "cli drill",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode == 0, err.decode()
        assert json.loads(out)["state"] == "PAUSED"
        await until(lambda: cycles[-1][1].state is TradingState.PAUSED, within=5, what="PAUSED")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hedged", "command", "liquidate", "--config", str(cli_cfg),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode == 2 and err.decode().count("\n") == 1 and "action" in err.decode()
    refusals = await audited(cfg, EventKind.COMMAND_REFUSED)
    reasons = [r.payload["reason"] for r in refusals]
    assert len(refusals) == 4, reasons
    assert reasons[0].startswith("malformed") and reasons[1] == "bad signature"
    assert reasons[2].startswith("replayed") and reasons[3].startswith("stale")
    accepted = [c.payload for c in await audited(cfg, EventKind.COMMAND) if c.payload["via"] == "mqtt"]
    assert [c["state"] for c in accepted] == ["HALTED", "RUNNING", "PAUSED"]
    no_secrets(rec)
    await clear_retained(PORT, prefix, [f"{base}/status", f"{base}/state"])
