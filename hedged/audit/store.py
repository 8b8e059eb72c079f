"""AuditStore: the keeper's durable, hash-chained record of decisions and actions.

Why: an unattended trader must answer "why did it place this order?" months later, must never lose an
order across a crash, and must not act when it cannot record. So every write is one transaction that
appends a chained event (and updates its projection row), committed durably before the call returns;
any failure raises AuditWriteError at once, which the keeper turns into "do not send, halt, alert".
Appends are serialised per keeper (an asyncio lock in-process; BEGIN IMMEDIATE on SQLite, a transaction
advisory lock on Postgres across processes) so the chain never forks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import pwd
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, ParamSpec, Self, TypeVar
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hedged.audit import quiet
from hedged.audit.chain import (
    CHECKPOINT,
    GENESIS,
    ChainRow,
    ChainStart,
    ChainWalker,
    JsonValue,
    VerifyResult,
    chain_start,
    event_content,
    event_hash,
    to_json,
)
from hedged.audit.models import Cycle, Event, Fill, Order
from hedged.audit.scrub import Scrubber
from hedged.halt import HaltOrigin
from hedged.log import get_logger
from hedged.model import TradingState  # the core's enum: RUNNING, REDUCING, HALTED
from hedged.order_state import LIVE as _LIVE
from hedged.order_state import UNSETTLED as _UNSETTLED
from hedged.order_state import IllegalTransition, OrderStatus, advance

__all__ = [
    "AuditError", "AuditReadError", "AuditSchemaError", "AuditStore", "AuditWriteError", "CycleRecord", "EventKind",
    "EventRecord", "FillRecord", "NewCycle", "NewEvent", "OrderRecord", "OrderStatus", "TradingState", "VerifyResult",
]

log = get_logger(__name__)
T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")


class AuditError(Exception):
    """Base class: something about the audit store is wrong."""


class AuditWriteError(AuditError):
    """A write did not commit (or may not have). The caller must not act on it: do not send, halt, alert."""


class AuditReadError(AuditError):
    """A read failed (connection lost, server gone, schema changed under us): retry next cycle."""


class AuditSchemaError(AuditError):
    """The database has no audit tables or an older schema; run `hedged db upgrade`."""


class EventKind(StrEnum):
    START = "start"
    STOP = "stop"
    CYCLE = "cycle"
    INTENT = "intent"
    SENT = "sent"
    ACK = "ack"
    ORDER = "order"  # a later status of an order (poll, reconciliation, lost)
    FILL = "fill"
    CANCEL = "cancel"
    REJECT = "reject"
    ERROR = "error"
    STATE = "state"
    ALERT = "alert"
    COMMAND = "command"
    COMMAND_REFUSED = "command_refused"  # a remote command that failed authentication (never acted on)
    SHADOW = "shadow"
    CHECKPOINT = CHECKPOINT  # where a pruned chain now starts (hedged audit prune)


# The order lifecycle lives in hedged/order_state.py; re-exported here for the store's callers.
UNSETTLED = tuple(sorted(_UNSETTLED))
LIVE = tuple(sorted(_LIVE))


@dataclass(frozen=True)
class EventRecord(ChainRow):
    """An event as stored: the chain's columns, plus a JSON view for tail/export."""

    def as_dict(self) -> dict[str, JsonValue]:
        out = to_json({f.name: getattr(self, f.name) for f in fields(self)})
        assert isinstance(out, dict)
        return out


@dataclass(frozen=True)
class OrderRecord:
    client_order_id: str
    keeper: str
    venue: str
    symbol: str
    side: str
    amount: Decimal
    price: Decimal | None
    reduce_only: bool
    post_only: bool
    status: str
    exchange_order_id: str | None
    filled: Decimal
    average: Decimal | None
    fee: Decimal | None
    fee_currency: str | None
    notional_usd: Decimal | None
    reason: str
    cycle: int | None
    created_at: datetime
    updated_at: datetime

    @property
    def remaining(self) -> Decimal:
        return max(self.amount - self.filled, Decimal(0))


@dataclass(frozen=True)
class FillRecord:
    id: int
    keeper: str
    venue: str
    trade_id: str
    client_order_id: str | None
    symbol: str | None
    side: str | None
    amount: Decimal
    price: Decimal
    fee: Decimal | None
    fee_currency: str | None
    ts: datetime


@dataclass(frozen=True)
class CycleRecord:
    id: int
    keeper: str
    cycle: int
    ts: datetime
    venue: str
    symbol: str
    exposure: Decimal | None
    hedge: Decimal | None
    inflight: Decimal | None
    target: Decimal | None
    drift: Decimal | None
    mark: Decimal | None
    band: Decimal | None
    funding_rate: Decimal | None
    basis: Decimal | None
    action: str
    reasons: Any


@dataclass(frozen=True)
class NewEvent:
    """An event to append with AuditStore.append_many."""

    kind: str
    payload: Mapping[str, Any] | None = None
    venue: str | None = None
    symbol: str | None = None
    asset: str | None = None
    cycle: int | None = None


@dataclass(frozen=True)
class NewCycle:
    """One instrument's row for AuditStore.record_cycles: its inputs and the decision taken."""

    venue: str
    symbol: str
    action: str
    reasons: Iterable[str] = ()
    exposure: Decimal | None = None
    hedge: Decimal | None = None
    inflight: Decimal | None = None
    target: Decimal | None = None
    drift: Decimal | None = None
    mark: Decimal | None = None
    band: Decimal | None = None
    funding_rate: Decimal | None = None
    basis: Decimal | None = None
    asset: str | None = None
    payload: Mapping[str, Any] | None = None


# --- engines -----------------------------------------------------------------------------------------


def async_url(url: str) -> URL:
    """Map sqlite:// and postgresql:// to their asyncio drivers; refuse anything else."""
    try:
        u = make_url(url)
    except ArgumentError:
        raise AuditError(f"audit url {url!r} is not a database URL") from None
    if u.drivername in ("sqlite", "sqlite+aiosqlite"):
        return u.set(drivername="sqlite+aiosqlite")
    if u.drivername in ("postgresql", "postgres", "postgresql+asyncpg"):
        return u.set(drivername="postgresql+asyncpg")
    raise AuditError(f"audit url driver {u.drivername!r} unsupported: use sqlite:/// or postgresql://")


def safe_url(url: str | URL) -> str:
    """The URL with any password hidden, for messages."""
    u = url if isinstance(url, URL) else make_url(url)
    return u.render_as_string(hide_password=True)


def sqlite_path(url: str | URL) -> Path | None:
    """The database file of a SQLite URL (None for Postgres or in-memory)."""
    u = url if isinstance(url, URL) else make_url(url)
    if not u.drivername.startswith("sqlite") or not u.database or u.database == ":memory:":
        return None
    db = u.database
    if db.startswith("file:"):
        db = db[5:]
    return Path(db)


def default_head_file(url: str | URL) -> Path | None:
    """Where the chain head is written unless `[audit] head_file` says: `<db file>.head` beside SQLite."""
    db = sqlite_path(url)
    return db.with_name(db.name + ".head") if db is not None else None


def read_head_file(path: Path) -> tuple[str, str, int]:
    """(keeper, hash, count) from a head file; ValueError (one line) when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        keeper, head = data["keeper"], data["head"]
        hash_, _, count = str(head).partition(":")
        if isinstance(keeper, str) and re.fullmatch(r"[0-9a-f]{64}", hash_) and count.isdigit():
            return keeper, hash_, int(count)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a head file ({type(exc).__name__})") from None
    raise ValueError(f"{path}: not a head file (expected {{\"keeper\": …, \"head\": \"HASH:COUNT\"}})")


def create_engine(url: str | URL, *, write_timeout: float = 5.0, read_only: bool = False) -> AsyncEngine:
    """An async engine with durable settings: SQLite WAL + synchronous=FULL; bounded waits everywhere."""
    u = async_url(url) if isinstance(url, str) else url
    if u.drivername.startswith("sqlite"):
        path = sqlite_path(u)
        if read_only and path is not None:
            # mode=ro makes SQLite itself refuse writes (chmod does not stop root).
            u = u.set(database=f"file:{quote(str(path.resolve()))}", query={"mode": "ro", "uri": "true"})
        elif path is not None and not path.exists() and path.parent.is_dir():
            # created 0600 whatever the umask: SQLite gives its -wal/-shm files the database's mode
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        engine = create_async_engine(u, connect_args={"timeout": write_timeout})
        _sqlite_events(engine, write_timeout, read_only)
        return engine
    ms = int(write_timeout * 1000)
    settings = {
        "application_name": "hedged-audit",
        "lock_timeout": str(ms),
        "statement_timeout": str(ms * 6),
        "idle_in_transaction_session_timeout": str(ms * 12),
    }
    if read_only:
        settings["default_transaction_read_only"] = "on"
    return create_async_engine(
        u,
        pool_pre_ping=True,
        pool_size=3,
        max_overflow=2,
        pool_timeout=write_timeout,
        connect_args={
            "timeout": write_timeout,
            "command_timeout": write_timeout,
            "server_settings": settings,
        },
    )


def _sqlite_events(engine: AsyncEngine, write_timeout: float, read_only: bool) -> None:
    @sa_event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (IMMEDIATE for writes), so the driver must not.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not read_only:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={int(write_timeout * 1000)}")
        cur.close()

    @sa_event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get("hedged_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _chain_lock_key(keeper: str) -> int:
    digest = hashlib.sha256(f"hedged-chain:{keeper}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


CHAIN_LOCK_CLASS = 0x68656467  # "hedg": namespace of the two-int advisory locks used for appends


def _now() -> datetime:
    return datetime.now(UTC)


def who() -> dict[str, JsonValue]:
    """Where a command came from: user, host and pid."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = os.environ.get("USER", "") or str(os.getuid())
    return {"user": user, "host": socket.gethostname(), "pid": os.getpid()}


# --- the store ---------------------------------------------------------------------------------------


def _reconnecting(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """A read whose connection was dropped (failover, restart, idle-session killer) runs once more on a fresh
    one (the pool invalidated the dead one); a read has no effect to duplicate."""

    @functools.wraps(fn)
    async def read(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except (sa.exc.DBAPIError, AuditReadError) as exc:
            cause = exc.__cause__ if isinstance(exc, AuditReadError) else exc  # _reading wraps the driver's error
            if not (isinstance(cause, sa.exc.DBAPIError) and cause.connection_invalidated):
                raise
            log.warning("audit.reconnect", error=_short(cause))
            return await fn(*args, **kwargs)

    return read



class AuditStore:
    """Async API over the audit database for one keeper (its events, orders, cycles)."""

    def __init__(
        self,
        engine: AsyncEngine,
        keeper: str,
        *,
        scrubber: Scrubber,
        write_timeout: float,
        read_only: bool,
        clock: Callable[[], datetime],
        quiet_every: float = 0.0,
        head_file: Path | None = None,
    ) -> None:
        self.engine = engine
        self.keeper = keeper
        self.read_only = read_only
        self.cycle: int | None = None
        self._scrubber = scrubber
        self._timeout = write_timeout
        self._clock = clock
        self._lock = asyncio.Lock()
        self._is_pg = engine.dialect.name == "postgresql"
        self._write_engine = engine.execution_options(hedged_write=True)
        self.quiet_every = quiet_every  # seconds between heartbeat rows of a quiet instrument; 0 = every row
        self._quiet = quiet.QuietState()
        # metrics hooks: the duration of each durable write; each order event (kind, status before, row, reason)
        self.on_write: Callable[[float], None] | None = None
        self.on_order: Callable[[str, str | None, OrderRecord, str | None], None] | None = None
        # the chain head anchored outside the store: this keeper's newest hash and event count, in a small file
        # beside SQLite and in the retained MQTT state, so that `audit verify --head` detects a truncation
        self.head_hash, self.head_count = "", 0
        self._staged: list[tuple[str, int]] = []
        where = head_file or default_head_file(engine.url)
        self.head_file: Path | None = where if not read_only else None

    @classmethod
    async def open(
        cls,
        url: str,
        keeper: str,
        *,
        secrets: Iterable[str] = (),
        allow_keys: Iterable[str] = (),
        write_timeout: float = 5.0,
        read_only: bool = False,
        clock: Callable[[], datetime] = _now,
        quiet_every: float = 0.0,
        head_file: Path | None = None,
    ) -> AuditStore:
        """Connect and check the schema exists (AuditSchemaError if not; run `hedged db upgrade`)."""
        u = async_url(url)
        path = sqlite_path(u)
        if read_only and path is not None and not path.exists():
            raise AuditSchemaError(f"no audit database at {path}: run `hedged db upgrade`")
        engine = create_engine(u, write_timeout=write_timeout, read_only=read_only)
        store = cls(
            engine, keeper, scrubber=Scrubber(allow_keys, secrets), write_timeout=write_timeout,
            read_only=read_only, clock=clock, quiet_every=quiet_every, head_file=head_file,
        )
        try:
            async with engine.connect() as conn:
                has = await conn.run_sync(lambda c: sa.inspect(c).has_table("events"))
                if not has:
                    raise AuditSchemaError(f"no audit tables in {safe_url(u)}: run `hedged db upgrade`")
                last = await conn.scalar(sa.select(sa.func.max(Event.cycle)).where(Event.keeper == keeper))
                store.cycle = int(last) if last is not None else None
                # COUNT counts the whole chain, pruned events included (a checkpoint says how many went),
                # so a head published before a prune still names the same event after it
                start = (await store._chain_starts(conn)).get(keeper)
                store.head_count = (start.pruned if start is not None else 0) + int(await conn.scalar(
                    sa.select(sa.func.count()).select_from(Event).where(Event.keeper == keeper)) or 0)
                store.head_hash = str(await conn.scalar(
                    sa.select(Event.hash).where(Event.keeper == keeper).order_by(Event.id.desc()).limit(1)) or "")
        except AuditError:
            await engine.dispose()
            raise
        except Exception as exc:
            await engine.dispose()
            raise AuditError(f"cannot open audit store {safe_url(u)}: {_short(exc)}") from exc
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def register_secrets(self, values: Iterable[str]) -> None:
        """Values (API keys, secrets) that must never appear in a stored string."""
        self._scrubber.register_secrets(values)

    def allow_keys(self, keys: Iterable[str]) -> None:
        """Extra payload key names to keep (e.g. venue names used as keys)."""
        self._scrubber.allow(keys)

    def start_cycle(self) -> int:
        """Number the next cycle; later events carry it until the next call."""
        self.cycle = (self.cycle or 0) + 1
        return self.cycle

    # --- writing -------------------------------------------------------------------------------------

    def _payload(self, payload: Mapping[str, Any] | None, base: Mapping[str, Any] | None = None) -> JsonValue:
        merged: dict[str, Any] = dict(payload or {})
        merged.update({k: v for k, v in (base or {}).items() if v is not None})
        return self._scrubber.scrub(to_json(merged))

    async def _write(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        if self.read_only:
            raise AuditWriteError("audit store opened read-only")
        async with self._lock:
            try:
                try:
                    return await self._write_once(work)
                except sa.exc.DBAPIError as exc:
                    # a dropped connection (failover, restart, idle-session killer): once more, on a fresh one.
                    # Each write is one transaction; if the first never committed, the retry is the only copy
                    # (and an intent's unique client id refuses a second one).
                    if not exc.connection_invalidated:
                        raise
                    log.warning("audit.reconnect", error=_short(exc), keeper=self.keeper)
                    return await self._write_once(work)
            except (AuditError, IllegalTransition):
                raise
            except Exception as exc:
                with contextlib.suppress(Exception):  # a broken log sink must not hide the write error
                    log.error("audit.write_failed", error=_short(exc), keeper=self.keeper)
                raise AuditWriteError(f"audit write failed: {_short(exc)}") from exc

    @property
    def head(self) -> str:
        """HASH:COUNT of this keeper's chain, as `audit verify --head` takes it ("" before the first event)."""
        return f"{self.head_hash}:{self.head_count}" if self.head_hash else ""

    def _committed(self) -> None:
        staged, self._staged = self._staged, []
        for digest, n in staged:
            self.head_hash, self.head_count = digest, self.head_count + n
        if staged and self.head_file is not None:
            with contextlib.suppress(OSError):  # the anchor is a help, never a reason to fail a write
                tmp = self.head_file.with_name(self.head_file.name + ".tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(json.dumps({"keeper": self.keeper, "head": self.head}) + "\n")
                os.replace(tmp, self.head_file)

    async def _write_once(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        self._staged = []
        started = time.perf_counter()
        async with asyncio.timeout(self._timeout * 3):
            async with self._write_engine.connect() as conn:
                try:
                    await conn.begin()
                    if self._is_pg:
                        await conn.execute(
                            sa.select(sa.func.pg_advisory_xact_lock(CHAIN_LOCK_CLASS, _chain_lock_key(self.keeper)))
                        )
                    result = await work(conn)
                    await conn.commit()
                except BaseException:
                    await _discard(conn)
                    raise
        self._committed()
        if self.on_write is not None:
            with contextlib.suppress(Exception):
                self.on_write(time.perf_counter() - started)
        return result

    async def _append(
        self,
        conn: AsyncConnection,
        kind: str,
        payload: JsonValue,
        *,
        venue: str | None,
        symbol: str | None,
        asset: str | None,
        cycle: int | None,
        ts: datetime,
    ) -> EventRecord:
        """Chain one event (payload already scrubbed) after this keeper's head, inside `conn`'s transaction."""
        event = NewEvent(kind, None, venue=venue, symbol=symbol, asset=asset, cycle=cycle)
        return (await self._append_batch(conn, [(event, payload)], ts))[0]

    async def _append_batch(
        self, conn: AsyncConnection, events: list[tuple[NewEvent, JsonValue]], ts: datetime
    ) -> list[EventRecord]:
        """Chain `events` (each with its scrubbed payload) after the head and insert them in one statement."""
        head = await conn.scalar(
            sa.select(Event.hash).where(Event.keeper == self.keeper).order_by(Event.id.desc()).limit(1)
        )
        prev = head or GENESIS
        rows: list[dict[str, Any]] = []
        for e, payload in events:
            cycle = e.cycle if e.cycle is not None else self.cycle
            digest = event_hash(event_content(
                ts=ts, keeper=self.keeper, cycle=cycle, kind=str(e.kind), venue=e.venue, symbol=e.symbol,
                asset=e.asset, payload=payload, prev_hash=prev,
            ))
            rows.append({"ts": ts, "keeper": self.keeper, "cycle": cycle, "kind": str(e.kind), "venue": e.venue,
                         "symbol": e.symbol, "asset": e.asset, "payload": payload, "prev_hash": prev,
                         "hash": digest})
            prev = digest
        if not rows:
            return []
        ids = (await conn.execute(
            sa.insert(Event).returning(Event.id, sort_by_parameter_order=True), rows)).scalars().all()
        self._staged.append((prev, len(rows)))
        return [EventRecord(i, r["ts"], r["keeper"], r["cycle"], r["kind"], r["venue"], r["symbol"], r["asset"],
                            r["payload"], r["prev_hash"], r["hash"]) for i, r in zip(ids, rows, strict=True)]

    async def append(
        self,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        *,
        venue: str | None = None,
        symbol: str | None = None,
        asset: str | None = None,
        cycle: int | None = None,
    ) -> EventRecord:
        """Append one event (start, stop, alert, shadow, …); committed durably when this returns."""
        body = self._payload(payload)
        ts = self._clock()
        cyc = cycle if cycle is not None else self.cycle

        async def work(conn: AsyncConnection) -> EventRecord:
            return await self._append(conn, str(kind), body, venue=venue, symbol=symbol, asset=asset,
                                      cycle=cyc, ts=ts)

        return await self._write(work)

    async def append_many(self, events: Iterable[NewEvent]) -> list[EventRecord]:
        """Append several events in one transaction (one durable commit): all or none."""
        prepared = [(e, self._payload(e.payload)) for e in events]
        ts = self._clock()

        async def work(conn: AsyncConnection) -> list[EventRecord]:
            return await self._append_batch(conn, prepared, ts)

        return await self._write(work)

    async def intent(
        self,
        client_order_id: str,
        *,
        venue: str,
        symbol: str,
        side: str,
        amount: Decimal,
        price: Decimal | None,
        reduce_only: bool = False,
        post_only: bool = False,
        reason: str = "",
        notional_usd: Decimal | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> OrderRecord:
        """Write-ahead: record the order before the request is sent. Raises if the id is already used."""
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be buy or sell, not {side!r}")
        _exact(amount=amount, price=price, notional_usd=notional_usd)
        ts = self._clock()
        reason = self._scrubber.text(reason)
        body = self._payload(payload, {
            "client_order_id": client_order_id, "side": side, "amount": amount, "price": price,
            "reduce_only": reduce_only, "post_only": post_only, "reason": reason,
            "notional_usd": notional_usd,
        })
        row: dict[str, Any] = {
            "client_order_id": client_order_id, "keeper": self.keeper, "venue": venue, "symbol": symbol,
            "side": side, "amount": amount, "price": price, "reduce_only": reduce_only,
            "post_only": post_only, "status": OrderStatus.INTENT.value, "exchange_order_id": None,
            "filled": Decimal(0), "average": None, "fee": None, "fee_currency": None,
            "notional_usd": notional_usd, "reason": reason, "cycle": self.cycle, "created_at": ts,
            "updated_at": ts,
        }

        async def work(conn: AsyncConnection) -> OrderRecord:
            exists = await conn.scalar(
                sa.select(Order.client_order_id).where(Order.client_order_id == client_order_id)
            )
            if exists is not None:
                raise AuditWriteError(f"client order id {client_order_id} already recorded")
            await self._append(conn, EventKind.INTENT, body, venue=venue, symbol=symbol, asset=None,
                               cycle=self.cycle, ts=ts)
            await conn.execute(sa.insert(Order).values(**row))
            return OrderRecord(**row)

        return await self._write(work)

    async def sent(self, client_order_id: str, payload: Mapping[str, Any] | None = None) -> OrderRecord:
        """The request is going out now (called just before the HTTP call)."""
        return await self._order_event(EventKind.SENT, client_order_id, OrderStatus.SENT, payload=payload)

    async def ack(
        self,
        client_order_id: str,
        *,
        exchange_order_id: str,
        status: OrderStatus = OrderStatus.OPEN,
        filled: Decimal | None = None,
        average: Decimal | None = None,
        fee: Decimal | None = None,
        fee_currency: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> OrderRecord:
        """The exchange accepted the order and gave it an id."""
        return await self._order_event(
            EventKind.ACK, client_order_id, status, exchange_order_id=exchange_order_id, filled=filled,
            average=average, fee=fee, fee_currency=fee_currency, payload=payload,
        )

    async def update_order(
        self,
        client_order_id: str,
        *,
        status: OrderStatus,
        exchange_order_id: str | None = None,
        filled: Decimal | None = None,
        average: Decimal | None = None,
        fee: Decimal | None = None,
        fee_currency: str | None = None,
        reason: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> OrderRecord:
        """A later observation of the order (poll, reconciliation, or LOST when it cannot be found)."""
        return await self._order_event(
            EventKind.ORDER, client_order_id, status, exchange_order_id=exchange_order_id, filled=filled,
            average=average, fee=fee, fee_currency=fee_currency, reason=reason, payload=payload,
        )

    async def cancel(
        self,
        client_order_id: str,
        reason: str = "",
        *,
        confirmed: bool = True,
        filled: Decimal | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> OrderRecord:
        """A cancel: `confirmed=False` records the request only, True marks the order cancelled."""
        status = OrderStatus.CANCELLED if confirmed else None
        return await self._order_event(
            EventKind.CANCEL, client_order_id, status, filled=filled, reason=reason,
            payload={**(payload or {}), "confirmed": confirmed},
        )

    async def reject(
        self, client_order_id: str, reason: str, payload: Mapping[str, Any] | None = None
    ) -> OrderRecord:
        """The exchange refused the order (or we decided not to send it after the intent)."""
        return await self._order_event(
            EventKind.REJECT, client_order_id, OrderStatus.REJECTED, reason=reason, payload=payload
        )

    async def _order_event(
        self,
        kind: EventKind,
        client_order_id: str,
        status: OrderStatus | None,
        *,
        exchange_order_id: str | None = None,
        filled: Decimal | None = None,
        average: Decimal | None = None,
        fee: Decimal | None = None,
        fee_currency: str | None = None,
        reason: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> OrderRecord:
        _exact(filled=filled, average=average, fee=fee)
        ts = self._clock()
        if reason is not None:
            reason = self._scrubber.text(reason)
        body = self._payload(payload, {
            "client_order_id": client_order_id, "status": status.value if status else None,
            "exchange_order_id": exchange_order_id, "filled": filled, "average": average, "fee": fee,
            "fee_currency": fee_currency, "reason": reason or None,
        })

        async def work(conn: AsyncConnection) -> OrderRecord:
            current = await self._get_order(conn, client_order_id)
            if current is None:
                raise AuditWriteError(f"unknown client order id {client_order_id} (no intent recorded)")
            values: dict[str, Any] = {"updated_at": ts}
            if status is not None and advance(current.status, status) != current.status:
                values["status"] = status.value
            if exchange_order_id:
                values["exchange_order_id"] = exchange_order_id
            if filled is not None and filled >= current.filled:
                values["filled"] = filled
                if average is not None:
                    values["average"] = average
            elif average is not None and current.average is None:
                values["average"] = average
            if fee is not None:
                values["fee"] = fee
                values["fee_currency"] = fee_currency
            if reason:
                values["reason"] = (current.reason + "; " + reason) if current.reason else reason
            await self._append(conn, kind, body, venue=current.venue, symbol=current.symbol, asset=None,
                               cycle=self.cycle, ts=ts)
            await conn.execute(
                sa.update(Order).where(Order.client_order_id == client_order_id).values(**values)
            )
            updated = await self._get_order(conn, client_order_id)
            assert updated is not None
            before.append(current.status)
            return updated

        before: list[str] = []
        rec = await self._write(work)
        if self.on_order is not None and before:
            with contextlib.suppress(Exception):  # a metrics hook never fails a committed write
                self.on_order(str(kind), before[-1], rec, reason)
        return rec

    async def fill(
        self,
        client_order_id: str | None,
        *,
        venue: str,
        trade_id: str,
        amount: Decimal,
        price: Decimal,
        fee: Decimal | None = None,
        fee_currency: str | None = None,
        ts: datetime | None = None,
        symbol: str | None = None,
        side: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record a trade; False (and nothing written) if this venue's trade id is already recorded."""
        _exact(amount=amount, price=price, fee=fee)
        now = self._clock()
        trade_ts = ts or now
        body = self._payload(payload, {
            "client_order_id": client_order_id, "trade_id": trade_id, "amount": amount, "price": price,
            "fee": fee, "fee_currency": fee_currency, "timestamp": trade_ts, "side": side,
        })

        async def work(conn: AsyncConnection) -> bool:
            dup = await conn.scalar(
                sa.select(Fill.id).where(Fill.venue == venue, Fill.trade_id == trade_id)
            )
            if dup is not None:
                return False
            order = await self._get_order(conn, client_order_id) if client_order_id else None
            sym = symbol or (order.symbol if order else None)
            sd = side or (order.side if order else None)
            await self._append(conn, EventKind.FILL, body, venue=venue, symbol=sym, asset=None,
                               cycle=self.cycle, ts=now)
            await conn.execute(sa.insert(Fill).values(
                keeper=self.keeper, venue=venue, trade_id=trade_id, client_order_id=client_order_id,
                symbol=sym, side=sd, amount=amount, price=price, fee=fee, fee_currency=fee_currency,
                ts=trade_ts,
            ))
            if order is not None:
                status = await self._apply_fills(conn, order, now)
                if status is not None:
                    moved.append((order, status))
            return True

        moved: list[tuple[OrderRecord, str]] = []
        recorded = await self._write(work)
        if self.on_order is not None and moved:
            with contextlib.suppress(Exception):  # a metrics hook never fails a committed write
                self.on_order(str(EventKind.FILL), moved[-1][0].status, replace(moved[-1][0], status=moved[-1][1]),
                              None)
        return recorded

    async def _apply_fills(self, conn: AsyncConnection, order: OrderRecord, now: datetime) -> str | None:
        """Sum the order's fills into its row; returns the new status when the fills moved it."""
        rows = (await conn.execute(
            sa.select(Fill.amount, Fill.price, Fill.fee, Fill.fee_currency)
            .where(Fill.client_order_id == order.client_order_id)
        )).all()
        total = sum((r.amount for r in rows), Decimal(0))
        values: dict[str, Any] = {"updated_at": now}
        if total >= order.filled and total > 0:
            values["filled"] = total
            values["average"] = sum((r.amount * r.price for r in rows), Decimal(0)) / total
            currencies = {r.fee_currency for r in rows if r.fee is not None}
            if len(currencies) == 1:
                values["fee"] = sum((r.fee for r in rows if r.fee is not None), Decimal(0))
                values["fee_currency"] = currencies.pop()
            status = OrderStatus.FILLED if total >= order.amount else OrderStatus.PARTIALLY_FILLED
            if advance(order.status, status) != order.status:
                values["status"] = status.value
        await conn.execute(
            sa.update(Order).where(Order.client_order_id == order.client_order_id).values(**values)
        )
        return str(values["status"]) if "status" in values else None

    async def error(
        self,
        message: str,
        *,
        client_order_id: str | None = None,
        venue: str | None = None,
        symbol: str | None = None,
        error_type: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> EventRecord:
        """An error worth remembering (shown by `hedged status` as the last error)."""
        return await self.append(
            EventKind.ERROR,
            {**(payload or {}), "message": self._scrubber.text(message), "client_order_id": client_order_id,
             "error_type": error_type},
            venue=venue, symbol=symbol,
        )

    async def alert(
        self, name: str, level: str, message: str, payload: Mapping[str, Any] | None = None, *,
        venue: str | None = None, symbol: str | None = None, asset: str | None = None,
    ) -> EventRecord:
        return await self.append(
            EventKind.ALERT, {**(payload or {}), "name": name, "level": level, "message": message},
            venue=venue, symbol=symbol, asset=asset,
        )

    async def record_cycle(self, **values: Any) -> CycleRecord:
        """One instrument's inputs and decision for the current cycle (start_cycle() first)."""
        return (await self.record_cycles([NewCycle(**values)], summarise=False))[0]

    async def record_cycles(self, entries: Iterable[NewCycle], *, summarise: bool = True) -> list[CycleRecord]:
        """Every instrument's inputs and decision for the current cycle, in one durable commit.

        Why one commit: a cycle over 20 instruments would otherwise pay 20 fsyncs before its first order.
        With `quiet_every` set, a quiet instrument's row is written only when it says something new or as a
        heartbeat (hedged/audit/quiet.py); rows with an order are always written. Returns the rows written.
        """
        cycle = self.cycle if self.cycle is not None else self.start_cycle()
        ts = self._clock()
        items = list(entries)
        counts: dict[quiet.Key, int] | None = None
        new_quiet = self._quiet
        if summarise and self.quiet_every > 0:
            rows = {(e.venue, e.symbol): quiet.Row(e.action, tuple(str(r) for r in e.reasons), {
                "exposure": e.exposure, "hedge": e.hedge, "inflight": e.inflight, "target": e.target,
                "drift": e.drift, "mark": e.mark, "band": e.band, "funding_rate": e.funding_rate,
                "basis": e.basis}, ts) for e in items}
            new_quiet, counts = quiet.select(self._quiet, rows, self.quiet_every)
        prepared: list[tuple[NewCycle, JsonValue, dict[str, Any]]] = []
        for e in items:
            n = counts.get((e.venue, e.symbol)) if counts is not None else 1
            if n is None:
                continue
            nums = {"exposure": e.exposure, "hedge": e.hedge, "inflight": e.inflight, "target": e.target,
                    "drift": e.drift, "mark": e.mark, "band": e.band, "funding_rate": e.funding_rate,
                    "basis": e.basis}
            _exact(**nums)
            reason_list = [self._scrubber.text(str(r)) for r in e.reasons]
            extra = {"quiet": n} if n > 1 else {}
            body = self._payload({**(e.payload or {}), **extra}, {**nums, "action": e.action,
                                                                  "reasons": reason_list})
            row: dict[str, Any] = {
                "keeper": self.keeper, "cycle": cycle, "ts": ts, "venue": e.venue, "symbol": e.symbol, **nums,
                "action": e.action, "reasons": reason_list,
            }
            prepared.append((e, body, row))

        async def work(conn: AsyncConnection) -> list[CycleRecord]:
            await self._append_batch(conn, [
                (NewEvent(EventKind.CYCLE, None, e.venue, e.symbol, e.asset, cycle), body) for e, body, _ in prepared
            ], ts)
            rows = [row for _, _, row in prepared]
            ids = (await conn.execute(
                sa.insert(Cycle).returning(Cycle.id, sort_by_parameter_order=True), rows)).scalars().all()
            return [CycleRecord(id=i, **row) for i, row in zip(ids, rows, strict=True)]

        written = await self._write(work) if prepared else []
        self._quiet = new_quiet  # only once the rows are durable
        return written

    async def record_state(
        self, state: TradingState, reason: str = "", payload: Mapping[str, Any] | None = None
    ) -> EventRecord:
        """The keeper's trading state changed (or was confirmed at start)."""
        return await self.append(
            EventKind.STATE, {**(payload or {}), "state": TradingState(state).value, "reason": reason}
        )

    async def command(
        self, state: TradingState, *, via: str, reason: str = "", by: Mapping[str, Any] | None = None,
        origin: HaltOrigin = HaltOrigin.OPERATOR,
    ) -> EventRecord:
        """Request a trading state (CLI halt/resume/reduce-only, MQTT, kill file). `origin` says who halted:
        an operator unless the keeper halts itself on a fault (health reads it back: hedged.halt)."""
        author = dict(by) if by is not None else who()
        return await self.append(
            EventKind.COMMAND,
            {"state": TradingState(state).value, "via": via, "reason": reason, "by": author,
             "origin": HaltOrigin(origin).value},
        )

    # --- reading -------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        """A read connection; any database failure leaves as AuditReadError (the keeper's own type)."""
        try:
            async with self.engine.connect() as conn:
                try:
                    yield conn
                except BaseException:
                    await _discard(conn)
                    raise
        except AuditError:
            raise
        except Exception as exc:
            raise AuditReadError(f"audit store cannot be read: {_short(exc)}") from exc

    async def _get_order(self, conn: AsyncConnection, client_order_id: str) -> OrderRecord | None:
        row = (await conn.execute(
            sa.select(Order).where(Order.client_order_id == client_order_id)
        )).mappings().first()
        return OrderRecord(**row) if row is not None else None

    @_reconnecting
    async def get_order(self, client_order_id: str) -> OrderRecord | None:
        async with self._reading() as conn:
            return await self._get_order(conn, client_order_id)

    @_reconnecting
    async def _orders(self, where: Iterable[sa.ColumnElement[bool]]) -> list[OrderRecord]:
        async with self._reading() as conn:
            rows = (await conn.execute(
                sa.select(Order).where(Order.keeper == self.keeper, *where).order_by(Order.created_at)
            )).mappings().all()
        return [OrderRecord(**r) for r in rows]

    async def unsettled_orders(self, venue: str | None = None) -> list[OrderRecord]:
        """Orders whose fate is not final (intent, sent, open, partially filled): reconcile these on start."""
        where: list[sa.ColumnElement[bool]] = [Order.status.in_([s.value for s in UNSETTLED])]
        if venue is not None:
            where.append(Order.venue == venue)
        return await self._orders(where)

    async def open_orders(self, venue: str | None = None) -> list[OrderRecord]:
        """Orders known to rest on the book (open, partially filled)."""
        where: list[sa.ColumnElement[bool]] = [Order.status.in_([s.value for s in LIVE])]
        if venue is not None:
            where.append(Order.venue == venue)
        return await self._orders(where)

    async def recent_orders(self, since: datetime, venue: str | None = None) -> list[OrderRecord]:
        """Orders created at or after `since` (rate and turnover caps; sum notional_usd yourself)."""
        where: list[sa.ColumnElement[bool]] = [Order.created_at >= since]
        if venue is not None:
            where.append(Order.venue == venue)
        return await self._orders(where)

    @_reconnecting
    async def fills_for(self, client_order_id: str) -> list[FillRecord]:
        async with self._reading() as conn:
            rows = (await conn.execute(
                sa.select(Fill).where(Fill.client_order_id == client_order_id).order_by(Fill.id)
            )).mappings().all()
        return [FillRecord(**r) for r in rows]

    @_reconnecting
    async def fills_total(self, client_order_id: str) -> Decimal:
        """How much of an order the recorded fills account for (summed exactly, in Decimal)."""
        async with self._reading() as conn:
            rows = (await conn.execute(
                sa.select(Fill.amount).where(Fill.client_order_id == client_order_id)
            )).scalars().all()
        return sum(rows, Decimal(0))

    @_reconnecting
    async def last_cycles(self) -> list[CycleRecord]:
        """The latest cycle row of each (venue, symbol)."""
        latest = (
            sa.select(sa.func.max(Cycle.id))
            .where(Cycle.keeper == self.keeper)
            .group_by(Cycle.venue, Cycle.symbol)
        )
        async with self._reading() as conn:
            rows = (await conn.execute(
                sa.select(Cycle).where(Cycle.id.in_(latest)).order_by(Cycle.venue, Cycle.symbol)
            )).mappings().all()
        return [CycleRecord(**r) for r in rows]

    @_reconnecting
    async def last_event(self, kind: str) -> EventRecord | None:
        async with self._reading() as conn:
            row = (await conn.execute(
                sa.select(Event).where(Event.keeper == self.keeper, Event.kind == str(kind))
                .order_by(Event.id.desc()).limit(1)
            )).mappings().first()
        return EventRecord(**row) if row is not None else None

    @_reconnecting
    async def head_id(self) -> int:
        """The id of this keeper's newest event (0 if none): where a follower starts."""
        async with self._reading() as conn:
            return int(await conn.scalar(sa.select(sa.func.max(Event.id)).where(Event.keeper == self.keeper)) or 0)

    async def last_error(self) -> EventRecord | None:
        return await self.last_event(EventKind.ERROR)

    async def requested_state(self) -> TradingState:
        """The state most recently requested by a command; RUNNING if none ever was."""
        event = await self.last_event(EventKind.COMMAND)
        if event is None or not isinstance(event.payload, dict):
            return TradingState.RUNNING
        try:
            return TradingState(str(event.payload.get("state")))
        except ValueError:
            return TradingState.RUNNING

    async def current_state(self) -> TradingState | None:
        """The state the keeper last recorded (None if it never did)."""
        event = await self.last_event(EventKind.STATE)
        if event is None or not isinstance(event.payload, dict):
            return None
        try:
            return TradingState(str(event.payload.get("state")))
        except ValueError:
            return None

    @_reconnecting
    async def tail(self, n: int = 20, *, all_keepers: bool = False) -> list[EventRecord]:
        """The last n events, oldest first."""
        query = sa.select(Event).order_by(Event.id.desc()).limit(n)
        if not all_keepers:
            query = query.where(Event.keeper == self.keeper)
        async with self._reading() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [EventRecord(**r) for r in reversed(rows)]

    @_reconnecting
    async def events_after(
        self, after_id: int, limit: int = 1000, *, all_keepers: bool = False, since: datetime | None = None,
        kinds: Iterable[str] | None = None,
    ) -> list[EventRecord]:
        """Events with id > after_id in id order (optionally of some kinds only): a cursor for followers."""
        query = sa.select(Event).where(Event.id > after_id).order_by(Event.id).limit(limit)
        if not all_keepers:
            query = query.where(Event.keeper == self.keeper)
        if since is not None:
            query = query.where(Event.ts >= since)
        if kinds is not None:
            query = query.where(Event.kind.in_([str(k) for k in kinds]))
        async with self._reading() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [EventRecord(**r) for r in rows]

    async def iter_events(
        self, since: datetime | None = None, *, all_keepers: bool = False, batch: int = 1000
    ) -> AsyncIterator[EventRecord]:
        """All events in order, fetched in batches (for export)."""
        after = 0
        while True:
            rows = await self.events_after(after, batch, all_keepers=all_keepers, since=since)
            for row in rows:
                yield row
            if len(rows) < batch:
                return
            after = rows[-1].id

    async def _chain_starts(self, conn: AsyncConnection) -> dict[str, ChainStart]:
        """Each pruned keeper's latest checkpoint: where its chain now starts."""
        latest = sa.select(sa.func.max(Event.id)).where(Event.kind == EventKind.CHECKPOINT).group_by(Event.keeper)
        rows = (await conn.execute(sa.select(Event.keeper, Event.payload).where(Event.id.in_(latest)))).all()
        out: dict[str, ChainStart] = {}
        for keeper, payload in rows:
            start = chain_start(payload)
            if start is not None:
                out[keeper] = start
        return out

    async def prune(self, before: datetime) -> tuple[int, EventRecord | None]:
        """Delete this keeper's events (and cycle rows) older than `before`, keeping `audit verify` working.

        A contiguous prefix of the chain goes; a `checkpoint` event appended at the head records the first
        kept event, the hash it follows, how many were pruned (in all) and the last pruned hash, so a verifier
        tells pruning from tampering. The newest event is never pruned; the latest command (halt, resume…) is
        carried over as a new command event when it would go, so the requested trading state never changes.
        Returns (events pruned now, the checkpoint event or None when nothing was old enough).
        """
        if before.tzinfo is None:
            raise ValueError("before must carry a timezone")
        ts = self._clock()

        async def work(conn: AsyncConnection) -> tuple[int, EventRecord | None]:
            mine = Event.keeper == self.keeper
            head = await conn.scalar(sa.select(sa.func.max(Event.id)).where(mine))
            last = await conn.scalar(sa.select(sa.func.max(Event.id)).where(mine, Event.ts < before,
                                                                            Event.id < (head or 0)))
            if last is None:
                return 0, None
            last_hash = await conn.scalar(sa.select(Event.hash).where(Event.id == last))
            first_kept = await conn.scalar(sa.select(sa.func.min(Event.id)).where(mine, Event.id > last))
            count = int(await conn.scalar(sa.select(sa.func.count()).select_from(Event).where(
                mine, Event.id <= last)) or 0)
            starts = await self._chain_starts(conn)
            earlier = starts[self.keeper].pruned if self.keeper in starts else 0
            command = (await conn.execute(sa.select(Event.id, Event.payload).where(
                mine, Event.kind == EventKind.COMMAND).order_by(Event.id.desc()).limit(1))).first()
            await conn.execute(sa.delete(Event).where(mine, Event.id <= last))
            await conn.execute(sa.delete(Cycle).where(Cycle.keeper == self.keeper, Cycle.ts < before))
            body = self._payload({"first_id": first_kept, "last_id": last, "last_hash": last_hash,
                                  "pruned": earlier + count, "rows": count, "before": before})
            checkpoint = await self._append(conn, EventKind.CHECKPOINT, body, venue=None, symbol=None, asset=None,
                                            cycle=self.cycle, ts=ts)
            if command is not None and command.id <= last and isinstance(command.payload, dict):
                why = f"carried over from pruned event {command.id}: {command.payload.get('reason', '')}"
                carried = {**command.payload, "via": "checkpoint", "reason": why}
                await self._append(conn, EventKind.COMMAND, self._payload(carried), venue=None, symbol=None,
                                   asset=None, cycle=self.cycle, ts=ts)
            return count, checkpoint

        return await self._write(work)

    async def verify(self, batch: int = 2000, anchor: tuple[str, str, int] | None = None,
                     anchors: Iterable[tuple[str, str, int]] = ()) -> VerifyResult:
        """Walk every keeper's chain in this database; stop at the first bad row. Each anchor (keeper, hash,
        count): that keeper's COUNT-th event (pruned ones counted) must have HASH — a store truncated below
        it fails."""
        async with self._reading() as conn:
            walker = ChainWalker(await self._chain_starts(conn), anchor, anchors=anchors)
        after = 0
        async with self._reading() as conn:
            while True:
                rows = (await conn.execute(
                    sa.select(Event).where(Event.id > after).order_by(Event.id).limit(batch)
                )).mappings().all()
                if not walker.feed(ChainRow(**r) for r in rows):
                    break
                if len(rows) < batch:
                    break
                after = rows[-1]["id"]
        return walker.result()

    async def verify_projection(self, batch: int = 2000) -> str:
        """Replay every order's chained events and compare with the `orders` table the keeper acts on at
        restart; the first disagreement as one line, or "" if they agree. Why: the chain proves the events,
        but an edit to the projection would otherwise pass unseen."""
        expected: dict[str, dict[str, Any]] = {}
        kinds = [str(k) for k in (EventKind.INTENT, EventKind.SENT, EventKind.ACK, EventKind.ORDER, EventKind.FILL,
                                  EventKind.CANCEL, EventKind.REJECT)]
        after = 0
        async with self.engine.connect() as conn:
            while True:
                rows = (await conn.execute(sa.select(Event.id, Event.kind, Event.venue, Event.symbol, Event.payload)
                                           .where(Event.id > after, Event.kind.in_(kinds))
                                           .order_by(Event.id).limit(batch))).all()
                for r in rows:
                    _replay(expected, r.kind, r.venue, r.symbol, r.payload if isinstance(r.payload, dict) else {})
                if len(rows) < batch:
                    break
                after = rows[-1].id
            orders = [OrderRecord(**r) for r in (await conn.execute(sa.select(Order))).mappings().all()]
        for o in orders:
            e = expected.pop(o.client_order_id, None)
            if e is None:
                return f"orders row {o.client_order_id}: no intent event in the chain (inserted)"
            have = {"venue": o.venue, "symbol": o.symbol, "side": o.side, "amount": o.amount, "price": o.price,
                    "status": o.status, "filled": o.filled}
            for field, want in e.items():
                if field in have and have[field] != want:
                    return (f"orders row {o.client_order_id}: {field} is {have[field]} but its events say {want} "
                            f"(edited)")
        if expected:
            cid = sorted(expected)[0]
            return f"orders row {cid}: missing, though its intent is in the chain (deleted)"
        return ""

    @_reconnecting
    async def count_events(self) -> int:
        async with self._reading() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(Event)) or 0)


async def _discard(conn: AsyncConnection) -> None:
    """Never hand a connection back to the pool after a failure: a cancelled or timed-out asyncpg call can
    leave it mid-operation ("another operation is in progress"), failing every later use. Reconnect instead."""
    with contextlib.suppress(Exception):
        await conn.invalidate()


def _dec_or_none(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except ArithmeticError:
        return None


def _replay(orders: dict[str, dict[str, Any]], kind: str, venue: str | None, symbol: str | None,
            p: Mapping[str, Any]) -> None:
    """Apply one order event to the replayed projection, by the same rules the writes use."""
    cid = str(p.get("client_order_id") or "")
    if kind == EventKind.INTENT:
        orders[cid] = {"venue": venue, "symbol": symbol, "side": p.get("side"), "amount": _dec_or_none(p.get("amount")),
                       "price": _dec_or_none(p.get("price")), "status": OrderStatus.INTENT.value,
                       "filled": Decimal(0), "_fills": Decimal(0)}
        return
    o = orders.get(cid)
    if o is None:
        return  # a fill of an order we never placed (by hand), or an event of a deleted intent
    if kind == EventKind.FILL:
        o["_fills"] += _dec_or_none(p.get("amount")) or Decimal(0)
        total = o["_fills"]
        if total >= o["filled"] and total > 0:
            o["filled"] = total
            status = OrderStatus.FILLED if total >= (o["amount"] or 0) else OrderStatus.PARTIALLY_FILLED
            if _advances(o["status"], status):
                o["status"] = status.value
        return
    new, filled = p.get("status"), _dec_or_none(p.get("filled"))
    if new in {s.value for s in OrderStatus} and _advances(o["status"], OrderStatus(new)):
        o["status"] = new
    if filled is not None and filled >= o["filled"]:
        o["filled"] = filled


def _advances(current: str, new: OrderStatus) -> bool:
    """Whether replaying `new` moves the order, by the state machine the writes use (hedged/order_state.py)."""
    try:
        return advance(current, new) != OrderStatus(current)
    except IllegalTransition:
        return False


def _exact(**values: Any) -> None:
    for name, value in values.items():
        if value is not None and not isinstance(value, Decimal):
            raise TypeError(f"{name} must be a Decimal, not {type(value).__name__}")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300] if first else type(exc).__name__
