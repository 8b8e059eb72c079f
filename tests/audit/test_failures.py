"""A store that cannot be written raises AuditWriteError promptly: no hang, no silently dropped row.

Tests run as root, and chmod does not stop root writing a file, so the "read-only disk" case opens the
SQLite file through a read-only URI (mode=ro): SQLite itself then refuses every write, as it would on a
read-only mount. A second case holds SQLite's write lock from another connection (a stuck writer);
the Postgres cases terminate the store's backends with pg_terminate_backend, with and without the
server accepting new connections, and while a write is waiting on a lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from hedged.audit.scrub import Scrubber
from hedged.audit.store import AuditStore, AuditWriteError, create_engine, sqlite_path

from .conftest import pg_execute

pytestmark = pytest.mark.timeout(60)


async def _count(store: AuditStore) -> int:
    return await store.count_events()


async def test_sqlite_read_only_file_refuses_writes(sqlite_url: str) -> None:
    url = sqlite_url
    async with await AuditStore.open(url, "main") as rw:
        await rw.append("start", {})
    # The same file opened read-only underneath a store that believes it can write.
    engine = create_engine(url, read_only=True)
    store = AuditStore(engine, "main", scrubber=Scrubber(), write_timeout=1.0, read_only=False,
                       clock=lambda: datetime.now(UTC))
    try:
        t = time.monotonic()
        with pytest.raises(AuditWriteError, match="readonly"):
            await store.intent("ro-1", venue="bybit", symbol="BTC/USD:BTC", side="buy", amount=D(1),
                               price=D(1))
        assert time.monotonic() - t < 2
        assert await store.get_order("ro-1") is None
        assert await _count(store) == 1
        assert (await store.verify()).ok
    finally:
        await store.close()
    # The CLI's read-only store refuses before touching the file.
    ro = await AuditStore.open(url, "main", read_only=True)
    try:
        with pytest.raises(AuditWriteError, match="read-only"):
            await ro.append("stop", {})
    finally:
        await ro.close()


async def test_sqlite_stuck_writer_times_out(sqlite_url: str) -> None:
    url = sqlite_url
    store = await AuditStore.open(url, "main", write_timeout=0.5)
    try:
        await store.append("start", {})
        path = sqlite_path(url)
        assert path is not None
        blocker = sqlite3.connect(path, isolation_level=None, timeout=0)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            t = time.monotonic()
            with pytest.raises(AuditWriteError, match="locked"):
                await store.append("alert", {"name": "x"})
            assert time.monotonic() - t < 3
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await store.append("stop", {})
        assert [e.kind for e in await store.tail(10)] == ["start", "stop"]
        assert (await store.verify()).ok
    finally:
        await store.close()


async def test_postgres_terminated_connections(pg_url: str) -> None:
    url = pg_url
    store = await AuditStore.open(url, "main", write_timeout=2.0)
    try:
        await store.append("start", {})
        kill = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        await pg_execute(url, kill)
        # A fresh connection replaces the dead one; the row is really there.
        ev = await store.append("alert", {"name": "after-terminate"})
        assert (await store.tail(1))[0].id == ev.id

        await _allow(url, False)  # also terminates the store's connections
        t = time.monotonic()
        with pytest.raises(AuditWriteError):
            await store.append("alert", {"name": "lost"})
        assert time.monotonic() - t < 5
    finally:
        await _allow(url, True)
    try:
        await store.append("stop", {})
        assert [e.kind for e in await store.tail(10)] == ["start", "alert", "stop"]
        assert (await store.verify()).ok
    finally:
        await store.close()


async def _allow(url: str, allow: bool) -> None:
    import asyncpg

    from .conftest import ADMIN_DSN

    db = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(ADMIN_DSN, timeout=3)
    try:
        await conn.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            await conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
    finally:
        await conn.close()


async def test_postgres_write_killed_while_waiting(pg_url: str) -> None:
    url = pg_url
    """A write stuck behind another writer's chain lock, then its backend is terminated: it is retried once on
    a fresh connection (issue 17, 10b: a dropped connection must not halt trading), so once the other writer
    lets go it lands — exactly once."""
    import asyncpg

    from hedged.audit.store import CHAIN_LOCK_CLASS, _chain_lock_key

    store = await AuditStore.open(url, "main", write_timeout=10.0)
    blocker = await asyncpg.connect(url, timeout=3)
    try:
        await store.append("start", {})
        tr = blocker.transaction()
        await tr.start()
        await blocker.execute("SELECT pg_advisory_xact_lock($1, $2)", CHAIN_LOCK_CLASS, _chain_lock_key("main"))
        task = asyncio.create_task(store.append("alert", {"name": "blocked"}))
        for _ in range(100):
            n = await blocker.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hedged-audit' "
                "AND wait_event_type = 'Lock' AND datname = current_database()")
            if n:
                break
            await asyncio.sleep(0.05)
        assert not task.done()
        await blocker.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'hedged-audit' "
            "AND datname = current_database()")  # only this test's database: the server is shared
        await asyncio.sleep(0.5)
        assert not task.done()  # the retry waits behind the blocker again, on a new connection
        await tr.rollback()
        await asyncio.wait_for(task, 20)
        await store.append("stop", {})
        assert [e.kind for e in await store.tail(10)] == ["start", "alert", "stop"]
        assert (await store.verify()).ok
    finally:
        await blocker.close()
        await store.close()
