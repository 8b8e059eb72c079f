"""Real Mosquitto for the MQTT tests: the machine's broker, or one we start (and stop) on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest

MACHINE_BROKER = ("127.0.0.1", 1883)


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def need(reason_ok: bool, reason: str) -> None:
    """Skip locally when a service is missing; under CI=true that is a failure."""
    if reason_ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the service is required)")
    pytest.skip(reason)


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range (32768+), so that no outgoing connection of
    this machine can take it while a broker we stop and start again is down (parallel workers and other runs
    open loopback connections all the time)."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


@dataclass
class OwnBroker:
    """A mosquitto we control: persistence on, so sessions and queued QoS 1 messages survive a restart."""

    folder: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    config: str = ""  # the whole mosquitto.conf instead of the default one; it must listen on `port`

    def start(self) -> None:
        conf = self.folder / "mosquitto.conf"
        # `user`: started as root, mosquitto would switch to its own user, which cannot write our folder,
        # and persistence would silently do nothing
        conf.write_text(self.config or f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                                       f"persistence_location {self.folder}/\nautosave_interval 1\n"
                                       f"user {getpass.getuser()}\n")
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto did not start on port {self.port}")
            time.sleep(0.05)
        if self.proc.poll() is not None:  # the port answers, but not our broker: someone else has it
            raise RuntimeError(f"mosquitto exited ({self.proc.returncode}): port {self.port} taken")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its persistence file
            self.proc.wait(10)
        self.proc = None


def mosquitto_binary() -> str:
    return shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def have_mosquitto() -> bool:
    return Path(mosquitto_binary()).exists()


@dataclass
class Recorder:
    """Every message seen on the subscribed topics, in arrival order."""

    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)

    def on(self, topic: str) -> list[bytes]:
        return [p for t, p, _ in self.messages if t == topic]

    async def wait_for(self, topic: str, predicate: object = None, within: float = 10.0) -> bytes:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for t, p, _ in self.messages:
                if t == topic and (predicate is None or predicate(p)):  # type: ignore[operator]
                    return p
            await asyncio.sleep(0.02)
        raise AssertionError(f"nothing on {topic} within {within}s; saw {sorted({t for t, _, _ in self.messages})}")


@contextlib.asynccontextmanager
async def subscribed(host: str, port: int, *topics: str, identifier: str | None = None,
                     clean_session: bool | None = None, username: str | None = None,
                     password: str | None = None) -> AsyncIterator[Recorder]:
    """Subscribe (QoS 1) and record in the background until the block exits."""
    rec = Recorder()
    async with aiomqtt.Client(host, port, identifier=identifier, clean_session=clean_session, username=username,
                              password=password) as client:
        for t in topics:
            await client.subscribe(t, qos=1)

        async def pump() -> None:
            async for m in client.messages:
                payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                rec.messages.append((str(m.topic), payload, bool(m.retain)))

        task = asyncio.create_task(pump())
        try:
            yield rec
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task
