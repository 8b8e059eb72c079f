"""Bounded teardown pieces (issue 17, item 1): what made SIGTERM hang forever, one at a time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiomqtt
import pytest

from hedged import shutdown
from hedged.alerts.commands import Verdict, signed_command
from hedged.alerts.mqtt import MqttBridge
from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore
from tests.keeper.conftest import keeper_config
from tests.mqtt.brokers import MACHINE_BROKER, need, port_open

HOST, PORT = MACHINE_BROKER


async def _stubborn(release: asyncio.Event, entered: asyncio.Event) -> None:
    """Work that swallows cancellation until released: a store query cancelled inside a driver thread."""
    entered.set()
    while not release.is_set():
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            continue


async def test_within_returns_on_time_even_if_the_work_ignores_cancellation() -> None:
    release, entered = asyncio.Event(), asyncio.Event()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await shutdown.within(_stubborn(release, entered), 0.2)
    took = time.monotonic() - started
    release.set()
    assert took < 10, took  # asyncio.wait_for would wait here until `release`, i.e. forever


@pytest.mark.timeout(120)
async def test_bridge_close_is_bounded_while_a_command_is_stuck_being_audited(tmp_path: Path) -> None:
    need(port_open(HOST, PORT), f"no Mosquitto on {HOST}:{PORT}")
    prefix = f"hedgedtest/{uuid.uuid4().hex[:10]}"
    import os

    os.environ["SHUT_CMD_SECRET"] = "shut-cmd-secret-8Kq"
    cfg = keeper_config("http://127.0.0.1:9", tmp_path / "k.db", mqtt={
        "enabled": True, "host": HOST, "port": PORT, "prefix": prefix, "commands": True,
        "command_secret_env": "SHUT_CMD_SECRET"})
    await upgrade(cfg.audit_url)
    store = await AuditStore.open(cfg.audit_url, cfg.keeper.name)
    release, entered = asyncio.Event(), asyncio.Event()

    async def on_command(_v: Verdict) -> None:
        await _stubborn(release, entered)

    bridge = MqttBridge(cfg, store, command_secret="shut-cmd-secret-8Kq", on_command=on_command)
    try:
        await bridge.start()
        await asyncio.wait_for(bridge.connected.wait(), 30)
        async with aiomqtt.Client(HOST, PORT) as op:
            await op.publish(f"{prefix}/{cfg.keeper.name}/cmd",
                             signed_command("shut-cmd-secret-8Kq", "pause", ts=time.time()), qos=1)
            await asyncio.wait_for(entered.wait(), 30)
        started = time.monotonic()
        closing = asyncio.ensure_future(bridge.close())
        done, _ = await asyncio.wait({closing}, timeout=30)  # generous: the bound is 2 x CLOSE_TIMEOUT
        took = time.monotonic() - started
        assert done, "MqttBridge.close() still waiting on a command stuck in the store after 30 s"
        assert took < 30
    finally:
        release.set()
        if bridge._task is not None:  # let the stuck task see its cancellation, now that it can
            bridge._task.cancel()
            await asyncio.wait({bridge._task}, timeout=10)
        await store.close()


def test_a_lingering_driver_thread_does_not_keep_the_process_alive() -> None:
    code = ("import threading; from hedged import shutdown\n"
            "threading.Thread(target=threading.Event().wait, name='aiosqlite-like').start()\n"
            "shutdown.exit_when_stuck(0, grace=0.2)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "shutdown.threads_left" in proc.stdout + proc.stderr


def test_leftover_tasks_get_a_bounded_grace() -> None:
    left: list[asyncio.Task[None]] = []

    async def main() -> str:
        release, entered = asyncio.Event(), asyncio.Event()
        left.append(asyncio.get_running_loop().create_task(_stubborn(release, entered), name="stubborn"))
        await asyncio.sleep(0)
        return "done"

    started = time.monotonic()
    assert shutdown.run(main(), grace=0.2) == "done"  # asyncio.run would never return here
    assert time.monotonic() - started < 20
    assert not left[0].done()  # it really was stuck; end it here rather than in the garbage collector
    left[0].get_coro().close()
