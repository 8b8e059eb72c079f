"""One keeper per trading account: refused in-process, in another process, through the CLI (exit 3),
and released when the holder is killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hedged.audit.lock import AccountLock, AccountLocked, AccountLockLost, config_locks, fingerprint
from hedged.config import load_config

from .conftest import FAKE_KEY, pg_execute

pytestmark = pytest.mark.timeout(60)
HEDGED = str(Path(sys.executable).parent / "hedged")


def write_config(tmp_path: Path, url: str) -> Path:
    cfg = tmp_path / "hedged.toml"
    cfg.write_text(f"""
[keeper]
name = "main"
[venues.perp]
exchange = "bybit"
api_key_env = "HT_API_KEY"
secret_env = "HT_SECRET"
[venues.spot]
exchange = "bybit"
api_key_env = "HT_API_KEY"
secret_env = "HT_SECRET"
[[hedge]]
asset = "BTC"
venue = "perp"
instrument = "BTC/USD:BTC"
[audit]
url = "{url}"
""")
    return cfg


def env() -> dict[str, str]:
    return {**os.environ, "HT_API_KEY": FAKE_KEY, "HT_SECRET": "s3cr3t-value-xyz"}


async def test_second_lock_refused_in_process(url: str) -> None:
    a = AccountLock(url, "bybit", FAKE_KEY)
    await a.acquire()
    try:
        with pytest.raises(AccountLocked) as info:
            await AccountLock(url, "bybit", FAKE_KEY).acquire()
        msg = str(info.value)
        assert "bybit" in msg and fingerprint(FAKE_KEY)[:12] in msg and FAKE_KEY not in msg
        assert "\n" not in msg
        async with AccountLock(url, "bybit", "another-key"), AccountLock(url, "okx", FAKE_KEY):
            pass  # other accounts are free
        await a.check()
        assert FAKE_KEY not in a.path.read_text() and FAKE_KEY not in str(a.path)
    finally:
        await a.release()
    async with AccountLock(url, "bybit", FAKE_KEY) as b:
        assert b.held


async def test_postgres_lock_lost_is_noticed(pg_url: str) -> None:
    lock = AccountLock(pg_url, "bybit", FAKE_KEY)
    await lock.acquire()
    try:
        await pg_execute(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE application_name LIKE 'hedged-lock%' AND datname = current_database()")
        with pytest.raises(AccountLockLost):
            await lock.check()
    finally:
        await lock.release()


def test_config_locks_one_per_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HT_API_KEY", FAKE_KEY)
    monkeypatch.setenv("HT_SECRET", "x")
    cfg = load_config(write_config(tmp_path, "sqlite:///audit.db"))
    locks = config_locks(cfg)
    assert len(locks) == 1 and locks[0].fingerprint == fingerprint(FAKE_KEY)
    assert locks[0].path.parent == Path(os.environ["HEDGED_LOCK_DIR"])  # the account's, not the database's


def _start_holder(cfg: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [HEDGED, "audit", "lock", "--config", str(cfg), "--hold", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    assert line.startswith("holding bybit key"), (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc


async def test_other_process_refused_and_kill9_releases(url: str, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, url)
    holder = await asyncio.to_thread(_start_holder, cfg)
    try:
        # Another process, through the CLI path: one line, exit code 3.
        second = await asyncio.to_thread(
            subprocess.run, [HEDGED, "audit", "lock", "--config", str(cfg), "--hold", "0.1"],
            capture_output=True, text=True, env=env(), timeout=30,
        )
        assert second.returncode == 3, second
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: another keeper already trades bybit key")
        assert "Traceback" not in second.stderr and FAKE_KEY not in second.stderr
        # And this process, in-process.
        with pytest.raises(AccountLocked):
            await AccountLock(url, "bybit", FAKE_KEY).acquire()

        holder.send_signal(signal.SIGKILL)
        await asyncio.to_thread(holder.wait, 10)
        deadline = time.monotonic() + 10
        while True:
            try:
                async with AccountLock(url, "bybit", FAKE_KEY):
                    break
            except AccountLocked:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        for stream in (holder.stdout, holder.stderr):
            if stream:
                stream.close()


async def test_postgres_release_during_a_check_in_flight_frees_the_lock(pg_url: str, tmp_path: Path) -> None:
    """A stop while a cycle's lock check is in flight: release and check meet on the one session that holds
    the lock. They take turns, and the lock is free afterwards for a keeper on another machine (its own lock
    directory, so only the Postgres lock is shared)."""
    for _ in range(20):  # the overlap is a matter of scheduling: try it at several points
        lock = AccountLock(pg_url, "bybit", FAKE_KEY)
        await lock.acquire()
        checking = asyncio.create_task(lock.check())
        await asyncio.sleep(0)
        await lock.release()
        try:
            await checking
        except AccountLockLost as exc:  # a check that ran after the release says the lock is not held ...
            assert "not held" in str(exc), exc  # ... never that the session failed under it
        other = AccountLock(pg_url, "bybit", FAKE_KEY, directory=tmp_path)
        await other.acquire()  # AccountLocked if the first session still held it
        await other.release()
