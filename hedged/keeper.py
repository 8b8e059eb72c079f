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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hedged.alerts.hub import AlertHub
from hedged.alerts.monitors import Observation
from hedged.audit.store import AuditStore, AuditWriteError, NewCycle, OrderStatus
from hedged.config import Config
from hedged.decide import base36, decide
from hedged.errors import AuthFailed, Rejected, VenueError
from hedged.executor import Executor, trade_client_id
from hedged.exposure import PlanInputError, notional_usd
from hedged.foreign import Foreign, candidates, foreign
from hedged.log import get_logger
from hedged.model import Decision, HedgeTarget, OrderIntent, Reason, RecentOrder, Snapshot, TradingState
from hedged.planner import round_to_step
from hedged.shutdown import Deadline, within
from hedged.snapshot import SnapshotError, parse_venue
from hedged.venue import CcxtVenue

log = get_logger("hedged.keeper")
FOLLOW_INTERVAL = 1.0  # seconds between cycles while our orders are on the book


@dataclass
class CycleResult:
    decisions: tuple[Decision, ...] = ()
    sent: int = 0
    state: TradingState = TradingState.RUNNING
    error: str = ""
    snapshot: Snapshot | None = None


@dataclass
class Keeper:
    config: Config
    store: AuditStore
    venues: Mapping[str, CcxtVenue]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    on_cycle: Callable[[CycleResult, Snapshot | None], None] | None = None
    alerts: AlertHub | None = None  # log + audit by default; the service adds MQTT

    def __post_init__(self) -> None:
        self.hub = self.alerts or AlertHub(self.config, self.store)
        recv_window = 5.0  # seconds; requests older than this are refused by the exchange
        self.executor = Executor(self.venues, self.store, self.config.execution, lost_after=max(
            (v.config.timeout for v in self.venues.values()), default=10.0) + recv_window + 1.0)
        self.failures = 0
        self.cycles = 0
        self.previous_marks: dict[tuple[str, str], Decimal] = {}
        self.state = TradingState.RUNNING
        self.audit_broken = False
        self._stopping = False
        self._seq = 0
        self._foreign_reported: Foreign | None = None

    # --- start ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load markets, then reconcile the store with the exchanges before any order is sent."""
        await asyncio.gather(*(v.load_markets() for v in self.venues.values()))
        await self.store.append("start", {"mode": self.config.keeper.mode, "venues": sorted(self.venues)})
        await self.hub.event("start", "info", f"keeper {self.config.keeper.name} started ({self.config.keeper.mode})",
                             {"mode": self.config.keeper.mode, "venues": sorted(self.venues)}, self.clock())
        await self.reconcile()

    async def reconcile(self) -> None:
        prefix = f"{self.config.keeper.name}-"
        now = self.clock()
        for name, venue in self.venues.items():
            # 1. what the store thinks is unsettled: look every intent/sent up by client id
            for rec in await self.store.unsettled_orders(name):
                if rec.status in (OrderStatus.INTENT, OrderStatus.SENT):
                    out = await self.executor.resolve(name, rec.client_order_id, rec.symbol, lost_if_missing=True)
                    log.info("reconcile.lookup", venue=name, client_id=rec.client_order_id, status=out.status)
            # 2. open orders on the exchange: sync ours; one with our prefix that the store never wrote is
            #    another keeper trading as us (never adopted: halt instead)
            open_orders = await venue.fetch_open_orders()
            await self.detect_foreign(name, open_orders)
            for o in open_orders:
                cid = str(o.get("clientOrderId") or "")
                if cid.startswith(prefix) and await self.store.get_order(cid) is not None:
                    await self.executor.sync(name, cid, o)
            await self.executor.follow(name, open_orders, now)
            # 3. fills that happened while we were down (only ours: the account may trade by hand too)
            since = int((now - timedelta(days=1)).timestamp() * 1000)
            for symbol in venue.symbols:
                trades = [(t, trade_client_id(t)) for t in await venue.fetch_my_trades(symbol, since)]
                await self.detect_foreign(name, (), [cid for _, cid in trades])
                for t, trade_cid in trades:
                    if trade_cid.startswith(prefix) and await self.store.get_order(trade_cid) is not None:
                        await self.executor.record_trade(name, t, trade_cid)
        await self.store.append("state", {"state": "reconciled"})

    async def detect_foreign(self, venue: str, open_orders: Iterable[Mapping[str, Any]],
                             trade_ids: Iterable[str] = ()) -> bool:
        """Halt (durably, with a critical alert) if the exchange shows our prefix on ids our store never wrote."""
        open_orders, trade_ids = list(open_orders), list(trade_ids)
        prefix = f"{self.config.keeper.name}-"
        ids = candidates(prefix, open_orders, trade_ids)
        if not ids:
            return False
        known = {cid for cid in ids if await self.store.get_order(cid) is not None}
        found = foreign(prefix, open_orders, trade_ids, known)
        if not found:
            return False
        log.critical("keeper.foreign_keeper", venue=venue, orders=list(found.orders), trades=list(found.trades))
        if self._foreign_reported != found:
            self._foreign_reported = found
            await self.store.command(TradingState.HALTED, via="foreign-keeper", reason=found.message)
            await self.hub.event("foreign_keeper", "critical", found.message,
                                 {"venue": venue, "orders": list(found.orders), "trades": list(found.trades)},
                                 self.clock())
        return True

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
    async def trading_state(self) -> tuple[TradingState, str]:
        if self.audit_broken:
            await self._probe_store()
        requested = await self.store.requested_state()
        state, why = requested, "command" if requested is not TradingState.RUNNING else ""
        kill = self.config.keeper.kill_file
        if kill and self.config.resolve(kill).exists():
            state, why = TradingState.HALTED, f"kill file {kill} exists"
        if self.audit_broken:
            state, why = TradingState.HALTED, "audit store cannot be written"
        return state, why

    # --- one cycle ----------------------------------------------------------------------------------
    async def cycle(self) -> CycleResult:
        self.store.start_cycle()
        self.cycles += 1
        # independent store reads run together (each is a round trip to the database)
        (state, why), unsettled_now = await asyncio.gather(self.trading_state(), self.store.unsettled_orders())
        if state is not self.state:
            await self.store.record_state(state, reason=why)
            log.warning("keeper.state", state=state.value, reason=why)
            self.state = state
        if state is TradingState.HALTED:  # PAUSED leaves our orders on the book
            cancelled = await self.executor.cancel_all("halted")
            if cancelled:
                log.warning("keeper.halt_cancelled", orders=cancelled)
                unsettled_now = await self.store.unsettled_orders()

        # only fetch open orders where we have some in flight (the store knows every order we sent)
        busy = {n: any(r.venue == n for r in unsettled_now) for n in self.venues}
        names = list(self.venues)
        day_ago = self.clock() - timedelta(days=1)
        results, recent_rows = await asyncio.gather(
            asyncio.gather(*(self.venues[n].fetch_state(with_orders=busy[n]) for n in names)),
            self.store.recent_orders(day_ago))
        raw_states: dict[str, dict[str, Any]] = dict(zip(names, results, strict=True))
        now = self.clock()
        touched: dict[str, set[str]] = {}
        for n in names:
            if busy[n]:
                if await self.detect_foreign(n, raw_states[n]["open_orders"]):
                    state = TradingState.HALTED  # no order this cycle either
                touched[n] = await self.executor.follow(n, raw_states[n]["open_orders"], now)
                if touched[n]:  # fills or cancels landed around the read: read again and plan on that
                    raw_states[n] = await self.venues[n].fetch_state(with_orders=True)
                    now = self.clock()
                    touched[n] = await self.executor.follow(n, raw_states[n]["open_orders"], now)
        snap = Snapshot(time=now, venues={n: parse_venue(r, f"venues.{n}") for n, r in raw_states.items()})

        recent = [RecentOrder(r.created_at.replace(tzinfo=r.created_at.tzinfo or UTC), r.notional_usd or Decimal(0))
                  for r in recent_rows]
        self._seq += 1
        # milliseconds: a keeper restarted within the same second must not reuse an id
        tag = f"{base36(int(time.time() * 1000))}{base36(self._seq % 1296).rjust(2, '0')}"
        plan, result = decide(self.config, snap, state=state, recent=recent, previous_marks=self.previous_marks,
                              tag=tag)
        if any(busy.values()):  # following may have settled some
            unsettled_now = await self.store.unsettled_orders()
        unsettled = {(r.venue, r.symbol): r for r in unsettled_now}
        decisions: list[Decision] = []
        for d in result.decisions:
            p = d.plan
            key = (p.venue, p.symbol)
            self.previous_marks[key] = p.mark
            if d.action == "hold" and abs(p.drift) <= p.band:
                self.executor.settled(p.venue, p.symbol)
            if d.order is not None and p.symbol in touched.get(p.venue, set()):
                d = Decision(p, "hold", None, (*d.reasons, Reason("order_changed", "fills or cancels this cycle: "
                                                                  "re-plan on fresh data")))
            elif d.order is not None and key in unsettled and unsettled[key].status in (OrderStatus.INTENT,
                                                                                         OrderStatus.SENT):
                d = Decision(p, "blocked", None, (*d.reasons, Reason(
                    "unresolved_order", f"{unsettled[key].client_order_id} not yet confirmed by the exchange")))
            elif d.order is not None and self.executor.escalation_due(p.venue, p.symbol):
                d = Decision(p, d.action, self._escalated(d.order, p.mark, p.market.tick), (*d.reasons, Reason(
                    "escalate", "max reprices reached: marketable limit within max_slippage_bps")))
            decisions.append(d)
        # the why before the what: every instrument's decision is durable (one commit) before any order
        await self.store.record_cycles(self._cycle_row(snap, plan.hedges, d) for d in decisions)
        sent = 0
        for d in decisions:
            p, order = d.plan, d.order
            log.info("cycle", cycle=self.store.cycle, venue=p.venue, symbol=p.symbol, action=d.action,
                     hedge=str(p.hedge), target=str(p.target), drift=str(p.drift), band=str(p.band),
                     mark=str(p.mark), reasons=[str(r) for r in d.reasons])
            if order is None:
                continue
            notional = notional_usd(p.market, order.amount, p.mark)
            if self.config.keeper.mode == "shadow":
                await self.store.append("shadow", {"client_order_id": order.client_id, "side": order.side,
                                                   "amount": order.amount, "price": order.price,
                                                   "reduce_only": order.reduce_only}, venue=p.venue, symbol=p.symbol)
                continue
            out = await self.executor.place(order, notional_usd=notional, reason="; ".join(str(r) for r in d.reasons))
            sent += 1
            log.info("order", client_id=order.client_id, side=order.side, amount=str(order.amount),
                     price=str(order.price), status=out.status, detail=out.detail)
            if out.status in ("rejected", "cancelled") and order.post_only:
                self.wake.set()  # post-only bounced: re-plan at once at the new touch
        return CycleResult(tuple(decisions), sent, state, snapshot=snap)

    def _escalated(self, order: OrderIntent, mark: Decimal, tick: Decimal) -> OrderIntent:
        slip = self.config.execution.max_slippage_bps / Decimal(10000)
        if order.side == "buy":
            price = round_to_step(mark * (1 + slip), tick, "ROUND_FLOOR")
        else:
            price = round_to_step(mark * (1 - slip), tick, "ROUND_CEILING")
        return OrderIntent(order.venue, order.symbol, order.side, order.amount, price, order.reduce_only, False,
                           order.client_id)

    def _cycle_row(self, snap: Snapshot, hedges: tuple[HedgeTarget, ...], d: Decision) -> NewCycle:
        p = d.plan
        exposure = sum((h.exposure for h in hedges if h.instrument == p.symbol and h.venue == p.venue), Decimal(0))
        return NewCycle(venue=p.venue, symbol=p.symbol, action=d.action, reasons=[str(r) for r in d.reasons],
                        exposure=exposure, hedge=p.hedge, inflight=p.inflight, target=p.target, drift=p.drift,
                        mark=p.mark, band=p.band, funding_rate=self._funding(snap, p.venue, p.symbol),
                        basis=self._basis(snap, p.venue, p.symbol))

    @staticmethod
    def _funding(snap: Snapshot, venue: str, symbol: str) -> Decimal | None:
        t = snap.venues[venue].tickers.get(symbol)
        return t.funding_rate if t is not None else None

    @staticmethod
    def _basis(snap: Snapshot, venue: str, symbol: str) -> Decimal | None:
        t = snap.venues[venue].tickers.get(symbol)
        if t is None or t.mark is None or not t.index:
            return None
        return (t.mark - t.index) / t.index * 10000

    # --- the loop -------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Cycle until `stop` is set; then no new orders, cancel ours (unless kept), record the stop."""
        interval = self.config.keeper.interval
        while not stop.is_set():
            started = time.monotonic()
            result = await self.step()
            if self.on_cycle is not None:
                self.on_cycle(result, result.snapshot)
            live = bool(await self._live_orders()) if not self.audit_broken else False
            delay = max(0.0, (min(interval, FOLLOW_INTERVAL) if live else interval) - (time.monotonic() - started))
            self.wake.clear()
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
        await self.shutdown()

    async def _live_orders(self) -> list[Any]:
        try:
            return list(await self.store.unsettled_orders())
        except Exception:
            return []

    async def step(self) -> CycleResult:
        """One guarded cycle, then its alerts and the published state (which never fail the cycle)."""
        result = await self._guarded_cycle()
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
            result = await self.cycle()
            self.failures = 0
            return result
        except AuditWriteError as exc:
            # no audit, no trade: halt in memory (the store cannot record it) and shout
            self.audit_broken = True
            log.critical("keeper.audit_failed", error=str(exc))
            return CycleResult(error=f"audit: {exc}", state=TradingState.HALTED)
        except (VenueError, PlanInputError, SnapshotError, TimeoutError, OSError) as exc:
            self.failures += 1
            permanent = isinstance(exc, AuthFailed | Rejected)
            kind = "permanent" if permanent else "transient"
            name = exc.cause if isinstance(exc, VenueError) else type(exc).__name__
            message = f"{name}: {exc}"[:500]
            log.error("keeper.cycle_failed", error=message, failures=self.failures, kind=kind)
            with contextlib.suppress(Exception):
                await self.store.error(message, error_type=name)
                if permanent and self.failures == 1:  # the monitors repeat it while it lasts
                    await self.hub.event("exchange_error", "critical", message,
                                         {"error_type": name, "permanent": True}, self.clock())
            if self.failures == self.config.keeper.max_failures:
                with contextlib.suppress(Exception):
                    await self.store.command(TradingState.HALTED, via="circuit-breaker",
                                             reason=f"{self.failures} consecutive failed cycles")
                    await self.hub.event("circuit_breaker", "critical",
                                         f"{self.failures} consecutive failed cycles: trading halted",
                                         {"failures": self.failures}, self.clock())
                log.critical("keeper.circuit_breaker", failures=self.failures)
            return CycleResult(error=message, state=self.state)

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def shutdown(self, deadline: Deadline | None = None) -> None:
        """No new orders; cancel ours (unless kept); record the stop — all within a share of `deadline`."""
        if self._stopping:
            return
        self._stopping = True
        deadline = deadline or Deadline()
        if not self.config.keeper.keep_orders_on_exit and not self.audit_broken:
            try:
                n = await within(self.executor.cancel_all("shutdown"), deadline.share(6.0))
                log.info("keeper.shutdown_cancelled", orders=n)
            except Exception as exc:
                log.error("keeper.shutdown_cancel_failed", error=type(exc).__name__)
        with contextlib.suppress(Exception):
            await within(self._record_stop(), deadline.share(2.0))

    async def _record_stop(self) -> None:
        await self.store.append("stop", {"cycles": self.cycles})
        await self.hub.event("stop", "info", f"keeper {self.config.keeper.name} stopped after {self.cycles} cycles",
                             {"cycles": self.cycles}, self.clock())
