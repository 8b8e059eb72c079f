"""/health after a restart while a permanent halt stands: the breaker (or foreign keeper) halt is a fault
until an operator resumes, also once the keeper has restarted and its in-memory breaker starts afresh. Real
`run_keeper` processes' loops, real HTTP requests to the health endpoint, the local exchange over ccxt."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore
from hedged.config import Config
from hedged.foreign import Foreign
from hedged.halt import HaltOrigin
from hedged.model import TradingState
from hedged.service import run_keeper
from hedged.sim.server import Emulator
from hedged.sim.settings import default_settings
from tests.keeper.conftest import keeper_config
from tests.metrics.conftest import free_port, until

BOUND = 90.0  # seconds, each wait here: a generous bound, not a deadline


class Keepers:
    """Start and stop `run_keeper` on one config (one audit store), as systemd restarting it would."""

    def __init__(self, config: Config, session: aiohttp.ClientSession) -> None:
        self.config, self.session = config, session
        self.url = f"http://{config.metrics.listen}"
        self.running: tuple[asyncio.Event, asyncio.Task[None]] | None = None

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with self.session.get(f"{self.url}/health") as r:
            return r.status, await r.json()

    async def start(self) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_keeper(self.config, stop=stop, install_signals=False))
        self.running = (stop, task)

        async def cycled() -> tuple[int, dict[str, Any]] | None:
            if task.done():
                task.result()
            got = await self.health()
            return got if got[1]["last_cycle_age_s"] is not None else None  # a cycle completed

        await until("a cycle completed", cycled, BOUND)

    async def stop(self) -> None:
        assert self.running is not None
        stop, task = self.running
        stop.set()
        await asyncio.wait_for(task, 60)
        self.running = None

    async def command(self, state: TradingState, via: str, reason: str,
                      origin: HaltOrigin = HaltOrigin.OPERATOR) -> None:
        store = await AuditStore.open(self.config.audit_url, self.config.keeper.name)
        try:
            await store.command(state, via=via, reason=reason, origin=origin)
        finally:
            await store.close()

    async def prune_all(self) -> int:
        """`hedged audit prune` of everything but the head: the latest command is carried over a checkpoint."""
        store = await AuditStore.open(self.config.audit_url, self.config.keeper.name)
        try:
            n, checkpoint = await store.prune(datetime.now(UTC) + timedelta(days=1))
            assert checkpoint is not None
            return n
        finally:
            await store.close()


@pytest.fixture
async def keepers(tmp_path: Path) -> AsyncIterator[tuple[Emulator, Keepers]]:
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = "demo-key", "demo-secret"
    async with Emulator(default_settings(speed=1.0)) as emu, aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10)) as session:
        # streamed (the default): a converged keeper reads its view and calls REST only at a resync, so a key
        # the exchange stops accepting is found at the next one; a short resync makes that the next second
        cfg = keeper_config(emu.url, tmp_path / "audit.db",
                            keeper={"interval": 0.2, "max_failures": 3, "resync": 1},
                            metrics={"enabled": True, "listen": f"127.0.0.1:{free_port()}"})
        await upgrade(cfg.audit_url)
        k = Keepers(cfg, session)
        try:
            yield emu, k
        finally:
            if k.running is not None:
                with contextlib.suppress(Exception):
                    await k.stop()


async def test_a_breaker_halt_is_still_a_fault_after_a_restart(keepers: tuple[Emulator, Keepers]) -> None:
    emu, k = keepers
    await k.start()
    account = emu.engine.accounts["demo-key"]
    account.secret = "rotated-by-someone"  # the exchange refuses our key: the permanent breaker halts

    async def halted() -> bool:
        code, body = await k.health()
        return code == 503 and "breaker (permanent)" in body["reason"]

    await until("halted by the breaker", halted, BOUND)
    account.secret = "demo-secret"  # fixed, but only a human may resume
    await k.stop()
    await k.start()  # a fresh breaker in memory; the HALTED command in the store is the breaker's
    code, body = await k.health()
    assert code == 503 and body["state"] == "HALTED", body
    assert body["reason"].startswith("halted by a fault") and "breaker (permanent)" in body["reason"], body
    await k.stop()
    assert await k.prune_all() > 0  # the breaker's halt carried over a prune keeps its origin
    await k.start()
    code, body = await k.health()
    assert code == 503 and body["state"] == "HALTED" and "breaker (permanent)" in body["reason"], body
    await k.command(TradingState.RUNNING, "cli", "keys fixed")  # the operator resumes

    async def healthy() -> dict[str, Any] | None:
        code, body = await k.health()
        return body if code == 200 and body["state"] == "RUNNING" else None

    assert (await until("healthy after resume", healthy, BOUND))["reason"] == "ok"


async def test_a_foreign_keeper_halt_is_a_fault_after_a_restart_and_an_operator_halt_is_not(
        keepers: tuple[Emulator, Keepers]) -> None:
    _emu, k = keepers
    await k.command(TradingState.HALTED, "foreign-keeper", Foreign(orders=("t1_other-0",)).message,
                    HaltOrigin.FOREIGN_KEEPER)
    await k.start()
    code, body = await k.health()
    assert code == 503 and "foreign keeper" in body["reason"], body
    await k.stop()
    await k.command(TradingState.HALTED, "cli", "maintenance")  # an operator's halt: the keeper does as told
    await k.start()
    code, body = await k.health()
    assert code == 200 and body["state"] == "HALTED", body


async def test_an_operator_halt_whose_reason_names_the_audit_is_healthy_across_a_restart_and_a_prune(
        keepers: tuple[Emulator, Keepers], tmp_path: Path) -> None:
    """The verdict is the halt's recorded origin, not words: "audit maintenance" (kept in the reason a
    prune carries over) or a kill file under a folder named "audit" is still an operator's halt: 200."""
    _emu, k = keepers
    await k.command(TradingState.HALTED, "cli", "audit maintenance")
    await k.start()
    code, body = await k.health()
    assert code == 200 and body["state"] == "HALTED", body
    await k.stop()
    assert await k.prune_all() > 0
    await k.start()  # the carried command says "carried over from pruned event N: audit maintenance"
    code, body = await k.health()
    assert code == 200 and body["state"] == "HALTED", body
    await k.stop()

    kill = tmp_path / "audit-breaker" / "kill"
    kill.parent.mkdir()
    kill.touch()
    await k.command(TradingState.RUNNING, "cli", "maintenance done")
    k.config = k.config.model_copy(update={"keeper": k.config.keeper.model_copy(update={"kill_file": str(kill)})})
    await k.start()
    code, body = await k.health()
    assert code == 200 and body["state"] == "HALTED" and "kill file" in body["reason"], body
