"""The service: wake → cycle → sleep, with startup reconciliation, trading states and graceful shutdown.

A cycle is snapshot (venues, in parallel) → follow our orders → plan → guard → execute → audit. It is
woken by `Keeper.wake` — the timer today; streams or commands can set the same event later without any
change here. Trading state is the most severe of: the last command in the audit store (`hedged halt`,
`resume`, `reduce-only`), the kill-switch file, and the circuit breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    stop_never,
    wait_exponential,
    wait_random,
)

from hedged import breaker as brk
from hedged.alerts.hub import AlertHub
from hedged.alerts.monitors import Observation
from hedged.audit.lock import AccountLock, AccountLocked, AccountLockLost
from hedged.audit.store import AuditError, AuditReadError, AuditStore, AuditWriteError, EventKind, NewCycle
from hedged.config import Config
from hedged.decide import base36, decide, settled
from hedged.errors import Transient, VenueError
from hedged.executor import Executor
from hedged.exits import EXIT_LOCKED, EXIT_REFUSED, EXIT_UNREACHABLE, StartFailed
from hedged.exposure import PlanInputError, basis_bps, notional_usd
from hedged.foreign import Watch, candidates, checked, foreign, fresh, schedule
from hedged.halt import HaltOrigin, command_origin, is_fault
from hedged.leverage import apply_account_settings
from hedged.log import get_logger
from hedged.model import (
    BlockedInstrument,
    Cancel,
    Decision,
    GuardResult,
    HedgeTarget,
    KeeperContext,
    OurOrder,
    RecentOrder,
    Snapshot,
    TradingState,
    VenueOrder,
)
from hedged.order_state import UNRESOLVED, IllegalTransition, OrderStatus
from hedged.outage import read_venues
from hedged.planner import client_prefix
from hedged.replay import RECORD_KEYS, CycleInputs, dump_inputs
from hedged.shutdown import Deadline, within
from hedged.snapshot import SnapshotError, parse_venue, venue_order
from hedged.stream import StreamedVenue
from hedged.venue import CcxtVenue

log = get_logger("hedged.keeper")


def _orders(raw_state: Mapping[str, Any], venue: str) -> list[VenueOrder]:
    """A venue read's open orders, typed (the snapshot parser reads the same dicts)."""
    return [venue_order(o, f"venues.{venue}.open_orders[{i}]") for i, o in enumerate(raw_state["open_orders"])]


def _aware(t: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return t.replace(tzinfo=t.tzinfo or UTC)


def _ms(t: datetime | None) -> int | None:
    return int(_aware(t).timestamp() * 1000) if t is not None else None

FOLLOW_INTERVAL = 1.0  # seconds between cycles while our orders are on the book
_SEVERITY = {TradingState.RUNNING: 0, TradingState.REDUCING: 1, TradingState.PAUSED: 2, TradingState.HALTED: 3}


def _start_code(exc: VenueError) -> int:
    """Transient → 4 (a restart may help); a refusal (keys, unknown market) → 5 (a human must act)."""
    return EXIT_UNREACHABLE if isinstance(exc, Transient) else EXIT_REFUSED


@dataclass
class CycleResult:
    decisions: tuple[Decision, ...] = ()
    sent: int = 0
    state: TradingState = TradingState.RUNNING
    error: str = ""
    snapshot: Snapshot | None = None
    hedges: tuple[HedgeTarget, ...] = ()  # the plan's exposure per [[hedge]] entry (metrics)
    duration: float = 0.0  # seconds the cycle took (set by step)


@dataclass
class Keeper:
    config: Config
    store: AuditStore
    venues: Mapping[str, CcxtVenue]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    on_cycle: Callable[[CycleResult, Snapshot | None], None] | None = None
    alerts: AlertHub | None = None  # log + audit by default; the service adds MQTT
    locks: Sequence[AccountLock] = ()  # the accounts' locks, checked before every cycle's orders
    # start-up retry of an unreachable exchange: capped exponential backoff with jitter (seconds)
    start_backoff: tuple[float, float] = (1.0, 60.0)

    def __post_init__(self) -> None:
        self.hub = self.alerts or AlertHub(self.config, self.store)
        recv_window = 5.0  # seconds; requests older than this are refused by the exchange
        self.executor = Executor(self.venues, self.store, self.config.execution, lost_after=max(
            (v.config.timeout for v in self.venues.values()), default=10.0) + recv_window + 1.0)
        self.breaker = brk.Breaker()
        self.fatal: StartFailed | None = None  # set when the keeper must stop and exit with this code
        self.lock_ok = True
        self._pruned_at: datetime | None = None
        self.last_cycle_done: float | None = None  # time.monotonic() when the last cycle completed
        self.last_result: CycleResult | None = None
        self.cycles = 0
        self.previous_marks: dict[tuple[str, str], Decimal] = {}
        self.state = TradingState.RUNNING
        self.state_reason = ""  # why the state is what it is (health shows it)
        self.halt_origin: HaltOrigin | None = None  # who halted, while HALTED: health tells a fault by it
        self.audit_broken = False
        self._stopping = False
        self._seq = 0
        self.settings_refused: dict[tuple[str, str], str] = {}  # instruments whose leverage/margin was refused
        self.store.allow_keys({*RECORD_KEYS, *self.venues})  # recorded cycle inputs (see hedged/replay.py)
        self._foreign_reported: set[str] = set()  # foreign client ids already alerted on (hedged.foreign.fresh)
        self._foreign_now = False  # this cycle's read found another keeper trading as us
        self.foreign_watch: dict[str, Watch] = {}  # per venue: the scheduled search's history (foreign.schedule)

    # --- start ---------------------------------------------------------------------------------------
    @property
    def failures(self) -> int:
        return self.breaker.failures

    async def start(self) -> None:
        """Connect (retrying an unreachable exchange), then reconcile the store with the exchanges before any
        order is sent. Raises StartFailed (one line, an exit code) when it cannot."""
        await self.connect()
        try:
            await self._started()
        except VenueError as exc:
            raise StartFailed(f"reconciliation failed: {exc}", _start_code(exc)) from exc

    async def _started(self) -> None:
        await self.store.append("start", {"mode": self.config.keeper.mode, "venues": sorted(self.venues)})
        await self.hub.event("start", "info", f"keeper {self.config.keeper.name} started ({self.config.keeper.mode})",
                             {"mode": self.config.keeper.mode, "venues": sorted(self.venues)}, self.clock())
        await self.reconcile()
        self.settings_refused = await apply_account_settings(self)  # leverage, margin and position mode

    async def connect(self) -> None:
        """Load markets and read each account once, retrying transient failures with capped exponential backoff
        and jitter until `[keeper] start_timeout` (0 = forever); one log line per attempt; an `error` event and
        an alert on the first failure, a `resolved` alert once connected. Permanent refusals (API key, unknown
        market) raise StartFailed at once."""
        timeout = self.config.keeper.start_timeout
        first, most = self.start_backoff
        failed: list[str] = []

        async def attempt() -> None:
            try:
                for v in self.venues.values():
                    saved, v.attempts = v.attempts, 1  # this loop is the retry: one line per attempt
                    try:
                        await v.load_markets()
                        await v.fetch_state(with_orders=False)  # a private read: keys and clock checked now
                    finally:
                        v.attempts = saved
            except VenueError as exc:
                await self._start_failed(exc, len(failed) + 1, first_failure=not failed)
                failed.append(str(exc))
                raise

        def transient(exc: BaseException) -> bool:
            return isinstance(exc, Transient)

        try:
            async for tries in AsyncRetrying(
                retry=retry_if_exception(transient), reraise=True,
                stop=stop_after_delay(timeout) if timeout > 0 else stop_never,
                wait=wait_exponential(multiplier=first, max=most) + wait_random(0, first),
                before_sleep=self._log_retry,
            ):
                with tries:
                    await attempt()
        except Transient as exc:
            raise StartFailed(f"exchange unreachable for {timeout:g} s (keeper.start_timeout): {exc}",
                              EXIT_UNREACHABLE) from exc
        except VenueError as exc:
            raise StartFailed(str(exc), _start_code(exc)) from exc
        if failed:
            message = f"connected after {len(failed) + 1} attempts"
            log.info("keeper.exchange_connected", attempts=len(failed) + 1)
            with contextlib.suppress(AuditError):
                await self.hub.event("exchange_unreachable", "info", message,
                                     {"status": "resolved", "attempts": len(failed) + 1}, self.clock())

    async def _start_failed(self, exc: VenueError, attempt: int, *, first_failure: bool) -> None:
        if isinstance(exc, Transient) and exc.reason == "clock":
            # this machine's clock is off: let ccxt measure the offset and sign with the exchange's time
            venue = self.venues.get(exc.venue)
            if venue is not None:
                venue.exchange.options["adjustForTimeDifference"] = True
                with contextlib.suppress(Exception):
                    await venue.exchange.load_time_difference()
        if first_failure:
            with contextlib.suppress(AuditError):
                await self.store.error(str(exc), venue=exc.venue or None, error_type=exc.cause or exc.kind)
                await self.hub.event("exchange_unreachable", "critical",
                                     f"cannot start: {exc}", {"status": "firing", "kind": exc.kind,
                                                             "venue": exc.venue}, self.clock())

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        """The one line per failed attempt (the last one is the CLI's `error:` line)."""
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning("keeper.start_failed", attempt=state.attempt_number, error=str(exc),
                    kind=getattr(exc, "kind", ""), retry_in=round(wait, 1))

    async def reconcile(self) -> None:
        prefix = client_prefix(self.config.keeper.name)
        now = self.clock()
        for name, venue in self.venues.items():
            # 1. what the store thinks is unsettled: look every intent/sent up by client id
            for rec in await self.store.unsettled_orders(name):
                if rec.status in UNRESOLVED:
                    out = await self.executor.resolve(name, rec.client_order_id, rec.symbol, lost_if_missing=True)
                    log.info("reconcile.lookup", venue=name, client_id=rec.client_order_id, status=out.status)
            # 2. open orders on the exchange: sync ours; one with our prefix that the store never wrote is
            #    another keeper trading as us (never adopted: halt instead)
            open_orders = await venue.open_orders()
            await self.detect_foreign(name, [o.client_id for o in open_orders])
            for o in open_orders:
                if o.client_id.startswith(prefix) and await self.store.get_order(o.client_id) is not None:
                    await self.executor.sync(name, o.client_id, o)
            await self.executor.follow(name, open_orders, now)
            # 3. fills that happened while we were down (only ours: the account may trade by hand too)
            since = int((now - timedelta(days=1)).timestamp() * 1000)
            seen: list[int | None] = []
            for symbol in venue.symbols:
                trades = await venue.fetch_my_trades(symbol, since)
                await self.detect_foreign(name, (), [t.client_id for t in trades])
                seen += [_ms(t.time) for t in trades]
                for t in trades:
                    if t.client_id.startswith(prefix) and await self.store.get_order(t.client_id) is not None:
                        await self.executor.record_trade(name, t, t.client_id)
            # the first scheduled search for another keeper starts where this one ended
            self.foreign_watch[name] = checked(Watch(since_ms=since), now, seen)
        await self.store.append("state", {"state": "reconciled"})

    async def detect_foreign(self, venue: str, order_ids: Iterable[str], trade_ids: Iterable[str] = ()) -> bool:
        """Halt (durably, with a critical alert) if the exchange shows our prefix on ids our store never wrote."""
        order_ids, trade_ids = list(order_ids), list(trade_ids)
        prefix = client_prefix(self.config.keeper.name)
        ids = candidates(prefix, order_ids, trade_ids)
        if not ids:
            return False
        known = {cid for cid in ids if await self.store.get_order(cid) is not None}
        found = foreign(prefix, order_ids, trade_ids, known)
        new = fresh((*found.orders, *found.trades), self._foreign_reported)
        if not new:  # nothing, or only ids already alerted on (an operator may have resumed after seeing them)
            if found:
                log.warning("keeper.foreign_keeper_seen_again", venue=venue, ids=sorted({*found.orders, *found.trades}))
            return False
        log.critical("keeper.foreign_keeper", venue=venue, orders=list(found.orders), trades=list(found.trades))
        await self.store.command(TradingState.HALTED, via="foreign-keeper", reason=found.message,
                                 origin=HaltOrigin.FOREIGN_KEEPER)
        self._foreign_reported |= new  # only once the halt is durable: a failed write is tried again
        await self.hub.event("foreign_keeper", "critical", found.message,
                             {"venue": venue, "orders": list(found.orders), "trades": list(found.trades)},
                             self.clock())
        return True

    async def _search_foreign(self, raw_states: Mapping[str, Any], orders_read: set[str]) -> None:
        """Another keeper on any venue, within about `[keeper] foreign_check` seconds: every order a live order
        stream has shown, open or done, each cycle (free); the searches `foreign.schedule` says are due (REST,
        or nothing where the order stream has not broken since the last). Sets `_foreign_now` when one halts."""
        streamed: dict[str, list[int]] = {}  # venue -> exchange times of the orders its stream showed
        for n in raw_states:
            v = self.venues[n]
            if not isinstance(v, StreamedVenue) or not v.alive():
                continue
            orders_read.add(n)  # its open orders (in the view) are among what the stream has shown
            shown, times = v.streamed_order_ids()  # every order not yet checked, open or done
            if await self.detect_foreign(n, shown):
                self._foreign_now = True
            v.checked_order_ids(shown)
            if not v.order_stream_broken:
                streamed[n] = times
        now = self.clock()
        for c in schedule(self.foreign_watch, now, every=self.config.keeper.foreign_check, readable=list(raw_states),
                          orders_read=orders_read, streamed=set(streamed)):
            venue = self.venues[c.venue]
            if not c.orders and not c.trades:  # the order stream showed it all, each id checked as it came
                self.foreign_watch[c.venue] = checked(self.foreign_watch.get(c.venue, Watch()), now,
                                                      streamed[c.venue])
                continue
            if isinstance(venue, StreamedVenue) and venue.alive():
                venue.order_stream_broken = False  # covered from here on, unless it breaks (set again then)
            try:
                order_ids = [o.client_id for o in await venue.open_orders()] if c.orders else []
                trades = [t for s in venue.symbols for t in await venue.fetch_my_trades(s, c.trades_since_ms)]
            except VenueError as exc:  # stays due: searched again next cycle
                log.warning("keeper.foreign_check_failed", venue=c.venue, error=str(exc)[:200])
                if isinstance(venue, StreamedVenue):
                    venue.order_stream_broken = True
                continue
            if await self.detect_foreign(c.venue, order_ids, [t.client_id for t in trades]):
                self._foreign_now = True
            self.foreign_watch[c.venue] = checked(self.foreign_watch.get(c.venue, Watch()), now,
                                                  [_ms(t.time) for t in trades])

    async def _probe_store(self) -> None:
        """While the store is unwritable, each cycle tries one small write; the first that succeeds resumes
        trading (the cycle's own writes then go through) and resolves the alert."""
        try:
            await self.store.append("audit_probe", {"note": "audit store writable again"})
        except AuditWriteError:
            return
        self.audit_broken = False
        log.warning("keeper.audit_recovered")
        try:
            await self.hub.store_recovered(self.clock())
        except Exception as exc:  # the alert is not worth a failed cycle; the next write will tell
            log.error("keeper.alerting_failed", error=f"{type(exc).__name__}: {exc}"[:300])

    # --- trading state --------------------------------------------------------------------------------
    async def _requested(self) -> tuple[TradingState, HaltOrigin, str]:
        """The latest command: (state, origin, reason); RUNNING when none ever was (as store.requested_state)."""
        event = await self.store.last_event(EventKind.COMMAND)
        p = event.payload if event is not None and isinstance(event.payload, dict) else {}
        try:
            state = TradingState(str(p.get("state")))
        except ValueError:
            return TradingState.RUNNING, HaltOrigin.OPERATOR, ""
        return state, command_origin(p), str(p.get("reason") or "")

    async def trading_state(self) -> tuple[TradingState, str]:
        if self.audit_broken:
            await self._probe_store()
        requested, origin, reason = await self._requested()
        state, why = requested, "command" if requested is not TradingState.RUNNING else ""
        if requested is TradingState.HALTED and is_fault(origin):
            # a halt the keeper wrote itself (breaker, foreign keeper; also carried over a prune): a fault until
            # an operator resumes, also after a restart, when the breaker in memory starts afresh (health)
            why = reason or origin.value  # each names its cause: "breaker (permanent): …", "foreign keeper: …"
        if self.breaker.tripped == "permanent" and requested is TradingState.HALTED:
            origin = HaltOrigin.BREAKER  # an operator's halt over a standing trip does not clear it
        if self.breaker.tripped == "permanent" and requested is not TradingState.HALTED:
            self.breaker = brk.on_human_resume(self.breaker)  # a human resumed after a permanent trip
        if self.breaker.tripped == "transient" and _SEVERITY[state] < _SEVERITY[TradingState.PAUSED]:
            state, why = TradingState.PAUSED, self.breaker.reason()
        kill = self.config.keeper.kill_file
        if kill and self.config.resolve(kill).exists():
            state, why, origin = TradingState.HALTED, f"kill file {kill} exists", HaltOrigin.OPERATOR
        if self.audit_broken:
            state, why, origin = TradingState.HALTED, "audit store cannot be written", HaltOrigin.AUDIT
        self.halt_origin = origin if state is TradingState.HALTED else None  # health's fault-or-not
        return state, why

    # --- one cycle ----------------------------------------------------------------------------------
    async def cycle(self) -> CycleResult:
        """read → follow → decide → record → cancel / place: each a named step below; the decision is pure."""
        self.store.start_cycle()
        self.cycles += 1
        await self.lock_gate()  # before anything that may place or cancel an order
        state = await self._update_state()
        snap, touched, recent = await self._read_and_follow()
        if self._foreign_now:  # the halt just written: recorded, and our own orders taken off the book
            state = await self._update_state()
        inputs = await self._inputs(snap, state, touched, recent)
        the_plan, result = decide(self.config, snap, state=inputs.state, recent=inputs.recent,
                                  previous_marks=inputs.previous_marks, tag=inputs.tag, context=inputs.context)
        self._remember(result.decisions, inputs.context)
        await self._record(inputs, the_plan.hedges, result, the_plan.unreadable)
        await self._cancel(result.cancels)
        sent = await self._place(result.decisions)
        return CycleResult(result.decisions, sent, state, snapshot=snap, hedges=the_plan.hedges)

    async def _update_state(self) -> TradingState:
        """The trading state this cycle; a change is recorded with its cause, HALTED cancels our orders."""
        state, why = await self.trading_state()
        if state is not self.state:
            await self.store.record_state(state, reason=why)
            log.warning("keeper.state", state=state.value, reason=why)
            self.state = state
        self.state_reason = why  # health shows it, also when unchanged
        if state is TradingState.HALTED:  # PAUSED leaves our orders on the book
            cancelled = await self.executor.cancel_all("halted")
            if cancelled:
                log.warning("keeper.halt_cancelled", orders=cancelled)
        return state

    async def _read_and_follow(self) -> tuple[Snapshot, set[tuple[str, str]], list[RecentOrder]]:
        """Every venue's state (open orders only where ours are in flight), then follow our orders there.

        When fills or cancels land around the read, that venue is read again and the plan rests on that.
        """
        self._foreign_now = False
        unsettled = await self.store.unsettled_orders()
        busy = {n: any(r.venue == n for r in unsettled) for n in self.venues}
        names = list(self.venues)
        # a venue whose reads fail is left out and listed in `down`: the planner blocks only what depends
        # on it (hedged.outage); every venue failing still fails the cycle
        (raw_states, down), recent_rows = await asyncio.gather(
            read_venues(self.venues, busy), self.store.recent_orders(self.clock() - timedelta(days=1)))
        now = self.clock()
        touched: set[tuple[str, str]] = set()
        for n in (n for n in names if busy[n] and n in raw_states):
            orders = _orders(raw_states[n], n)
            if await self.detect_foreign(n, [o.client_id for o in orders]):
                self._foreign_now = True  # HALTED is recorded for the next cycles; none in this one either
            changed = await self.executor.follow(n, orders, now)
            if changed:
                raw_states[n] = await self.venues[n].fetch_state(with_orders=True)
                now = self.clock()
                changed = await self.executor.follow(n, _orders(raw_states[n], n), now)
            touched |= {(n, sym) for sym in changed}
        for n in raw_states:  # a streamed position REST could not confirm (it moved during the read): not now
            v = self.venues[n]
            if isinstance(v, StreamedVenue):
                touched |= {(n, sym) for sym in v.unconfirmed}
        await self._search_foreign(raw_states, {n for n in names if busy[n] and n in raw_states})
        snap = Snapshot(time=now, venues={n: parse_venue(r, f"venues.{n}") for n, r in raw_states.items()},
                        unavailable=down)
        recent = [RecentOrder(_aware(r.created_at), r.notional_usd or Decimal(0)) for r in recent_rows]
        return snap, touched, recent

    async def _inputs(self, snap: Snapshot, state: TradingState, touched: set[tuple[str, str]],
                      recent: list[RecentOrder]) -> CycleInputs:
        """What the pure decision gets besides the snapshot: exactly what `_record` writes for replay."""
        self._seq += 1
        # milliseconds: a keeper restarted within the same second must not reuse an id
        tag = f"{base36(int(time.time() * 1000))}{base36(self._seq % 1296).rjust(2, '0')}"
        orders = tuple(OurOrder(r.venue, r.symbol, r.client_order_id, OrderStatus(r.status),
                                "buy" if r.side == "buy" else "sell", r.amount, r.filled, _aware(r.created_at),
                                r.price) for r in await self.store.unsettled_orders())
        context = KeeperContext(orders, frozenset(touched), dict(self.executor.reprices), dict(self.settings_refused))
        if self._foreign_now:  # another keeper trades as us: nothing this cycle (HALTED is recorded)
            state = TradingState.HALTED
        return CycleInputs(snap, state, tuple(recent), dict(self.previous_marks), tag, context)

    def _remember(self, decisions: tuple[Decision, ...], context: KeeperContext) -> None:
        """Marks for the next cycle's price-jump filter; a fresh reprice budget where the episode is over."""
        for d in decisions:
            p = d.plan
            self.previous_marks[(p.venue, p.symbol)] = p.mark
            if settled(p, context):
                self.executor.settled(p.venue, p.symbol)

    async def _record(self, inputs: CycleInputs, hedges: tuple[HedgeTarget, ...], result: GuardResult,
                      unreadable: tuple[BlockedInstrument, ...] = ()) -> None:
        """The why before the what: every instrument's decision is durable (one commit) before any order.

        A cycle that is not quiet also carries its inputs (snapshot + keeper section) for `hedged plan`.
        """
        quiet = not inputs.context.orders and all(d.plan.intent is None for d in result.decisions)
        rows = [self._cycle_row(inputs.snapshot, hedges, d) for d in result.decisions]
        if rows and not quiet:
            rows[0] = replace(rows[0], payload={**(rows[0].payload or {}), "inputs": dump_inputs(inputs)})
        # instruments on a venue that could not be read (hedged.outage): blocked, with the venue's reason
        rows += [NewCycle(venue=b.venue, symbol=b.symbol, action="blocked", reasons=[str(r) for r in b.reasons])
                 for b in unreadable]
        await self.store.record_cycles(rows)
        for b in unreadable:
            log.warning("cycle", cycle=self.store.cycle, venue=b.venue, symbol=b.symbol, action="blocked",
                        reasons=[str(r) for r in b.reasons])

    async def _cancel(self, cancels: tuple[Cancel, ...]) -> None:
        """Take timed-out orders off the book; the next cycle (at once) re-posts what is still wanted."""
        for c in cancels:
            if await self.executor.cancel_for_reprice(c):
                self.wake.set()

    async def _place(self, decisions: tuple[Decision, ...]) -> int:
        sent = 0
        for d in decisions:
            p, order = d.plan, d.order
            log.info("cycle", cycle=self.store.cycle, venue=p.venue, symbol=p.symbol, action=d.action,
                     hedge=str(p.hedge), target=str(p.target), drift=str(p.drift), band=str(p.band),
                     mark=str(p.mark), reasons=[str(r) for r in d.reasons])
            if order is None:
                continue
            if self.config.keeper.mode == "shadow":
                await self.store.append("shadow", {"client_order_id": order.client_id, "side": order.side,
                                                   "amount": order.amount, "price": order.price,
                                                   "reduce_only": order.reduce_only}, venue=p.venue, symbol=p.symbol)
                continue
            out = await self.executor.place(order, notional_usd=notional_usd(p.market, order.amount, p.mark),
                                            reason="; ".join(str(r) for r in d.reasons))
            sent += 1
            log.info("order", client_id=order.client_id, side=order.side, amount=str(order.amount),
                     price=str(order.price), status=out.status, detail=out.detail)
            if out.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED) and order.post_only:
                self.wake.set()  # post-only bounced: re-plan at once at the new touch
        return sent

    def _cycle_row(self, snap: Snapshot, hedges: tuple[HedgeTarget, ...], d: Decision) -> NewCycle:
        p = d.plan
        exposure = sum((h.exposure for h in hedges if h.instrument == p.symbol and h.venue == p.venue), Decimal(0))
        t = snap.venues[p.venue].tickers.get(p.symbol)
        position = snap.venues[p.venue].positions.get(p.symbol)
        facts = {"liquidation_price": position.liquidation_price if position is not None else None,
                 "funding_interval_hours": p.market.funding_interval_hours}  # for `hedged status`
        return NewCycle(venue=p.venue, symbol=p.symbol, action=d.action, reasons=[str(r) for r in d.reasons],
                        exposure=exposure, hedge=p.hedge, inflight=p.inflight, target=p.target, drift=p.drift,
                        mark=p.mark, band=p.band, funding_rate=t.funding_rate if t is not None else None,
                        basis=basis_bps(snap, p.venue, p.market, p.mark), payload=facts)

    # --- the loop -------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Cycle until `stop` is set; then no new orders, cancel ours (unless kept), record the stop."""
        interval = self.config.keeper.interval
        while not stop.is_set() and self.fatal is None:
            started = time.monotonic()
            self.wake.clear()  # before the cycle: a wake set during it (a stream event) must not be lost
            await self._retain()
            result = await self.step()
            if self.on_cycle is not None:
                self.on_cycle(result, result.snapshot)
            live = bool(await self._live_orders()) if not self.audit_broken else False
            delay = max(0.0, (min(interval, FOLLOW_INTERVAL) if live else interval) - (time.monotonic() - started))
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
        await self.shutdown()
        if self.fatal is not None:
            raise self.fatal

    async def _retain(self) -> None:
        """[audit] retain_days: prune older events at start and then once a day (a checkpoint keeps verify)."""
        days = self.config.audit.retain_days
        now = self.clock()
        if days <= 0 or (self._pruned_at is not None and now - self._pruned_at < timedelta(days=1)):
            return
        self._pruned_at = now
        try:
            n, _ = await self.store.prune(now - timedelta(days=days))
            if n:
                log.info("audit.pruned", events=n, retain_days=days)
        except AuditError as exc:
            log.error("audit.prune_failed", error=str(exc)[:300])

    def status_line(self) -> str:
        """One line for systemd's STATUS=: state, last cycle age, the worst drift as a fraction of its band."""
        if self.last_cycle_done is None:
            return f"{self.state.value}: starting (connecting, reconciling)"
        age = time.monotonic() - self.last_cycle_done
        line = f"{self.state.value}: cycle {self.store.cycle} {age:.0f}s ago"
        res = self.last_result
        if res is not None and res.error:
            return f"{line}; failing ({self.breaker.failures}): {res.error}"[:300]
        worst = max((d for d in (res.decisions if res else ()) if d.plan.band > 0),
                    key=lambda d: abs(d.plan.drift) / d.plan.band, default=None)
        if worst is not None:
            line += f"; max drift {abs(worst.plan.drift) / worst.plan.band:.2f} of band ({worst.plan.symbol})"
        return line

    async def _live_orders(self) -> list[Any]:
        try:
            return list(await self.store.unsettled_orders())
        except Exception:
            return []

    async def step(self) -> CycleResult:
        """One guarded cycle, then its alerts and the published state (which never fail the cycle)."""
        started = time.monotonic()
        result = await self._guarded_cycle()
        self.last_cycle_done, self.last_result = time.monotonic(), result  # for the watchdog and STATUS=
        result.duration = time.monotonic() - started
        if self.audit_broken:  # alerts normally go through the store: this one cannot
            self.hub.store_failed(result.error, self.clock())
            self.hub.publish_state(TradingState.HALTED, self.clock(), result.snapshot, result.decisions)
        try:
            now = self.clock()
            await self.hub.observe(Observation(now, self.config.keeper.name, result.state, result.snapshot,
                                               result.decisions, result.error or None))
            await self._fill_alerts(now)
            self.hub.publish_state(result.state, now, result.snapshot, result.decisions)
            self.hub.notify()
        except AuditWriteError as exc:
            self.audit_broken = True
            log.critical("keeper.audit_failed", error=str(exc))
            self.hub.store_failed(str(exc), self.clock())
        except Exception as exc:  # alerting must never stop trading
            log.error("keeper.alerting_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        return result

    async def _fill_alerts(self, now: datetime) -> None:
        """One info alert per trade the executor recorded since the last step (including at reconciliation)."""
        fills, self.executor.new_fills = self.executor.new_fills, []
        for f in fills:
            words = ["filled", f["side"], str(f["amount"]), f["symbol"], "@", str(f["price"])]
            await self.hub.event("fill", "info", " ".join(w for w in words if w), f, now)

    async def _guarded_cycle(self) -> CycleResult:
        try:
            # markets (tick, lot, min size) change now and then: reload every [keeper] markets_refresh seconds
            await asyncio.gather(*(v.refresh_markets_if_due() for v in self.venues.values()))
            result = await self.cycle()
        except AuditWriteError as exc:
            # no audit, no trade: halt in memory (the store cannot record it) and shout
            self.audit_broken = True
            log.critical("keeper.audit_failed", error=str(exc))
            return CycleResult(error=f"audit: {exc}", state=TradingState.HALTED)
        except AccountLockLost as exc:
            return CycleResult(error=str(exc), state=self.state)
        except (VenueError, PlanInputError, SnapshotError, IllegalTransition, TimeoutError, OSError,
                AuditReadError) as exc:
            return await self._failed(exc)  # a store that cannot be read: nothing sent, retried like the network
        self.breaker, change = brk.on_success(self.breaker, resume_after=self.config.keeper.resume_after)
        if change == "resume":
            with contextlib.suppress(AuditError):
                await self._resumed()
        return result

    async def _failed(self, exc: Exception) -> CycleResult:
        """A failed cycle feeds the breaker; a trip is recorded with its reason and alerted."""
        kind = brk.failure_kind(exc)
        name = exc.cause if isinstance(exc, VenueError) and exc.cause else type(exc).__name__
        message = str(exc)[:500] if isinstance(exc, VenueError | AuditError) else f"{name}: {exc}"[:500]
        was = self.breaker
        self.breaker, change = brk.on_failure(was, exc, message, max_failures=self.config.keeper.max_failures)
        log.error("keeper.cycle_failed", error=message, failures=self.breaker.failures, kind=kind)
        with contextlib.suppress(Exception):
            await self.store.error(message, error_type=name)
            if kind == "permanent" and was.failures == 0:  # the monitors repeat it while it lasts
                await self.hub.event("exchange_error", "critical", message,
                                     {"error_type": name, "permanent": True}, self.clock())
        if change is not None:
            with contextlib.suppress(Exception):
                await self._tripped(change)
        return CycleResult(error=message, state=self.state)

    async def _tripped(self, change: brk.Transition) -> None:
        reason = self.breaker.reason()
        log.critical("keeper.circuit_breaker", failures=self.breaker.failures, kind=self.breaker.tripped)
        data = {"status": "firing", "kind": self.breaker.tripped, "failures": self.breaker.failures}
        if change == "trip_permanent":
            await self.store.command(TradingState.HALTED, via="circuit-breaker", reason=reason,
                                     origin=HaltOrigin.BREAKER)
            self.state, self.halt_origin = TradingState.HALTED, HaltOrigin.BREAKER
            await self.store.record_state(TradingState.HALTED, reason=reason)
            await self.hub.event("circuit_breaker", "critical", f"{reason}: trading halted until `hedged resume`",
                                 data, self.clock())
        else:
            if _SEVERITY[self.state] < _SEVERITY[TradingState.PAUSED]:
                self.state = TradingState.PAUSED
                await self.store.record_state(TradingState.PAUSED, reason=reason)
            await self.hub.event("circuit_breaker", "critical", f"{reason}: no new orders; resumes by itself after "
                                 f"{self.config.keeper.resume_after} healthy cycles", data, self.clock())

    async def _resumed(self) -> None:
        n = self.config.keeper.resume_after
        state, why = await self.trading_state()
        log.warning("keeper.breaker_resumed", healthy_cycles=n, state=state.value)
        if state is not self.state:
            await self.store.record_state(state, reason=why or f"breaker resumed after {n} healthy cycles")
            self.state = state
        await self.hub.event("circuit_breaker", "info", f"exchange healthy for {n} cycles: trading resumed",
                             {"status": "resolved", "kind": "transient"}, self.clock())

    async def lock_gate(self) -> None:
        """Raise AccountLockLost (no order this cycle) unless every account lock is still ours.

        On loss: alert once, try to take the lock again each cycle; if another keeper holds it now, stop with
        exit 3 (`self.fatal`): two keepers must never trade one account.
        """
        lost: AccountLockLost | None = None
        for lock in self.locks:
            try:
                await lock.check()
            except AccountLockLost as exc:
                lost = exc
                await lock.release()
                try:
                    await lock.acquire()
                    log.warning("keeper.lock_reacquired", account=lock.account)
                    lost = AccountLockLost(f"{exc}; taken again, trading from the next cycle")
                except AccountLocked as taken:
                    self.fatal = StartFailed(f"account lock lost to another keeper: {taken}", EXIT_LOCKED)
                    self.wake.set()
                    lost = AccountLockLost(str(self.fatal))
                    break
                except AuditError as again:
                    log.error("keeper.lock_reacquire_failed", account=lock.account, error=str(again)[:200])
        if lost is None:
            if not self.lock_ok:
                self.lock_ok = True
                with contextlib.suppress(AuditError):
                    await self.hub.event("account_lock", "info", "account lock held again: trading",
                                         {"status": "resolved"}, self.clock())
            return
        # a cycle that found the lock lost sends nothing, even when it took the lock back just now
        if self.lock_ok:
            self.lock_ok = False
            log.critical("keeper.lock_lost", error=str(lost))
            with contextlib.suppress(AuditError):
                await self.store.error(str(lost), error_type="AccountLockLost")
                await self.hub.event("account_lock", "critical", f"{lost}: no orders until it is held again",
                                     {"status": "firing"}, self.clock())
        raise lost

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def shutdown(self, deadline: Deadline | None = None) -> None:
        """No new orders; cancel ours (unless kept); record the stop — all within a share of `deadline`."""
        if self._stopping:
            return
        self._stopping = True
        deadline = deadline or Deadline()
        # after losing the account to another keeper, its orders are no longer ours to cancel
        if not self.config.keeper.keep_orders_on_exit and not self.audit_broken and self.fatal is None:
            try:
                # a create still in flight is looked up by client id and cancelled once it shows up, within
                # most of the teardown budget (what cannot be resolved in time is recorded as unresolved)
                n = await within(self.executor.cancel_all("shutdown", resolve_unresolved=True), deadline.share(9.0))
                log.info("keeper.shutdown_cancelled", orders=n)
            except Exception as exc:
                log.error("keeper.shutdown_cancel_failed", error=type(exc).__name__)
        with contextlib.suppress(Exception):
            await within(self._record_stop(), deadline.share(2.0))

    async def _record_stop(self) -> None:
        await self.store.append("stop", {"cycles": self.cycles})
        await self.hub.event("stop", "info", f"keeper {self.config.keeper.name} stopped after {self.cycles} cycles",
                             {"cycles": self.cycles}, self.clock())
