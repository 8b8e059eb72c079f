"""The account lock is checked every cycle: a keeper whose Postgres lock connection is killed sends nothing until
it holds the lock again, and stops (exit 3) when another keeper took it meanwhile. Real Postgres."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from hedged.audit.lock import AccountLock
from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore
from hedged.exits import EXIT_LOCKED, StartFailed
from hedged.keeper import Keeper
from hedged.service import make_venues, secrets_of

from .conftest import keeper_config
from .test_cycle import exchange_orders, settle

ADMIN = os.environ.get("HEDGED_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    name = f"hedged_lock_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        conn = await asyncpg.connect(ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Postgres not available at {ADMIN}: {exc} (CI=true: required)")
        pytest.skip(f"Postgres not available at {ADMIN}: {exc}")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield f"{ADMIN.rpartition('/')[0]}/{name}"
    conn = await asyncpg.connect(ADMIN, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def kill_lock_connection(url: str, also_store: bool = False) -> int:
    """pg_terminate_backend on the keeper's lock connection (found by its application_name), and with
    `also_store` on the audit store's pooled connections too (a server restart drops them all)."""
    conn = await asyncpg.connect(url, timeout=5)
    names = ("'hedged-lock %'", "'hedged-audit'") if also_store else ("'hedged-lock %'",)
    try:
        pids = await conn.fetch("SELECT pid, application_name FROM pg_stat_activity WHERE datname = "
                                "current_database() AND (" + " OR ".join(f"application_name LIKE {n}" for n in names)
                                + ")")
        for row in pids:
            await conn.execute("SELECT pg_terminate_backend($1)", row["pid"])
        return sum(1 for r in pids if r["application_name"].startswith("hedged-lock"))
    finally:
        await conn.close()


async def alerts(store: AuditStore, code: str) -> list[str]:
    return [e.payload["data"]["status"] for e in await store.tail(500)
            if e.kind == "alert" and e.payload.get("code") == code]


async def test_lost_lock_stops_orders_until_retaken_and_a_new_holder_stops_the_keeper(
        emulator: Any, tmp_path: Any, pg_url: str) -> None:
    cfg = keeper_config(emulator.url, tmp_path / "unused.db", audit={"url": pg_url})
    await upgrade(cfg.audit_url)
    store = await AuditStore.open(cfg.audit_url, cfg.keeper.name, secrets=secrets_of(cfg))
    venues = make_venues(cfg)
    lock = AccountLock(cfg.audit_url, "bybit", "demo-key")
    await lock.acquire()
    # a keeper on another machine sharing this Postgres store: its own lock directory, so only the Postgres
    # advisory lock is shared (on this machine the lock file alone would already refuse it)
    other_machine = tmp_path / "other-machine-locks"
    other_machine.mkdir()
    other = AccountLock(cfg.audit_url, "bybit", "demo-key", directory=other_machine)
    keeper = Keeper(cfg, store, venues, locks=[lock])
    h = type("H", (), {"keeper": keeper, "store": store, "emu": emulator})()
    try:
        await keeper.start()
        await settle(h)
        n = len(exchange_orders(emulator))

        emulator.engine.credit("demo-key", "BTC", Decimal(2))  # drift: a cycle holding the lock would trade
        assert await kill_lock_connection(pg_url, also_store=True) == 1
        res = await keeper.step()
        assert not keeper.audit_broken  # the store reconnected (pool pre-ping) and recorded the loss
        assert res.sent == 0 and "lock" in res.error and len(exchange_orders(emulator)) == n
        assert await alerts(store, "account_lock") == ["firing"]
        assert lock.held  # taken back in that cycle; trading resumes from the next one
        res = await keeper.step()
        assert res.sent == 1 and not res.error
        assert await alerts(store, "account_lock") == ["firing", "resolved"]
        await settle(h)
        n = len(exchange_orders(emulator))

        emulator.engine.credit("demo-key", "BTC", Decimal(2))
        assert await kill_lock_connection(pg_url) == 1
        await other.acquire()  # a second keeper takes the account meanwhile
        res = await keeper.step()
        assert res.sent == 0 and len(exchange_orders(emulator)) == n
        assert keeper.fatal is not None and keeper.fatal.code == EXIT_LOCKED
        with pytest.raises(StartFailed) as stopped:
            await asyncio.wait_for(keeper.run(asyncio.Event()), 60)  # the loop stops at once and says why
        assert stopped.value.code == EXIT_LOCKED and "another keeper" in str(stopped.value)
        assert len(exchange_orders(emulator)) == n
    finally:
        await other.release()
        await lock.release()
        for v in venues.values():
            await v.close()
        await store.close()
