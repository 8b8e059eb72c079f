"""The shipped broker setup (deploy/mosquitto/), enforced by a real Mosquitto: nobody anonymous, only the keeper
publishes its topics, only the operator publishes commands, nobody else reads; then the keeper itself runs
under it. The ACL under test is the shipped file itself; the config is hedged.conf with only its host paths and
port replaced.

Mosquitto drops a refused publish silently (the client still gets its PUBACK) and still grants a refused
subscription (it filters at delivery). So a refusal is shown by absence, made meaningful by a later allowed
message: every refused one was acknowledged before the allowed one was sent, and Mosquitto routes a message
to its subscribers before acknowledging it, so once the allowed one has arrived, a refused one that was
going to arrive would have (and each check waits a further second anyway)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest

from hedged.alerts.commands import signed_command
from hedged.audit.store import EventKind
from hedged.model import TradingState
from hedged.sim.server import Emulator
from tests.keeper.conftest import keeper_config

from .brokers import OwnBroker, Recorder, free_port, have_mosquitto, need, subscribed
from .test_bridge import audited, running, until

pytestmark = pytest.mark.timeout(60)
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
HOST = "127.0.0.1"
BASE = "hedged/main"  # the shipped ACL's keeper: prefix "hedged", name "main"
NODE = "hedged_main"  # its Home Assistant node id
PASSWORDS = {"hedged": "keeper-pw-Tq48", "operator": "operator-pw-Lm93", "homeassistant": "ha-pw-Rc15",
             "intruder": "intruder-pw-Xe62"}
SETTLE = 1.0  # how long a refused message is given to show up anyway, after the later allowed one arrived


def passwd_binary() -> str:
    return shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def broker_config(port: int, folder: Path) -> str:
    """hedged.conf with only what is host specific replaced: the port, a tmp password file, the ACL file (the
    shipped one, read in place), persistence in tmp; a log to read; and the user to run as (as root, Mosquitto
    would drop to `mosquitto`, who cannot read the test's tmp folder)."""
    text = (DEPLOY / "hedged.conf").read_text()
    assert re.search(r"^allow_anonymous false$", text, re.M)
    for old, new in {
        "password_file /etc/mosquitto/passwd": f"password_file {folder / 'passwd'}",
        "acl_file /etc/mosquitto/hedged.acl": f"acl_file {DEPLOY / 'acl'}",
        "listener 1883 127.0.0.1": f"listener {port} 127.0.0.1",
    }.items():
        text, n = re.subn(rf"^{re.escape(old)}$", new, text, flags=re.M)
        assert n == 1, f"hedged.conf no longer has the line {old!r}"
    user = pwd.getpwuid(os.geteuid()).pw_name
    return (f"{text}\npersistence_location {folder}/\nlog_dest file {folder / 'mosquitto.log'}\nlog_type all\n"
            f"user {user}\n")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[OwnBroker]:
    need(have_mosquitto() and Path(passwd_binary()).exists(), "mosquitto / mosquitto_passwd not installed")
    folder = tmp_path / "broker"
    folder.mkdir()
    for i, (user, password) in enumerate(PASSWORDS.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run([passwd_binary(), "-b", *create, str(folder / "passwd"), user, password], check=True,
                       capture_output=True)
    port = free_port()
    own = OwnBroker(folder, port=port, config=broker_config(port, folder))
    own.start()
    try:
        yield own
    finally:
        own.stop()


def log_of(broker: OwnBroker) -> str:
    path = broker.folder / "mosquitto.log"
    return path.read_text(errors="replace") if path.exists() else ""


def as_user(broker: OwnBroker, user: str | None, **kw: object) -> aiomqtt.Client:
    return aiomqtt.Client(HOST, broker.port, username=user, password=PASSWORDS[user] if user else None,
                          **kw)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def watching(broker: OwnBroker, user: str, *topics: str) -> AsyncIterator[Recorder]:
    async with subscribed(HOST, broker.port, *topics, username=user, password=PASSWORDS[user]) as rec:
        yield rec


async def die_with_will(broker: OwnBroker, user: str, topic: str, payload: str) -> None:
    """A client of `user` with a last will, killed after it connected (no DISCONNECT): the broker sends the will
    if the ACL lets that user publish there."""
    script = ("import asyncio, os, sys, aiomqtt\n"
              "async def main():\n"
              "    will = aiomqtt.Will(sys.argv[3], sys.argv[4].encode(), qos=1, retain=True)\n"
              "    async with aiomqtt.Client('127.0.0.1', int(sys.argv[1]), username=sys.argv[2],\n"
              "                              password=os.environ['PW'], will=will):\n"
              "        os._exit(0)\n"
              "asyncio.run(main())\n")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(broker.port), user, topic, payload,
                                                env={**os.environ, "PW": PASSWORDS[user]})
    assert await asyncio.wait_for(proc.wait(), 20) == 0


def spoofed(*recorders: Recorder) -> list[tuple[str, bytes]]:
    return [(t, p) for rec in recorders for t, p, _ in rec.messages if b"spoof" in p]


async def test_anonymous_clients_and_wrong_passwords_are_refused(broker: OwnBroker) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(HOST, broker.port):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(HOST, broker.port, username="hedged", password="not-the-password"):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(HOST, broker.port, username="nobody", password=PASSWORDS["hedged"]):
            pass
    async with as_user(broker, "hedged"):  # while the right password gets in
        pass


async def test_only_the_keeper_publishes_its_topics_only_the_operator_commands_nobody_else_reads(
        broker: OwnBroker) -> None:
    state, cmd, status = f"{BASE}/state", f"{BASE}/cmd", f"{BASE}/status"
    drift = f"homeassistant/sensor/{NODE}/btc_drift/config"
    halted = f"homeassistant/binary_sensor/{NODE}/halted/config"
    async with (
        watching(broker, "operator", "hedged/#") as op,
        watching(broker, "homeassistant", "hedged/#", "homeassistant/#") as ha,
        watching(broker, "hedged", cmd, "homeassistant/status") as keeper,
        watching(broker, "intruder", "#", "hedged/#", state, cmd, "homeassistant/#") as intr,
        as_user(broker, "hedged") as k, as_user(broker, "operator") as o, as_user(broker, "homeassistant") as h,
        as_user(broker, "intruder") as i,
    ):
        # the keeper publishes its topics and its discovery; the operator and Home Assistant see them
        for topic, payload in ((status, b"online"), (state, b'{"state":"RUNNING"}'), (drift, b"{}"),
                               (halted, b"{}")):
            await k.publish(topic, payload, qos=1, retain=True)
        for suffix in ("alerts", "events", "cmd/result"):
            await k.publish(f"{BASE}/{suffix}", b"{}", qos=1)
        for suffix in ("status", "state", "alerts", "events", "cmd/result"):
            await op.wait_for(f"{BASE}/{suffix}")
            await ha.wait_for(f"{BASE}/{suffix}")
        await ha.wait_for(drift)
        await ha.wait_for(halted)

        # nobody else publishes them: the operator, Home Assistant, an intruder; each followed by an allowed one
        for client in (o, h, i):
            for topic in (status, state, f"{BASE}/alerts", f"{BASE}/events", f"{BASE}/cmd/result", drift, halted):
                await client.publish(topic, b"spoof", qos=1, retain=True)
        await h.publish("homeassistant/status", b"online", qos=1)  # Home Assistant's birth message: allowed
        await keeper.wait_for("homeassistant/status", lambda p: p == b"online")

        # only the operator commands (the intruder's and Home Assistant's publish first, then the operator's)
        for client in (i, h, k):
            await client.publish(cmd, b"spoof-cmd", qos=1)
        await o.publish(cmd, b"operator-cmd", qos=1)
        await keeper.wait_for(cmd, lambda p: p == b"operator-cmd")
        await op.wait_for(cmd, lambda p: p == b"operator-cmd")

        # the keeper publishes its own topics only: not another keeper's, not another device's discovery
        for topic in ("hedged/other/state", "homeassistant/sensor/hedged_other/x/config",
                      "homeassistant/sensor/hedged_main_x/x/config", "homeassistant/status", "hedged/main"):
            await k.publish(topic, b"spoof-elsewhere", qos=1)
        await k.publish(state, b'{"state":"HALTED"}', qos=1, retain=True)
        await op.wait_for(state, lambda p: p == b'{"state":"HALTED"}')
        await ha.wait_for(state, lambda p: p == b'{"state":"HALTED"}')

        await asyncio.sleep(SETTLE)
        assert spoofed(op, ha, keeper) == []
        assert [t for t, _, _ in ha.messages if t.startswith("homeassistant/sensor/")] == [drift]
        assert intr.messages == []  # the intruder read nothing of all that

    # nor was any of it retained: a late reader sees the keeper's messages, the intruder nothing
    async with (
        watching(broker, "operator", "hedged/#") as late_op,
        watching(broker, "homeassistant", "homeassistant/#") as late_ha,
        watching(broker, "intruder", "#") as late_intr,
    ):
        await late_op.wait_for(state)
        await late_ha.wait_for(halted)
        await asyncio.sleep(0.3)
        assert sorted((t, p) for t, p, _ in late_op.messages) == [(state, b'{"state":"HALTED"}'),
                                                                  (status, b"online")]
        assert sorted(t for t, _, _ in late_ha.messages) == [halted, drift]
        assert late_intr.messages == []
    # the refusals were the ACL's (the broker logs each one)
    denied = re.findall(r"Denied PUBLISH from \S+ \(d\d, q\d, r\d, m\d+, '([^']+)'", log_of(broker))
    assert len(denied) == 3 * 7 + 3 + 5, denied


async def test_only_the_keepers_last_will_is_delivered(broker: OwnBroker) -> None:
    status = f"{BASE}/status"
    async with watching(broker, "operator", status) as op:
        for user in ("intruder", "operator", "homeassistant"):
            await die_with_will(broker, user, status, f"spoof-will-{user}")
        await die_with_will(broker, "hedged", status, "offline")
        await op.wait_for(status, lambda p: p == b"offline")
        await asyncio.sleep(SETTLE)
        assert op.on(status) == [b"offline"]


async def test_the_keeper_runs_under_the_acl(emulator: Emulator, broker: OwnBroker, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "cmd-secret-Jd70q"
    monkeypatch.setenv("HEDGED_ACL_MQTT_PW", PASSWORDS["hedged"])
    monkeypatch.setenv("HEDGED_ACL_CMD_SECRET", secret)
    cfg = keeper_config(emulator.url, tmp_path / "k.db", keeper={"name": "main", "interval": 0.1}, mqtt={
        "enabled": True, "host": HOST, "port": broker.port, "prefix": "hedged", "keepalive": 2,
        "username": "hedged", "password_env": "HEDGED_ACL_MQTT_PW", "homeassistant": True, "commands": True,
        "command_secret_env": "HEDGED_ACL_CMD_SECRET"})
    discovery = f"homeassistant/+/{NODE}/+/config"

    def configs(rec: Recorder) -> list[str]:
        return [t for t, _, _ in rec.messages if t.startswith("homeassistant/") and t.endswith("/config")]

    async with watching(broker, "operator", "hedged/#") as op, running(cfg) as cycles:
        assert json.loads(await op.wait_for(f"{BASE}/alerts"))["code"] == "start"
        await op.wait_for(f"{BASE}/events", lambda p: json.loads(p)["event"] == "filled")
        await until(lambda: len(cycles) >= 3, what="3 cycles")
        # a late operator and Home Assistant: the retained status, state and discovery
        async with (watching(broker, "operator", f"{BASE}/status", f"{BASE}/state") as late,
                    watching(broker, "homeassistant", "homeassistant/#") as ha):
            assert await late.wait_for(f"{BASE}/status") == b"online"
            state = json.loads(await late.wait_for(f"{BASE}/state"))
            assert state["state"] == "RUNNING" and "sim:BTC/USD:BTC" in state["instruments"]
            # what a late subscriber is handed first on each topic is the retained copy (the keeper may publish
            # a newer state, live and so not flagged retained, while the subscription is being made)
            first: dict[str, bool] = {}
            for topic, _, retained in late.messages:
                first.setdefault(topic, retained)
            assert first == {f"{BASE}/status": True, f"{BASE}/state": True}, late.messages
            await until(lambda: len(configs(ha)) >= 9, within=10, what="discovery")
            assert all(aiomqtt.Topic(t).matches(discovery) for t in configs(ha))
            assert sum(t.startswith("homeassistant/binary_sensor/") for t in configs(ha)) == 1
            # Home Assistant restarts and says so: the keeper reads that and sends discovery again
            async with as_user(broker, "homeassistant") as h:
                await h.publish("homeassistant/status", b"online", qos=1)
            await until(lambda: len(configs(ha)) >= 18, within=10, what="discovery sent again")

        # a validly signed command from the intruder never reaches the keeper; the operator's does
        async with as_user(broker, "intruder") as i, as_user(broker, "operator") as o:
            await i.publish(f"{BASE}/cmd", signed_command(secret, "halt", ts=time.time(), reason="intruder"), qos=1)
            await o.publish(f"{BASE}/cmd", signed_command(secret, "pause", ts=time.time(), reason="operator"), qos=1)
        result = json.loads(await op.wait_for(f"{BASE}/cmd/result"))
        assert result["accepted"] is True and result["command"] == "pause", result
        await until(lambda: cycles[-1][1].state is TradingState.PAUSED, within=10, what="PAUSED")
        await asyncio.sleep(SETTLE)
        assert len(op.on(f"{BASE}/cmd/result")) == 1
        assert cycles[-1][1].state is TradingState.PAUSED

    async with watching(broker, "operator", f"{BASE}/status") as after:
        assert await after.wait_for(f"{BASE}/status") == b"offline"  # said on the way out, retained
    commands = [c.payload for c in await audited(cfg, EventKind.COMMAND) if c.payload.get("via") == "mqtt"]
    assert [c["state"] for c in commands] == ["PAUSED"]
    assert await audited(cfg, EventKind.COMMAND_REFUSED) == []
    denied = re.findall(r"Denied PUBLISH from (\S+) .*'([^']+)'", log_of(broker))
    assert [d for d in denied if d[0] == "hedged-main"] == []  # the keeper published nowhere the ACL refuses
    assert len(denied) == 1, denied  # the intruder's command, and only that
