"""sd_notify through a real `hedged run` process and a fake $NOTIFY_SOCKET: READY after reconciliation,
WATCHDOG=1 while cycles complete, none while a cycle is wedged, STOPPING on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

from hedged.sdnotify import SdNotify, alive

WAIT = 60.0


def test_alive_needs_a_recent_cycle() -> None:
    assert alive(None, 100.0, 2.0)  # start-up: bounded by request timeouts
    assert alive(99.0, 100.0, 2.0) and not alive(97.0, 100.0, 2.0)


def test_notify_without_socket_does_nothing_and_abstract_names_work(tmp_path: Path) -> None:
    assert not SdNotify({}).enabled and not SdNotify({}).send("READY=1")
    n = SdNotify({"NOTIFY_SOCKET": "@hedged-test", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"})
    assert n.address == "\0hedged-test" and n.watchdog is None  # another process's watchdog
    assert SdNotify({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "3000000"}).watchdog == 3.0


class Listener:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[tuple[float, str]] = []

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def names(self) -> list[str]:
        return [m.split("=", 1)[0] + ("=1" if m.endswith("=1") else "") for _, m in self.messages]

    async def until(self, cond: object, what: str) -> None:
        deadline = time.monotonic() + WAIT
        while True:
            self.drain()
            if cond():  # type: ignore[operator]
                return
            assert time.monotonic() < deadline, f"not within {WAIT}s: {what}: {self.messages[-10:]}"
            await asyncio.sleep(0.05)


async def test_ready_watchdog_wedge_and_stopping(emulator: object, tmp_path: Path) -> None:
    from .test_start import run_toml

    url = emulator.url  # type: ignore[attr-defined]
    port = int(url.rsplit(":", 1)[1])
    cfg = run_toml(tmp_path, port)
    text = cfg.read_text().replace("timeout = 1", "timeout = 60")  # a wedged request, not a timed-out one
    cfg.write_text(text)
    listener = Listener(tmp_path / "notify.sock")
    env = {**os.environ, "SIM_KEY": "demo-key", "SIM_SECRET": "demo-secret",
           "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hedged", "run", "--config", str(cfg), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await listener.until(lambda: "READY=1" in listener.names(), "READY=1")
        ready = listener.names().index("READY=1")
        await listener.until(lambda: listener.names()[ready:].count("WATCHDOG=1") >= 3, "pings after READY")
        assert any(m.startswith("STATUS=RUNNING: cycle") for _, m in listener.messages), listener.messages

        emulator.faults.add({"kind": "hang", "rate": 1.0, "hang_s": 8})  # type: ignore[attr-defined]
        t_fault = time.monotonic()

        def gap() -> bool:  # a stretch longer than the watchdog period without WATCHDOG=1, while wedged
            pings = [t for t, m in listener.messages if m == "WATCHDOG=1" and t >= t_fault]
            last = pings[-1] if pings else t_fault
            return time.monotonic() - last > 3.0
        await listener.until(gap, "no WATCHDOG=1 while the cycle is wedged")
        wedged = [m for t, m in listener.messages if t >= t_fault and m.startswith("STATUS=")]
        assert wedged, "STATUS= keeps coming while wedged (the process is alive, the cycle is not)"
        emulator.faults.clear()  # type: ignore[attr-defined]
        # the hung requests still answer after hang_s; then cycles complete and pings resume
        t_clear = time.monotonic()
        await listener.until(lambda: any(m == "WATCHDOG=1" and t > t_clear for t, m in listener.messages),
                             "pings resume after the wedge")
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), WAIT)
        listener.drain()
        assert "STOPPING=1" in listener.names()
        assert listener.names().index("STOPPING=1") > ready
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        listener.sock.close()
