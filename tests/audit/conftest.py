"""Fixtures: every store test runs on SQLite and on a throwaway Postgres database.

Postgres comes from HEDGED_TEST_PG (default postgresql://postgres@127.0.0.1:5432/test, trust auth). One
database is created per test run and dropped afterwards; each test gets a fresh `public` schema. Locally
an unreachable server skips the Postgres half with the reason; with CI=true it fails instead.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from hedged.audit import migrate
from hedged.audit.store import AuditStore, NewCycle, TradingState

ADMIN_DSN = os.environ.get("HEDGED_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
FAKE_KEY = "FAKEKEY-Zq8w3LxTT0pA"
FAKE_SECRET = "FAKESECRET-n4Vb7Yy1Kk9Rr"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def filled(url: str, days: int = 10, head_file: Path | None = None) -> tuple[AuditStore, list[datetime]]:
    """A store (keeper "main") with a halt command on day 0, then two events a day for `days` days from T0;
    its clock (`now[0]`, the list returned) stands at T0 + `days`. The caller closes the store."""
    now = [T0]
    store = await AuditStore.open(url, "main", clock=lambda: now[0], head_file=head_file)
    await store.command(TradingState.HALTED, via="test", reason="operator halt on day 0")
    for d in range(days):
        now[0] = T0 + timedelta(days=d)
        store.start_cycle()
        await store.record_cycles([NewCycle(venue="sim", symbol="BTC/USD:BTC", action="hold", mark=Decimal(d))])
        await store.append("start", {"mode": "live"})
    now[0] = T0 + timedelta(days=days)
    return store, now


def _dsn(database: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{database}"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def pg_execute(url: str, sql: str) -> None:
    """Run SQL as the superuser on the test database (tampering, terminating backends)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name = f"hedged_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = f"Postgres not available at {ADMIN_DSN}: {type(exc).__name__}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: the Postgres service is required)")
        pytest.skip(reason)
    yield _dsn(name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def reset_pg(url: str) -> None:
    asyncio.run(pg_execute(url, (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid();"
        "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
    )))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each backend (no tables yet)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    url: str = request.getfixturevalue("pg_database")
    reset_pg(url)
    return url


@pytest.fixture
async def url(db_url: str) -> str:
    """A database upgraded to head."""
    await migrate.upgrade(db_url)
    return db_url


@pytest.fixture
async def store(url: str) -> AsyncIterator[AuditStore]:
    s = await AuditStore.open(url, "main", secrets=[FAKE_KEY, FAKE_SECRET], write_timeout=2.0)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database at head (for SQLite-only behaviour)."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    await migrate.upgrade(url)
    return url


@pytest.fixture
async def pg_url(pg_database: str) -> str:
    """The Postgres test database, emptied and at head (for Postgres-only behaviour)."""
    await asyncio.to_thread(reset_pg, pg_database)
    await migrate.upgrade(pg_database)
    return pg_database
