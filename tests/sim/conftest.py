"""Fixtures: an in-process emulator on a manual clock and unmodified ccxt clients over loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hedged.sim import Emulator, default_settings, make_client
from tests.clocks import manual_clock


@contextlib.asynccontextmanager
async def loaded(client: Any) -> AsyncIterator[Any]:
    """`client` with its markets loaded, closed when the block ends."""
    try:
        await client.load_markets()
        yield client
    finally:
        await client.close()


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(default_settings(clock="manual"), clock=manual_clock()) as e:
        yield e


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[Any]:
    async with loaded(make_client(emu.url, "demo-key", "demo-secret", timeout_ms=5000)) as c:
        yield c


@pytest.fixture
async def pro(emu: Emulator) -> AsyncIterator[Any]:
    """ccxt.pro's bybit."""
    async with loaded(make_client(emu.url, "demo-key", "demo-secret", pro=True, timeout_ms=5000)) as c:
        yield c
