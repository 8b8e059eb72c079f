"""`hedged status` run from a shell without the keeper's environment (the keys unreadable) still finds the
keeper's account lock: the lock lives in the lock directory, not next to the database."""

from __future__ import annotations

from pathlib import Path

import pytest

from hedged.audit.lock import config_locks
from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore
from hedged.config import load_config
from hedged.status import probe_lock

TOML = """
[keeper]
name = "main"
[venues.perp]
exchange = "bybit"
api_key_env = "HSL_KEY"
secret_env = "HSL_SECRET"
[[hedge]]
asset = "BTC"
venue = "perp"
instrument = "BTC/USD:BTC"
[audit]
url = "sqlite:///audit.db"
"""


async def test_the_keepers_lock_is_found_when_the_keys_are_not_readable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEDGED_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("HSL_KEY", "key-of-the-keeper")
    monkeypatch.setenv("HSL_SECRET", "secret-of-the-keeper")
    path = tmp_path / "hedged.toml"
    path.write_text(TOML)
    cfg = load_config(path)
    await upgrade(cfg.audit_url)
    (lock,) = config_locks(cfg)  # what the keeper takes, with its keys
    monkeypatch.delenv("HSL_KEY")  # the operator's shell has no keys
    monkeypatch.delenv("HSL_SECRET")
    async with await AuditStore.open(cfg.audit_url, "main", read_only=True) as store:
        assert (await probe_lock(cfg, store)).held is False  # no keeper yet
        await lock.acquire()
        try:
            held = await probe_lock(cfg, store)
            assert held.held is True and "held by pid" in held.detail and "keys not readable" in held.detail
        finally:
            await lock.release()
        assert (await probe_lock(cfg, store)).held is False
