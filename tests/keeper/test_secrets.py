"""A full trading cycle with recognisable fake keys: neither key appears anywhere in the audit database."""

from __future__ import annotations

import asyncio
import os
from decimal import Decimal
from pathlib import Path

from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore
from hedged.service import secrets_of
from hedged.sim.server import Emulator
from hedged.sim.settings import default_settings

from .conftest import Harness, keeper_config

KEY, SECRET = "FAKEKEY-4c1d9e77b2", "FAKESECRET-91b2c0ffee"


def database_bytes(folder: Path) -> bytes:
    """The database file and its WAL/SHM companions, as raw bytes."""
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("audit.db"))


async def test_secrets_never_reach_the_audit_store(tmp_path: Path) -> None:
    settings = default_settings(accounts=[{"api_key": KEY, "secret": SECRET,
                                           "balances": {"BTC": Decimal(10), "ETH": Decimal(100)}}])
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = KEY, SECRET
    async with Emulator(settings) as emu:
        cfg = keeper_config(emu.url, tmp_path / "audit.db")
        await upgrade(cfg.audit_url)
        store = await AuditStore.open(cfg.audit_url, cfg.keeper.name, secrets=secrets_of(cfg))
        h = Harness(emu, cfg, store)
        try:
            await h.keeper.start()
            sent = 0
            for _ in range(8):
                sent += (await h.keeper.cycle()).sent
                await asyncio.sleep(0.2)
            await h.keeper.shutdown()
        finally:
            await h.close()
    assert sent >= 2
    blob = database_bytes(tmp_path)
    assert b"intent" in blob  # the scan reads real content
    for secret in (KEY, SECRET):
        assert secret.encode() not in blob
