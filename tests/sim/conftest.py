"""Fixtures: an in-process emulator on a manual clock and unmodified ccxt clients over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hedged.sim import Emulator, default_settings, make_client
from tests.clocks import manual_clock


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(default_settings(clock="manual"), clock=manual_clock()) as e:
        yield e


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[Any]:
    c = make_client(emu.url, "demo-key", "demo-secret", timeout_ms=5000)
    try:
        await c.load_markets()
        yield c
    finally:
        await c.close()
