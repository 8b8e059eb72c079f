"""A keeper run as `hedged run` runs it (run_keeper, [metrics] enabled) against the in-process exchange."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hedged.config import Config
from hedged.service import run_keeper
from hedged.sim.server import Emulator
from hedged.sim.settings import default_settings
from tests.keeper.conftest import keeper_config

Sample = tuple[str, tuple[tuple[str, str], ...]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(what: str, check: Callable[[], Awaitable[Any]], bound: float = 60.0) -> Any:
    """Poll an async condition (an HTTP request, say: a connection error is a no) until it returns something
    truthy, and return that; fail after a generous bound."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    last: Any = None
    while loop.time() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            last = await check()
            if last:
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not reached within {bound}s (last: {last!r})")


@dataclass
class Running:
    emu: Emulator
    config: Config
    url: str
    session: aiohttp.ClientSession

    async def scrape(self) -> dict[str, Any]:
        """Families by name, parsed by prometheus_client's own parser."""
        async with self.session.get(f"{self.url}/metrics") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
        return {f.name: f for f in text_string_to_metric_families(text)}

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with self.session.get(f"{self.url}/health") as r:
            return r.status, await r.json()

    async def value(self, family: str, suffix: str = "", **labels: str) -> float | None:
        fams = await self.scrape()
        f = fams.get(family)
        if f is None:
            return None
        for s in f.samples:
            if s.name == family + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
        return None

    async def until(self, what: str, check: Callable[[], Awaitable[Any]], bound: float = 60.0) -> Any:
        return await until(what, check, bound)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start run_keeper with metrics on a free loopback port; stopped and awaited at teardown."""
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = "demo-key", "demo-secret"
    tasks: list[tuple[asyncio.Event, asyncio.Task[None]]] = []
    cleanups: list[Any] = []

    async def start(**sections: Any) -> Running:
        emu = Emulator(default_settings(speed=1.0))
        await emu.start()
        cleanups.append(emu.stop)
        port = free_port()
        metrics = {"enabled": True, "listen": f"127.0.0.1:{port}", **sections.pop("metrics", {})}
        cfg = keeper_config(emu.url, tmp_path / "audit.db", metrics=metrics, **sections)
        stop = asyncio.Event()
        task = asyncio.create_task(run_keeper(cfg, stop=stop, install_signals=False))
        tasks.append((stop, task))
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        cleanups.append(session.close)
        r = Running(emu, cfg, f"http://127.0.0.1:{port}", session)

        async def serving() -> bool:
            if task.done():
                task.result()  # raise the keeper's error, if it died
            return (await r.health())[0] in (200, 503)

        await r.until("metrics server up", serving)
        return r

    yield start
    for stop, task in tasks:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 60)
    for c in reversed(cleanups):
        await c()
