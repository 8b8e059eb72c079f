"""One keeper per trading account.

Why: two copies of the keeper on one account would each see the other's orders as drift and trade
against each other. The lock is keyed by exchange id + SHA-256 fingerprint of the API key (never the key
itself), never by the database: an exclusive flock on `<lock dir>/<exchange>-<fingerprint>.lock` in one
well-known directory (`keeper.lock_dir`, else $HEDGED_LOCK_DIR, else $XDG_RUNTIME_DIR/hedged, else
/run/hedged for root, else <tmp>/hedged-<uid>), so two configs with different databases on one machine
still exclude each other; and, with a Postgres store, a session advisory lock on a dedicated connection
too, for keepers on other machines sharing that database. Both die with the process, so a kill -9 never
leaves the account stuck. Keepers that share neither are caught from the exchange itself
(`hedged.foreign`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Self

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from hedged.audit.store import AuditError, async_url
from hedged.log import get_logger

if TYPE_CHECKING:
    from hedged.config import Config

log = get_logger(__name__)


class AccountLocked(AuditError):
    """Another live keeper trades this account; the message is one line for the operator."""


class AccountLockLost(AuditError):
    """We held the lock but no longer do (database connection gone): stop trading."""


def fingerprint(api_key: str | SecretStr | None) -> str:
    """SHA-256 hex of the API key: identifies the account without storing the key."""
    raw = api_key.get_secret_value() if isinstance(api_key, SecretStr) else (api_key or "")
    return hashlib.sha256(raw.encode()).hexdigest()


def lock_dir(configured: str = "") -> Path:
    """The one directory every keeper of this machine (and user) puts its account locks in."""
    if configured:
        return Path(configured)
    if env := os.environ.get("HEDGED_LOCK_DIR"):
        return Path(env)
    if xdg := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(xdg) / "hedged"
    if os.getuid() == 0:
        return Path("/run/hedged")
    return Path(tempfile.gettempdir()) / f"hedged-{os.getuid()}"


def _pg_key(exchange: str, fp: str) -> int:
    digest = hashlib.sha256(f"hedged-account:{exchange}:{fp}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _key_parts(key: int) -> dict[str, int]:
    """pg_locks shows a bigint advisory key as classid (high 32 bits) and objid (low 32 bits)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF}


_HOLDER = sa.text(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
    "AND classid::bigint = :hi AND objid::bigint = :lo AND pid <> pg_backend_pid() LIMIT 1"
)
_MINE = sa.text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
    "AND classid::bigint = :hi AND objid::bigint = :lo AND pid = pg_backend_pid()"
)


class AccountLock:
    """Exclusive, process-lifetime lock for one (exchange, API key); use `async with` or acquire/release."""

    def __init__(self, url: str, exchange: str, api_key: str | SecretStr | None, *, timeout: float = 5.0,
                 directory: Path | None = None):
        self.url = url
        self.directory = directory if directory is not None else lock_dir()
        self.exchange = exchange
        self.fingerprint = fingerprint(api_key)
        self.timeout = timeout
        self._fd: int | None = None
        self._engine: AsyncEngine | None = None
        self._conn: AsyncConnection | None = None
        # One session holds the Postgres lock, and a session runs one statement at a time: a cycle's check and
        # the teardown's release (a stop while that cycle is in flight) would otherwise meet on it, and asyncpg
        # refuses the second ("another operation is in progress"), leaving the lock held by a live session.
        self._using = asyncio.Lock()

    @property
    def account(self) -> str:
        return f"{self.exchange} key {self.fingerprint[:12]}"

    @property
    def path(self) -> Path:
        """The lock file: keyed by the account only, in the well-known directory."""
        return self.directory / f"{self.exchange}-{self.fingerprint[:16]}.lock"

    @property
    def postgres(self) -> bool:
        return not async_url(self.url).drivername.startswith("sqlite")

    @property
    def held(self) -> bool:
        return self._fd is not None or self._conn is not None

    async def acquire(self) -> None:
        """Take the lock now or raise AccountLocked; never waits."""
        if self.held:
            return
        self._acquire_file(self.path)
        if self.postgres:
            try:
                await self._acquire_pg()
            except BaseException:
                await self.release()
                raise
        log.info("audit.account_locked", account=self.account, lock_file=str(self.path))

    def _acquire_file(self, path: Path) -> None:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditError(f"cannot open lock file {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            with contextlib.suppress(OSError):
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            os.close(fd)
            who = f" (pid {holder.split()[0]})" if holder else ""
            raise AccountLocked(
                f"another keeper already trades {self.account}{who}; lock file {path}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {self.exchange} {self.fingerprint[:16]}\n".encode(), 0)
        self._fd = fd

    async def _acquire_pg(self) -> None:
        key = _pg_key(self.exchange, self.fingerprint)
        engine = create_async_engine(
            async_url(self.url), poolclass=NullPool,
            connect_args={"timeout": self.timeout, "command_timeout": self.timeout,
                          "server_settings": {"application_name": f"hedged-lock {self.account}"}},
        )
        try:
            conn = await engine.connect()
            # Session-level lock outside any transaction: commit the implicit one right away.
            got = await conn.scalar(sa.select(sa.func.pg_try_advisory_lock(key)))
            await conn.commit()
        except Exception as exc:
            await engine.dispose()
            raise AuditError(f"cannot take the account lock: {type(exc).__name__}: {exc}") from exc
        if not got:
            holder = None
            with contextlib.suppress(Exception):
                holder = await conn.scalar(_HOLDER, _key_parts(key))
            await conn.close()
            await engine.dispose()
            who = f" (backend pid {holder})" if holder else ""
            raise AccountLocked(f"another keeper already trades {self.account}{who}")
        self._engine, self._conn = engine, conn

    async def check(self) -> None:
        """Raise AccountLockLost if the lock is no longer ours (call it each cycle)."""
        if self._fd is not None and not self.postgres:
            return
        if self._conn is None:
            raise AccountLockLost(f"account lock for {self.account} is not held")
        key = _pg_key(self.exchange, self.fingerprint)
        try:
            async with self._using:
                conn = self._conn
                if conn is None:
                    raise AccountLockLost(f"account lock for {self.account} is not held")
                n = await conn.scalar(_MINE, _key_parts(key))
                await conn.commit()
        except AccountLockLost:
            raise
        except Exception as exc:
            raise AccountLockLost(f"account lock for {self.account} lost: {type(exc).__name__}") from exc
        if not n:
            raise AccountLockLost(f"account lock for {self.account} (key {key}) lost")

    async def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            async with self._using:  # after a check in flight, never beside it
                conn, self._conn = self._conn, None
                if conn is not None:
                    try:
                        await conn.scalar(
                            sa.select(sa.func.pg_advisory_unlock(_pg_key(self.exchange, self.fingerprint))))
                        await conn.commit()
                        await conn.close()
                    except Exception:
                        # a broken or cancelled-mid-statement session: end it, which frees its lock server-side
                        with contextlib.suppress(Exception):
                            await conn.invalidate()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def __aenter__(self) -> Self:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


def config_locks(config: Config, base: Path | None = None) -> list[AccountLock]:
    """One lock per distinct trading account (exchange + API key) among the config's venues."""
    seen: dict[tuple[str, str], AccountLock] = {}
    for venue in config.venues.values():
        creds = venue.credentials(base if base is not None else config.base_dir)
        directory = lock_dir(str(config.resolve(config.keeper.lock_dir)) if config.keeper.lock_dir else "")
        lock = AccountLock(config.audit_url, venue.exchange, creds.get("apiKey"), directory=directory)
        seen.setdefault((lock.exchange, lock.fingerprint), lock)
    return list(seen.values())


@contextlib.asynccontextmanager
async def hold_locks(locks: Iterable[AccountLock]) -> AsyncIterator[list[AccountLock]]:
    """Acquire all locks (releasing any taken if one is refused); release them on exit."""
    held: list[AccountLock] = []
    try:
        for lock in locks:
            await lock.acquire()
            held.append(lock)
        yield held
    finally:
        for lock in reversed(held):
            await lock.release()
