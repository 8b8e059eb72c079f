"""`hedged status`: what an operator needs at a glance, read from the audit store (read-only).

Three questions, in this order: is the keeper alive (its last cycle's age against the interval, whether
an account lock is held, whether it stopped cleanly); what is it allowed to do and why (the trading state
it recorded, the command, breaker, kill file or audit failure behind it); and how the hedge stands per
instrument. `assess` and `render` are pure (records and `now` in, a view and text out), so every verdict
is testable with a fixed clock; `collect` is the shell that reads the store and probes the locks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hedged.model import TradingState

if TYPE_CHECKING:
    from hedged.audit.store import AuditStore, CycleRecord, EventRecord, OrderRecord
    from hedged.config import Config

DEFAULT_FUNDING_HOURS = Decimal(8)
PLACES = Decimal("1e-12")
STATES = frozenset(s.value for s in TradingState)


def stale_after(interval: float) -> float:
    """Seconds without a cycle after which a keeper is not cycling: three intervals plus slow-exchange slack."""
    return 3 * interval + 30.0


# --- the view ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lock:
    """Whether some process holds one of this config's account locks right now."""

    held: bool | None  # None: could not tell
    detail: str


@dataclass(frozen=True)
class Alive:
    verdict: str  # running | not cycling | not running | stopped | never ran | unknown
    detail: str
    last_cycle: datetime | None
    age: float | None  # seconds since the last cycle
    interval: float
    lock: Lock


@dataclass(frozen=True)
class Trading:
    state: str  # a TradingState value
    since: datetime | None
    why: str  # in words: the command and who sent it, the breaker, the kill file, the audit store
    requested: str  # what the last command asked for (RUNNING when none)
    pending: str  # non-empty when the keeper has not applied the requested state yet


@dataclass(frozen=True)
class Instrument:
    venue: str
    symbol: str
    cycle: int
    time: datetime
    action: str
    reasons: tuple[str, ...]
    exposure: Decimal | None  # coins of the hedged asset
    hedge: Decimal | None  # base coin, short negative
    inflight: Decimal | None
    target: Decimal | None
    drift: Decimal | None
    band: Decimal | None
    mark: Decimal | None
    funding_rate: Decimal | None
    liquidation_price: Decimal | None
    funding_hours: Decimal
    same_coin: bool  # the asset is the instrument's base coin (so hedge/exposure is the achieved ratio)

    @property
    def drift_pct_of_band(self) -> Decimal | None:
        if self.drift is None or not self.band:
            return None
        return abs(self.drift) / self.band * 100

    @property
    def ratio(self) -> Decimal | None:
        """Achieved hedge ratio: −hedge / exposure (same coin only)."""
        if not self.same_coin or self.hedge is None or not self.exposure:
            return None
        return -self.hedge / self.exposure

    @property
    def funding_usd_per_day(self) -> Decimal | None:
        """> 0: the hedge pays funding; < 0: it earns. rate × hedge × mark × periods a day."""
        if self.funding_rate is None or self.hedge is None or self.mark is None or self.funding_hours <= 0:
            return None
        return self.funding_rate * self.hedge * self.mark * (Decimal(24) / self.funding_hours)

    @property
    def liquidation_distance_pct(self) -> Decimal | None:
        if self.liquidation_price is None or self.liquidation_price <= 0 or not self.mark or not self.hedge:
            return None
        return abs(self.mark - self.liquidation_price) / self.mark * 100


@dataclass(frozen=True)
class OpenOrder:
    client_order_id: str
    venue: str
    symbol: str
    side: str
    amount: Decimal
    filled: Decimal
    price: Decimal | None
    status: str
    post_only: bool
    reduce_only: bool
    created: datetime


@dataclass(frozen=True)
class LastError:
    time: datetime
    message: str
    error_type: str


@dataclass(frozen=True)
class StatusView:
    keeper: str
    now: datetime
    alive: Alive
    trading: Trading
    instruments: tuple[Instrument, ...] = ()
    orders: tuple[OpenOrder, ...] = ()
    last_error: LastError | None = None
    notes: tuple[str, ...] = field(default=())


# --- the pure part -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Records:
    """What `collect` read: the store's records and the live probes, before any judgement."""

    keeper: str
    interval: float
    start: EventRecord | None
    stop: EventRecord | None
    states: Sequence[EventRecord]  # newest first
    command: EventRecord | None
    cycles: Sequence[CycleRecord]
    cycle_payloads: Mapping[tuple[str, str], Mapping[str, Any]]
    same_coin: Mapping[tuple[str, str], bool]
    orders: Sequence[OrderRecord]
    error: EventRecord | None
    lock: Lock
    kill_file: str = ""  # as configured
    kill_file_exists: bool = False


def _dec(v: Any) -> Decimal | None:
    if v is None or v == "":
        return None
    try:
        return Decimal(str(v))
    except ArithmeticError:
        return None


def age_words(seconds: float) -> str:
    s = max(0.0, seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 36 * 3600:
        h, m = divmod(int(s // 60), 60)
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{s / 86400:.1f} d"


def _ago(now: datetime, t: datetime) -> str:
    return f"{age_words((now - t).total_seconds())} ago"


def _newer(a: EventRecord | None, b: EventRecord | None) -> bool:
    """a happened after b (by event id: the chain's order)."""
    return a is not None and (b is None or a.id > b.id)


def assess_alive(r: Records, now: datetime) -> Alive:
    last = max((c.ts for c in r.cycles), default=None)
    age = (now - last).total_seconds() if last is not None else None
    limit = stale_after(r.interval)
    every = f"every {age_words(r.interval)}"
    seen = f"last cycle {age_words(age)} ago ({every})" if age is not None else f"no cycle yet ({every})"

    def alive(verdict: str, detail: str) -> Alive:
        return Alive(verdict, detail, last, age, r.interval, r.lock)

    if r.start is None and last is None:
        return alive("never ran", "no keeper has written to this store under this name")
    if _newer(r.stop, r.start):
        assert r.stop is not None
        detail = f"stopped cleanly {_ago(now, r.stop.ts)}; {seen}"
        if r.lock.held:
            detail += f"; but {r.lock.detail}"
        return alive("stopped", detail)
    if r.lock.held is True:
        if age is not None and age > limit:
            return alive("not cycling", f"{r.lock.detail}, but {seen}: stuck or cannot reach the exchange")
        return alive("running", f"{seen}; {r.lock.detail}")
    if r.lock.held is False:
        started = f"started {_ago(now, r.start.ts)}" if r.start is not None else "started"
        return alive("not running", f"{started} and never stopped cleanly (crashed or killed); {seen}; "
                                    f"{r.lock.detail}")
    # the lock could not be checked: judge by the cycles alone
    if age is not None and age <= limit:
        return alive("running", f"{seen}; {r.lock.detail}")
    return alive("unknown", f"{seen}, no clean stop recorded; {r.lock.detail}")


def _by(payload: Mapping[str, Any]) -> str:
    by = payload.get("by")
    if isinstance(by, Mapping) and by.get("user"):
        return f" ({by.get('user')}@{by.get('host')})" if by.get("host") else f" ({by.get('user')})"
    return ""


def _command_words(cmd: EventRecord, now: datetime) -> str:
    p = cmd.payload if isinstance(cmd.payload, Mapping) else {}
    via = str(p.get("via") or "?")
    reason = str(p.get("reason") or "")
    state = str(p.get("state") or "?")
    if via == "circuit-breaker":
        return f"circuit breaker {_ago(now, cmd.ts)}: {reason or 'too many failed cycles'}"
    verb = {"HALTED": "halt", "PAUSED": "pause", "REDUCING": "reduce-only", "RUNNING": "resume"}.get(state, state)
    return f"{verb} by {via}{_by(p)} {_ago(now, cmd.ts)}" + (f": {reason}" if reason else ": no reason given")


def assess_trading(r: Records, now: datetime, alive: Alive) -> Trading:
    cmd = r.command
    cmd_payload = cmd.payload if cmd is not None and isinstance(cmd.payload, Mapping) else {}
    requested = str(cmd_payload.get("state")) if cmd_payload.get("state") in STATES else "RUNNING"
    # the newest real trading state (`reconciled` and other markers are not states) since the last start
    recorded = next((e for e in r.states if isinstance(e.payload, Mapping) and e.payload.get("state") in STATES
                     and (r.start is None or e.id > r.start.id)), None)
    since: datetime | None
    if recorded is not None:
        assert isinstance(recorded.payload, Mapping)
        state, since = str(recorded.payload["state"]), recorded.ts
        reason = str(recorded.payload.get("reason") or "")
    else:  # a keeper starts RUNNING and records only changes
        state, since, reason = "RUNNING", (r.start.ts if r.start is not None else None), ""

    why = reason
    if state != "RUNNING" and cmd is not None and (reason in ("", "command") or reason.startswith("command")) \
            and requested == state:
        why = _command_words(cmd, now)
    elif state == "RUNNING" and not reason:
        why = (f"last command: {_command_words(cmd, now)}" if cmd is not None
               else "no command ever sent; nothing blocks trading")
    notes: list[str] = []
    if r.kill_file_exists:
        notes.append(f"kill file {r.kill_file} exists now (the keeper halts while it does; remove it to resume)")
    pending = ""
    if requested != state and alive.verdict in ("running", "not cycling", "unknown") and not r.kill_file_exists:
        pending = f"{requested} requested {_ago(now, cmd.ts) if cmd else ''}; applied at the next cycle"
    elif requested != state and alive.verdict in ("not running", "stopped"):
        pending = f"{requested} requested; a restarted keeper starts from that"
    if notes:
        why = "; ".join([why, *notes]) if why else "; ".join(notes)
    return Trading(state, since, why, requested, pending)


def _instrument(c: CycleRecord, payload: Mapping[str, Any], same_coin: bool) -> Instrument:
    hours = _dec(payload.get("funding_interval_hours")) or DEFAULT_FUNDING_HOURS
    return Instrument(
        venue=c.venue, symbol=c.symbol, cycle=c.cycle, time=c.ts, action=c.action,
        reasons=tuple(str(x) for x in (c.reasons or [])), exposure=c.exposure, hedge=c.hedge,
        inflight=c.inflight, target=c.target, drift=c.drift, band=c.band, mark=c.mark,
        funding_rate=c.funding_rate, liquidation_price=_dec(payload.get("liquidation_price")),
        funding_hours=hours, same_coin=same_coin,
    )


def assess(r: Records, now: datetime) -> StatusView:
    alive = assess_alive(r, now)
    trading = assess_trading(r, now, alive)
    instruments = tuple(_instrument(c, r.cycle_payloads.get((c.venue, c.symbol), {}),
                                    r.same_coin.get((c.venue, c.symbol), False)) for c in r.cycles)
    orders = tuple(OpenOrder(o.client_order_id, o.venue, o.symbol, o.side, o.amount, o.filled, o.price, o.status,
                             o.post_only, o.reduce_only, o.created_at) for o in r.orders)
    err = None
    if r.error is not None:
        p = r.error.payload if isinstance(r.error.payload, Mapping) else {}
        err = LastError(r.error.ts, str(p.get("message") or ""), str(p.get("error_type") or ""))
    return StatusView(r.keeper, now, alive, trading, instruments, orders, err)


# --- words and numbers for people ---------------------------------------------------------------------


def human(d: Decimal | None, places: int = 4) -> str:
    """Rounded for reading: thousands separated, at most `places` decimals (fewer for big numbers)."""
    if d is None:
        return "—"
    if abs(d) >= 10000:
        places = 0
    elif abs(d) >= 100:
        places = min(places, 2)
    s = f"{d:,.{places}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def usd(d: Decimal | None) -> str:
    if d is None:
        return "—"
    sign = "-" if d < 0 else ""
    return f"{sign}${abs(d):,.0f}" if abs(d) >= 100 else f"{sign}${abs(d):,.2f}"


def _funding_words(v: Decimal | None) -> str:
    if v is None:
        return "funding —"
    if v == 0:
        return "funding $0/day"
    return f"{'pays' if v > 0 else 'earns'} {usd(abs(v))}/day funding"


LABEL = {"running": "RUNNING", "not cycling": "NOT CYCLING", "not running": "NOT RUNNING", "stopped": "STOPPED",
         "never ran": "NEVER RAN", "unknown": "UNKNOWN"}


def render(v: StatusView) -> str:
    """Plain text, each line under 80 columns where the data allows; no markup."""
    out = [f"keeper {v.keeper}: {LABEL.get(v.alive.verdict, v.alive.verdict.upper())}"]
    out.extend(f"  {part}" for part in v.alive.detail.split("; "))  # one fact a line: fits 80 columns
    t = v.trading
    since = f" since {t.since:%Y-%m-%d %H:%M:%S}Z ({_ago(v.now, t.since)})" if t.since else ""
    was = " (last recorded)" if v.alive.verdict in ("not running", "stopped", "unknown") else ""
    out.append(f"trading {t.state}{was}{since}")
    if t.why:
        out.append(f"  why: {t.why}")
    if t.pending:
        out.append(f"  pending: {t.pending}")
    if v.instruments:
        out.append("instruments")
    for i in v.instruments:
        base = i.symbol.split("/")[0]
        head = f"  {i.venue} {i.symbol}  {i.action}, cycle {i.cycle}, {_ago(v.now, i.time)}, mark {human(i.mark, 2)}"
        out.append(head)
        if i.reasons:
            out.append(f"    {'; '.join(i.reasons)}")
        drift_pct = i.drift_pct_of_band
        coin = f" {base}" if i.same_coin else ""
        out.append(f"    exposure {human(i.exposure)}{coin}   hedge {human(i.hedge)} {base}   "
                   f"target {human(i.target)} {base}")
        inflight = f"   in flight {human(i.inflight)}" if i.inflight else ""
        out.append(f"    drift {human(i.drift)} {base} = "
                   + (f"{drift_pct:.0f}% of band" if drift_pct is not None else "— of band")
                   + f" ({human(i.band)}){inflight}")
        ratio = f"ratio {i.ratio:.3f}" if i.ratio is not None else "ratio —"
        dist = i.liquidation_distance_pct
        liq = ("liquidation —" if dist is None else "liquidation >1000% away" if dist >= 1000
               else f"liquidation {dist:.1f}% away")
        out.append(f"    {ratio}   {_funding_words(i.funding_usd_per_day)}   {liq}")
    if v.orders:
        out.append(f"open orders ({len(v.orders)})")
        for o in v.orders:
            flags = "".join(f" {f}" for f, on in (("post-only", o.post_only), ("reduce-only", o.reduce_only)) if on)
            price = f" @ {human(o.price, 2)}" if o.price is not None else ""
            filled = f", {human(o.filled)} filled" if o.filled else ""
            out.append(f"  {o.side} {human(o.amount)} {o.symbol}{price}{flags}  {o.status}{filled}, "
                       f"{_ago(v.now, o.created)}  {o.client_order_id}")
    else:
        out.append("open orders: none")
    if v.last_error is not None:
        e = v.last_error
        out.append(f"last error {_ago(v.now, e.time)}: {e.message}")
    else:
        out.append("last error: none")
    return "\n".join(out) + "\n"


# --- JSON --------------------------------------------------------------------------------------------


def _num(d: Decimal | None) -> str | None:
    """Decimals as strings: exact when short, else rounded to 12 places (far below any lot or tick)."""
    if d is None:
        return None
    q = d.quantize(PLACES) if d.as_tuple().exponent < -12 and d.adjusted() < 15 else d  # type: ignore[operator]
    return format(q.normalize(), "f") if q != 0 else "0"


def _ts(t: datetime | None) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t is not None else None


def as_json(v: StatusView) -> dict[str, Any]:
    a, t = v.alive, v.trading
    return {
        "keeper": v.keeper,
        "now": _ts(v.now),
        "alive": {"verdict": a.verdict, "detail": a.detail, "last_cycle": _ts(a.last_cycle),
                  "last_cycle_age_s": round(a.age, 1) if a.age is not None else None, "interval_s": a.interval,
                  "lock_held": a.lock.held, "lock": a.lock.detail},
        "state": t.state,
        "state_since": _ts(t.since),
        "why": t.why,
        "requested_state": t.requested,
        "pending": t.pending or None,
        "instruments": [
            {"venue": i.venue, "symbol": i.symbol, "cycle": i.cycle, "time": _ts(i.time), "action": i.action,
             "reasons": list(i.reasons), "exposure": _num(i.exposure), "hedge": _num(i.hedge),
             "inflight": _num(i.inflight), "target": _num(i.target), "drift": _num(i.drift), "band": _num(i.band),
             "drift_pct_of_band": _num(i.drift_pct_of_band), "ratio": _num(i.ratio), "mark": _num(i.mark),
             "funding_rate": _num(i.funding_rate), "funding_usd_per_day": _num(i.funding_usd_per_day),
             "liquidation_price": _num(i.liquidation_price),
             "liquidation_distance_pct": _num(i.liquidation_distance_pct)}
            for i in v.instruments
        ],
        "orders": [
            {"client_order_id": o.client_order_id, "venue": o.venue, "symbol": o.symbol, "side": o.side,
             "amount": _num(o.amount), "filled": _num(o.filled), "price": _num(o.price), "status": o.status,
             "post_only": o.post_only, "reduce_only": o.reduce_only, "created": _ts(o.created)}
            for o in v.orders
        ],
        "last_error": ({"time": _ts(v.last_error.time), "message": v.last_error.message,
                        "error_type": v.last_error.error_type or None} if v.last_error is not None else None),
    }


# --- the shell: read the store, probe the locks ------------------------------------------------------


def _proc_flocks() -> dict[tuple[int, int], int] | None:
    """(device, inode) → pid of every flock on this machine, from /proc/locks (None when unreadable)."""
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    held: dict[tuple[int, int], int] = {}
    for line in text.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (a "->" marks a waiter; skip those)
        if len(parts) < 6 or parts[1] != "FLOCK":
            continue
        try:
            major, minor, inode = parts[5].split(":")
            held[(os.makedev(int(major, 16), int(minor, 16)), int(inode))] = int(parts[4])
        except ValueError:
            continue
    return held


def _file_lock(paths: Sequence[Path]) -> Lock:
    """Is any of these lock files flocked? Reads /proc/locks: never takes the lock (a keeper starting at
    that moment must not find it taken by `status`)."""
    existing = [p for p in paths if p.exists()]
    if not existing:
        return Lock(False, "account lock free (no lock file)")
    flocks = _proc_flocks()
    if flocks is None:
        return Lock(None, "account lock not checked (/proc/locks unreadable)")
    by_inode = {inode: pid for (_dev, inode), pid in flocks.items()}
    for p in existing:
        st = p.stat()
        # overlay filesystems (containers) report another device in /proc/locks: fall back to the inode
        pid = flocks.get((st.st_dev, st.st_ino), by_inode.get(st.st_ino))
        if pid is not None:
            return Lock(True, f"account lock held by pid {pid}")
    return Lock(False, "account lock free")


async def _pg_lock(store: AuditStore, accounts: Sequence[str] | None, exchanges: Sequence[str]) -> Lock:
    """Advisory locks held in this database by hedged keepers (their connections are named `hedged-lock …`)."""
    import sqlalchemy as sa

    query = sa.text(
        "SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND a.application_name LIKE 'hedged-lock %'"
    )
    try:
        async with store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    except Exception as exc:
        return Lock(None, f"account lock not checked ({type(exc).__name__})")
    for name, pid in rows:
        account = str(name).removeprefix("hedged-lock ")
        if (accounts is not None and account in accounts) or (
                accounts is None and account.split(" ")[0] in exchanges):
            return Lock(True, f"account lock held by backend pid {pid} ({account})")
    return Lock(False, "account lock free")


async def probe_lock(cfg: Config, store: AuditStore) -> Lock:
    from hedged.audit.lock import AccountLock, config_locks, lock_dir
    from hedged.audit.store import async_url
    from hedged.config import ConfigError

    try:
        locks: list[AccountLock] | None = config_locks(cfg)
    except ConfigError:  # the secrets are not readable here: match by exchange instead of key fingerprint
        locks = None
    u = async_url(cfg.audit_url)
    exchanges = sorted({v.exchange for v in cfg.venues.values()})
    if u.drivername.startswith("sqlite"):
        if locks is not None:
            return _file_lock([lk.path for lk in locks if lk.path is not None])
        # the keys are not readable here (`hedged status` from a shell without the keeper's environment):
        # any lock of the config's exchanges in the lock directory the keeper uses, not only this key's
        configured = str(cfg.resolve(cfg.keeper.lock_dir)) if cfg.keeper.lock_dir else ""
        directory = lock_dir(configured)
        lock = _file_lock(sorted(p for x in exchanges for p in directory.glob(f"{x}-*.lock")))
        if lock.held is None:
            return lock
        return Lock(lock.held, f"{lock.detail} (any {'/'.join(exchanges)} lock: keys not readable here)")
    return await _pg_lock(store, [lk.account for lk in locks] if locks is not None else None, exchanges)


async def _cycle_payloads(store: AuditStore, cycles: Sequence[CycleRecord]) -> dict[tuple[str, str], Any]:
    """The cycle events' payloads (liquidation price, funding interval) of the latest cycle rows."""
    import sqlalchemy as sa

    from hedged.audit.models import Event

    out: dict[tuple[str, str], Any] = {}
    if not cycles:
        return out
    async with store.engine.connect() as conn:
        for c in cycles:
            payload = await conn.scalar(
                sa.select(Event.payload).where(Event.keeper == store.keeper, Event.kind == "cycle",
                                               Event.venue == c.venue, Event.symbol == c.symbol,
                                               Event.cycle == c.cycle).order_by(Event.id.desc()).limit(1))
            if isinstance(payload, Mapping):
                out[(c.venue, c.symbol)] = payload
    return out


async def _recent_states(store: AuditStore, n: int = 20) -> list[EventRecord]:
    import sqlalchemy as sa

    from hedged.audit.models import Event
    from hedged.audit.store import EventRecord

    async with store.engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(Event).where(Event.keeper == store.keeper, Event.kind == "state")
            .order_by(Event.id.desc()).limit(n))).mappings().all()
    return [EventRecord(**r) for r in rows]


async def collect(cfg: Config, store: AuditStore, now: datetime) -> StatusView:
    """Read everything `hedged status` shows (reads only), then judge it as of `now`."""
    start, stop = await store.last_event("start"), await store.last_event("stop")
    states, command = await _recent_states(store), await store.last_event("command")
    cycles, orders, error = await store.last_cycles(), await store.unsettled_orders(), await store.last_error()
    lock = await probe_lock(cfg, store)
    same = {(h.venue, h.instrument): all(x.asset == x.instrument_base for x in cfg.hedge
                                         if (x.venue, x.instrument) == (h.venue, h.instrument)) for h in cfg.hedge}
    kill = cfg.keeper.kill_file
    records = Records(
        keeper=cfg.keeper.name, interval=cfg.keeper.interval, start=start, stop=stop, states=states,
        command=command, cycles=cycles, cycle_payloads=await _cycle_payloads(store, cycles), same_coin=same,
        orders=orders, error=error, lock=lock, kill_file=kill,
        kill_file_exists=bool(kill) and cfg.resolve(kill).exists())
    return assess(records, now)

