"""Prometheus metrics and the health verdict, from the keeper's own state at the end of each cycle.

Why this shape: a scrape must never make the keeper talk to an exchange or the database. Gauges are set
from the cycle's decisions and snapshot (risk figures through `hedged.alerts.monitors`, the same numbers
the MQTT state carries); counters and histograms are fed by small hooks where the event happens (a ccxt
request in `CcxtVenue._call`, an audit write or an order's status change in the store). A scrape only
renders what is already in memory.

Names have the `hedged_` prefix and base units (coins, USD, seconds, ratios). Labels are `venue`,
`symbol`, `asset` — values from the config — plus closed vocabularies (`state`, `reason`, `class`), so
the number of series is fixed by the config and never grows with cycles, orders or errors.
Metric list and the health rules: docs/metrics.md. The HTTP side lives in `hedged.metrics_server`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

from hedged.alerts.monitors import instrument_risks, venue_risks
from hedged.errors import Ambiguous, AuthFailed, RateLimited, Rejected, Transient, VenueError
from hedged.halt import HaltOrigin, is_fault
from hedged.model import Decision, HedgeTarget, Snapshot, TradingState
from hedged.planner import client_prefix

if TYPE_CHECKING:
    from hedged.alerts.mqtt import MqttBridge
    from hedged.audit.store import AuditStore, OrderRecord
    from hedged.config import Config
    from hedged.keeper import CycleResult, Keeper
    from hedged.stream import StreamedVenue
    from hedged.venue import CcxtVenue

# Reason codes (stable strings of the guard and keeper) that block an order, and those that cut one.
DENIAL_CODES = frozenset({"halted", "paused", "reducing", "stale_data", "price_jump", "price_deviation",
                          "wrong_side", "order_rate", "cut_below_min", "no_quote", "unresolved_order"})
CUT_CODES = frozenset({"position_cap", "max_order_usd", "turnover"})
CANCEL_REASONS = ("post_only", "requested", "other")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
READ_CALLS = frozenset({"load_markets", "fetch_balance", "fetch_positions", "fetch_tickers", "fetch_open_orders",
                        "fetch_order", "find_order", "fetch_my_trades", "fetch_ticker"})


def _error_classes() -> frozenset[str]:
    """Names an order rejection may be counted under: ccxt's error classes (the cause `hedged.errors` keeps)."""
    from ccxt.base import errors as cx

    names = {n for n, v in vars(cx).items() if isinstance(v, type) and issubclass(v, Exception)}
    return frozenset(names | {"TimeoutError", "OSError", "ConnectionError", "ClientError"})


KNOWN_ERRORS = _error_classes()
VENUE_ERRORS = frozenset(c.__name__ for c in (VenueError, Transient, RateLimited, Ambiguous, Rejected, AuthFailed))


def error_class(exc: BaseException) -> str:
    """The `class` label of a failed request: its `hedged.errors` class (Transient, RateLimited, Ambiguous,
    Rejected, AuthFailed), else "other"."""
    name = type(exc).__name__
    return name if isinstance(exc, VenueError) and name in VENUE_ERRORS else "other"


def order_reason(status: str, text: str | None) -> str:
    """A closed vocabulary for why an order was cancelled or rejected (the free text stays in the audit)."""
    t = text or ""
    if "PostOnly" in t or "post-only" in t.lower():
        return "post_only"
    if status == "cancelled":
        return "requested" if t and ("CancelByUser" in t or t.split(":")[0] in
                                     ("order_timeout", "halted", "shutdown")) else "other"
    m = re.match(r"^([A-Za-z]+)\b", t)
    if m and m.group(1) in KNOWN_ERRORS:
        return m.group(1)
    return "other"


def _f(v: Decimal | None) -> float:
    return float(v) if v is not None else math.nan


@dataclass(frozen=True)
class Health:
    """The /health verdict: HTTP status and its small JSON body."""

    status: int
    state: str
    last_cycle_age_s: float | None
    reason: str

    def body(self) -> dict[str, Any]:
        age = round(self.last_cycle_age_s, 3) if self.last_cycle_age_s is not None else None
        return {"state": self.state, "last_cycle_age_s": age, "reason": self.reason}


def health_verdict(*, state: str, state_reason: str, age: float | None, interval: float, fault: bool,
                   last_error: str) -> Health:
    """200 when a cycle completed within 3 × interval and the state is not HALTED by a fault; else 503.

    HALTED by an operator (command, kill file) is healthy: the keeper does what it was told. A fault's halt
    is named first, also while cycles fail (a refused key fails every cycle after the breaker halts): the
    cause, then the staleness.
    """
    limit = 3 * interval
    if age is None:
        why = "no cycle completed yet"
    elif age > limit:
        why = f"no cycle completed for {age:.0f}s (limit {limit:g}s = 3 x interval)"
    else:
        why = ""
    if why and last_error:
        why += f"; last error: {last_error}"
    if state == TradingState.HALTED.value and fault:
        cause = f"halted by a fault: {state_reason or 'unknown'}"
        return Health(503, state, age, f"{cause}; {why}" if why else cause)
    if why:
        return Health(503, state, age, why)
    return Health(200, state, age, state_reason or "ok")


class Metrics:
    """Every family, in its own registry (several keepers in one process do not mix)."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        # no `_created` series: they double the count and no dashboard reads them
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        vs, vsa = ("venue", "symbol"), ("venue", "symbol", "asset")

        def gauge(name: str, doc: str, labels: Iterable[str] = vs) -> Gauge:
            return Gauge(name, doc, list(labels), registry=r)

        # per instrument, from the cycle's decisions and the monitors' risk figures
        self.exposure_coins = gauge("hedged_exposure_coins", "Coins of the asset held (E) for this hedge", vsa)
        self.exposure_usd = gauge("hedged_exposure_usd", "USD value of the coins held (E x asset price)", vsa)
        self.hedge_coins = gauge("hedged_hedge_coins", "Hedge held (H), base coin, short negative")
        self.hedge_usd = gauge("hedged_hedge_usd", "Hedge held in USD (H x mark), short negative")
        self.target_coins = gauge("hedged_target_coins", "Target hedge (T), base coin")
        self.drift_coins = gauge("hedged_drift_coins", "Drift D = H + in-flight - T, base coin")
        self.band_coins = gauge("hedged_band_coins", "Band: no trade while |drift| <= band, base coin")
        self.inflight_coins = gauge("hedged_inflight_coins", "Remaining size of our open orders, base coin")
        self.hedge_ratio = gauge("hedged_hedge_ratio", "Achieved hedge ratio: -H x mark / exposure USD")
        self.mark = gauge("hedged_mark_price", "Mark price, quote currency per base coin")
        self.funding_rate = gauge("hedged_funding_rate", "Funding rate per funding interval (ratio)")
        self.funding_cost = gauge("hedged_funding_cost_usd_per_day",
                                  "USD a day the hedge pays in funding (> 0) or receives (< 0)")
        self.basis = gauge("hedged_basis_ratio", "(mark - index) / index")
        self.liq_distance = gauge("hedged_liquidation_distance_ratio", "|mark - liquidation price| / mark")
        self.open_orders = gauge("hedged_open_orders", "Our orders open on the book at the cycle's read")
        # per venue
        self.leverage = gauge("hedged_leverage_ratio", "Effective leverage of the account", ("venue",))
        self.requests = Counter("hedged_venue_requests", "Exchange requests (each attempt)", ["venue"], registry=r)
        self.errors = Counter("hedged_venue_errors", "Failed exchange requests by error class",
                              ["venue", "class"], registry=r)
        self.read_latency = Histogram("hedged_venue_read_latency_seconds", "Latency of exchange reads",
                                      ["venue"], buckets=LATENCY_BUCKETS, registry=r)
        # orders and the guard
        self.orders_sent = Counter("hedged_orders_sent", "Orders sent", list(vs), registry=r)
        self.orders_filled = Counter("hedged_orders_filled", "Orders completely filled", list(vs), registry=r)
        self.orders_cancelled = Counter("hedged_orders_cancelled", "Orders cancelled, by reason",
                                        [*vs, "reason"], registry=r)
        self.orders_rejected = Counter("hedged_orders_rejected", "Orders rejected, by reason",
                                       [*vs, "reason"], registry=r)
        self.denials = Counter("hedged_guard_denials", "Cycles an order was blocked, by reason code",
                               [*vs, "reason"], registry=r)
        self.cuts = Counter("hedged_guard_cuts", "Orders cut by a limit, by reason code", [*vs, "reason"],
                            registry=r)
        # the keeper
        self.cycles = Counter("hedged_cycles", "Cycles run", registry=r)
        self.cycle_failures = Counter("hedged_cycle_failures", "Cycles that failed", registry=r)
        self.cycle_duration = Histogram("hedged_cycle_duration_seconds", "Duration of one cycle",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.state = Gauge("hedged_trading_state", "1 for the current trading state, 0 for the others",
                           ["state"], registry=r)
        self.last_cycle = Gauge("hedged_last_cycle_timestamp_seconds", "Unix time of the last completed cycle",
                                registry=r)
        self.audit_write = Histogram("hedged_audit_write_duration_seconds", "Duration of one durable audit write",
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.mqtt_connected = Gauge("hedged_mqtt_connected", "1 while connected to the MQTT broker (0 if off)",
                                    registry=r)
        # per streamed venue (docs/streaming.md): the view's own counts, brought up to date at each cycle's end
        self.stream_up = gauge("hedged_stream_up", "1 while every stream of the venue is alive, 0 while it polls",
                               ("venue",))
        self.stream_resyncs = Counter("hedged_stream_resyncs", "REST resyncs of the streamed view", ["venue"],
                                      registry=r)
        self.stream_differences = Counter(
            "hedged_stream_differences", "REST/stream differences found while the streams were healthy: lost "
            "messages or bugs", ["venue"], registry=r)
        self.stream_reconnects = Counter("hedged_stream_reconnects", "Stream reconnects after a failure",
                                         ["venue"], registry=r)

        for s in TradingState:
            self.state.labels(s.value).set(1 if s is TradingState.RUNNING else 0)
        for h in config.hedge:  # counters exist from the start at 0, for rate() and for dashboards
            lv = (h.venue, h.instrument)
            self.orders_sent.labels(*lv)
            self.orders_filled.labels(*lv)
            for reason in CANCEL_REASONS:
                self.orders_cancelled.labels(*lv, reason)
            self.orders_rejected.labels(*lv, "other")
            for code in DENIAL_CODES:
                self.denials.labels(*lv, code)
            for code in CUT_CODES:
                self.cuts.labels(*lv, code)
        for name in config.venues:
            self.requests.labels(name)
            self.read_latency.labels(name)

        self.keeper: Keeper | None = None
        self.streamed: dict[str, StreamedVenue] = {}
        self._stream_counts: dict[str, tuple[int, int, int]] = {}  # (resyncs, differences, reconnects) counted
        self.mqtt: Callable[[], bool] = lambda: False
        self._last_ok: float | None = None
        self._last_error = ""
        self._verdict: tuple[str, str, bool] = ("STARTING", "", False)  # state, its reason, a fault?

    def attach(self, keeper: Keeper, store: AuditStore, venues: Mapping[str, CcxtVenue], bridge: MqttBridge | None,
               then: Callable[[CycleResult, Snapshot | None], None] | None = None
               ) -> Callable[[CycleResult, Snapshot | None], None]:
        """Install the hooks; returns the keeper's `on_cycle`: these metrics first, then `then`."""
        from hedged.stream import StreamedVenue

        self.keeper = keeper
        store.on_write, store.on_order = self.on_audit_write, self.on_order
        for v in venues.values():
            v.on_request = self.on_request
        self.streamed = {n: v for n, v in venues.items() if isinstance(v, StreamedVenue)}
        for name in self.streamed:  # from 0 at the start, for rate()
            self.stream_up.labels(name).set(0)
            for c in (self.stream_resyncs, self.stream_differences, self.stream_reconnects):
                c.labels(name)
            self._stream_counts[name] = (0, 0, 0)
        if bridge is not None:
            self.mqtt = bridge.connected.is_set

        def on_cycle(result: CycleResult, snapshot: Snapshot | None) -> None:
            self.observe(result, snapshot)
            if then is not None:
                then(result, snapshot)

        return on_cycle

    # --- hooks (called where things happen; cheap, never raise) ------------------------------------
    def on_request(self, venue: str, call: str, seconds: float, error: BaseException | None) -> None:
        self.requests.labels(venue).inc()
        if error is not None:
            self.errors.labels(venue, error_class(error)).inc()
        elif call in READ_CALLS:
            self.read_latency.labels(venue).observe(seconds)

    def on_audit_write(self, seconds: float) -> None:
        self.audit_write.observe(seconds)

    def on_order(self, kind: str, before: str | None, after: OrderRecord, reason: str | None) -> None:
        """An order event was committed: count sends and status changes into filled/cancelled/rejected."""
        labels = (after.venue, after.symbol)
        if kind == "sent" and before != "sent":
            self.orders_sent.labels(*labels).inc()
        if before == after.status:
            return
        if after.status == "filled":
            self.orders_filled.labels(*labels).inc()
        elif after.status == "cancelled":
            self.orders_cancelled.labels(*labels, order_reason("cancelled", reason)).inc()
        elif after.status == "rejected":
            self.orders_rejected.labels(*labels, order_reason("rejected", reason)).inc()

    # --- the end of a cycle -------------------------------------------------------------------------
    def observe(self, result: CycleResult, snapshot: Snapshot | None) -> None:
        """Set every gauge from this cycle; the keeper's `on_cycle` calls this."""
        self.cycles.inc()
        self.cycle_duration.observe(result.duration)
        if result.error:
            self.cycle_failures.inc()
            self._last_error = result.error[:300]
        else:
            self._last_ok = self.clock()
            self._last_error = ""
            self.last_cycle.set(time.time())
        for s in TradingState:
            self.state.labels(s.value).set(1 if s is result.state else 0)
        k = self.keeper
        reason = (k.state_reason if k is not None else "") or ""
        # a fault or an operator's halt: the halt's typed origin says (hedged.halt; recorded with the HALTED
        # command, so read back after a restart), never the words of its reason ("audit maintenance").
        # A permanent breaker trip (AuthFailed at once, Rejected twice) halts until an operator resumes, even
        # once cycles complete; the keeper's breaker remembers it, while the state's reason only says "command".
        # A transient trip pauses and resumes by itself: unhealthy only while cycles fail (the age rule).
        breaker = k.breaker if k is not None else None
        origin = k.halt_origin if k is not None else None
        if breaker is not None and breaker.tripped == "permanent" and result.state is TradingState.HALTED:
            reason, origin = breaker.reason(), HaltOrigin.BREAKER
        if k is not None and k.audit_broken:
            origin = HaltOrigin.AUDIT
        fault = result.state is TradingState.HALTED and is_fault(origin)
        self._verdict = (result.state.value, reason, fault)
        self.mqtt_connected.set(1 if self.mqtt() else 0)
        self._streams()
        if snapshot is None or not result.decisions:
            return
        self._decisions(snapshot, result.decisions, result.hedges)

    def _streams(self) -> None:
        """Each streamed venue's counts since the last cycle added to its counters; alive or polling."""
        for name, v in self.streamed.items():
            self.stream_up.labels(name).set(1 if v.alive() else 0)
            now = (v.resyncs, v.differences, v.reconnects)
            for counter, was, count in zip((self.stream_resyncs, self.stream_differences, self.stream_reconnects),
                                           self._stream_counts[name], now, strict=True):
                if count > was:
                    counter.labels(name).inc(count - was)
            self._stream_counts[name] = now

    def _decisions(self, snapshot: Snapshot, decisions: tuple[Decision, ...],
                   hedges: tuple[HedgeTarget, ...]) -> None:
        prefix = client_prefix(self.config.keeper.name)
        for d, risk in zip(decisions, instrument_risks(snapshot, decisions), strict=True):
            p, lv = d.plan, (d.plan.venue, d.plan.symbol)
            for g, v in ((self.hedge_coins, p.hedge), (self.hedge_usd, p.hedge * p.mark),
                         (self.target_coins, p.target), (self.drift_coins, p.drift), (self.band_coins, p.band),
                         (self.inflight_coins, p.inflight), (self.hedge_ratio, risk.hedge_ratio),
                         (self.mark, p.mark), (self.funding_rate, risk.funding_rate),
                         (self.funding_cost, risk.funding_cost_usd_per_day),
                         (self.basis, risk.basis_bps / 10000 if risk.basis_bps is not None else None),
                         (self.liq_distance, risk.liquidation_distance_pct / 100
                          if risk.liquidation_distance_pct is not None else None)):
                g.labels(*lv).set(_f(v))
            vstate = snapshot.venues.get(p.venue)
            mine = [o for o in (vstate.open_orders if vstate is not None else ())
                    if o.symbol == p.symbol and o.client_id.startswith(prefix)]
            self.open_orders.labels(*lv).set(len(mine))
            codes = [r.code for r in d.reasons]
            if d.action == "blocked":
                for c in dict.fromkeys(c for c in codes if c in DENIAL_CODES):
                    self.denials.labels(*lv, c).inc()
            elif d.action == "trade":
                for c in dict.fromkeys(c for c in codes if c in CUT_CODES):
                    self.cuts.labels(*lv, c).inc()
        plans = {(d.plan.venue, d.plan.symbol) for d in decisions}
        exposure: dict[tuple[str, str, str], tuple[Decimal, Decimal]] = {}
        for h in hedges:  # entries of one asset on one instrument add up
            key = (h.venue, h.instrument, h.asset)
            coins, usd = exposure.get(key, (Decimal(0), Decimal(0)))
            exposure[key] = (coins + h.exposure, usd + h.exposure * h.price)
        for (venue, symbol, asset), (coins, usd) in exposure.items():
            if (venue, symbol) in plans:
                self.exposure_coins.labels(venue, symbol, asset).set(_f(coins))
                self.exposure_usd.labels(venue, symbol, asset).set(_f(usd))
        for vr in venue_risks(snapshot, decisions):
            self.leverage.labels(vr.venue).set(_f(vr.leverage))

    # --- health --------------------------------------------------------------------------------------
    def health(self) -> Health:
        """The verdict on the last cycle's end state (never a live query)."""
        # rounded once, as the body shows it: the verdict judges the figure it reports (0.6004 s was 503 while
        # the body said 0.6 against a 0.6 s limit)
        age = round(self.clock() - self._last_ok, 3) if self._last_ok is not None else None
        state, reason, fault = self._verdict
        return health_verdict(state=state, state_reason=reason, age=age, interval=self.config.keeper.interval,
                              fault=fault, last_error=self._last_error)

    def render(self) -> bytes:
        return generate_latest(self.registry)
