"""Risk monitors: pure functions of one cycle's snapshot and decisions → risk metrics and alerts.

No I/O and no clock: the time is the Observation's. The only impurity is `uuid4` for `Alert.id`.

**Metrics** (`instrument_risks`, `venue_risks`; what the MQTT state message and dashboards show):

- funding, per hedge instrument: the venue's rate per interval (current, and next where the venue
  predicts one); interval from the market (Bybit `fundingInterval`), 8 h when unknown.
  APR % = rate × (24 / interval h) × 365 × 100.
  USD per day = rate × (hedge in base coin, signed) × mark × (24 / interval h): > 0 the hedge pays,
  < 0 it receives. A long pays a positive rate, a short receives it. The plan's hedge is in base coin
  for linear and inverse alike (inverse: contracts × USD size / mark), so hedge × mark is the USD
  notional either way, and one formula serves both (inverse funding is settled in coin, of that value).
- basis, bps: (perp mark − reference) / reference × 10,000, reference = the ticker's index price, else a
  spot ticker of the base coin (BASE/QUOTE, BASE/USDT, BASE/USDC, BASE/USD; this venue first).
- liquidation distance, %: |mark − liquidation price| / mark × 100; none without a position or without a
  liquidation price (> 0).
- effective leverage of a perp venue: Σ |position USD notional| / equity USD (inverse notional =
  contracts × USD size; linear = contracts × size × mark). Equity = Σ over the coins of the account
  (its balances, and the settle coins of its positions and hedge instruments) of (wallet balance + the
  uPnL settled in that coin) × the coin's USD price: 1 for USD, USDT, USDC; else a ticker of that coin
  against one of those (mark, last, mid, index; this venue first). Every coin counts because on a
  unified account the coins held are the margin (a BTC holding shorted on BTC/USDT:USDT is ~1×, not
  "no USDT, infinite"); collateral haircuts are not applied. A held coin with no price is left out
  (listed in `unpriced`: leverage reads high, not low); a settle coin with no price, a position whose
  market or mark is missing, or equity ≤ 0 make the leverage None.

**Conditions** (`evaluate`), each under a stable key, through `hedged.alerts.dedupe` (see its module
doc for new / worse / cooldown / resolved). Thresholds are `[monitors]` (`MonitorsConfig`).

Each entry: code (key) — level — fires when — the value compared by the "materially worse" rule.

- funding (funding:VENUE:SYMBOL) — warning — the hedge *pays* funding at an APR above
  `funding_apr_warning`, by the current or the next rate, whichever costs more (income never alerts) —
  the APR paid, higher is worse.
- basis (basis:VENUE:SYMBOL) — warning — |basis| > `basis_bps_warning` — |bps|, higher is worse.
- liquidation (liquidation:VENUE:SYMBOL) — warning when distance < `liquidation_warning_pct`, critical
  when < `liquidation_critical_pct` — the distance %, lower is worse.
- leverage (leverage:VENUE) — warning when > `leverage_warning`, critical when > `leverage_critical` —
  the leverage, higher is worse.
- drift (drift:VENUE:SYMBOL) — warning — |drift| > band for more than `drift_cycles` consecutive cycles
  (blocked by limits, failing orders, insufficient margin); data carries the last decision's reasons —
  |drift|, higher is worse.
- stale_data (stale_data:VENUE:SYMBOL) — warning — the instrument's decision has reason `stale_data`.
- exchange_error (exchange_error) — warning — the cycle failed (`Observation.error`); it stays active
  while cycles keep failing and resolves on the first cycle without an error.

"Materially worse" = the value reached `worsen_factor` (default 1.5) × the value last sent (or fell to
1/`worsen_factor` of it when lower is worse); a level going up always is.

A condition is only *checked* (and so can resolve) when its inputs are there: without a snapshot only
`exchange_error` is checked and the drift counters stand still; funding is checked when a rate is
known; basis when a reference price is; liquidation and drift and stale_data whenever the instrument
has a decision; leverage when it could be computed. Missing data never clears an alert.

The drift counter counts consecutive observed cycles with |drift| > band, per instrument, and resets to 0
the first cycle back in band. The trading-state change (`memory.last_state` → `obs.state`) is a one-shot
alert, code `state`: RUNNING → info, REDUCING → warning, HALTED → critical; the first observation only
records the state. Start, stop and fills are one-shot events the shell builds with `event_alert`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from enum import Enum
from typing import Any

from hedged.alerts.dedupe import Condition, DedupeState, Level, Notice, iso, step
from hedged.config import MonitorsConfig
from hedged.exposure import PlanInputError, basis_bps, instrument_mark, notional_usd, spot_reference, ticker_price
from hedged.model import Code, Decision, InstrumentPlan, MarketKind, Snapshot, TradingState

__all__ = [
    "CODES",
    "DEFAULT_FUNDING_INTERVAL_HOURS",
    "Alert",
    "InstrumentRisk",
    "Level",
    "MonitorState",
    "Observation",
    "VenueRisk",
    "evaluate",
    "event_alert",
    "instrument_risks",
    "jsonable",
    "venue_risks",
]

ZERO = Decimal(0)
HUNDRED = Decimal(100)
BPS = Decimal(10000)
DAYS_PER_YEAR = Decimal(365)
DEFAULT_FUNDING_INTERVAL_HOURS = Decimal(8)
STABLE_COINS = frozenset({"USD", "USDT", "USDC"})
CODES = tuple(Code(c) for c in ("funding", "basis", "liquidation", "leverage", "drift", "stale_data",
                                "exchange_error", "state", "fill", "start", "stop"))
STATE_LEVEL: Mapping[TradingState, Level] = {
    TradingState.RUNNING: "info", TradingState.REDUCING: "warning", TradingState.PAUSED: "warning",
    TradingState.HALTED: "critical"}


# --- JSON-able values -----------------------------------------------------------------------------------


def fmt(d: Decimal, places: int = 12) -> str:
    """A Decimal as plain text rounded to `places` decimals, trailing zeros dropped: 54.75, 100, -0.5."""
    with localcontext() as ctx:
        ctx.prec = 80
        q = d.quantize(Decimal(1).scaleb(-places)).normalize()
    text = format(q, "f")
    return "0" if text in ("-0", "0") else text


def jsonable(value: Any) -> Any:
    """Values for `Alert.data`: Decimals → str, datetimes → ISO 8601 Z, enums → their value,
    mappings → dicts with str keys, sequences → lists; str, int, bool, None and finite floats unchanged."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return fmt(value) if value.is_finite() else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


# --- alerts ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert, as sent to every sink; `as_json` is its wire form."""

    id: str  # uuid4 hex
    ts: datetime
    keeper: str
    level: Level
    code: str
    message: str  # one human line
    data: Mapping[str, Any]  # JSON-able; deduped conditions carry "status" (firing|resolved) and "key"

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "ts": iso(self.ts), "keeper": self.keeper, "level": self.level, "code": self.code,
                "message": self.message, "data": jsonable(self.data)}


def event_alert(keeper: str, code: str, level: Level, message: str, data: Mapping[str, Any],
                now: datetime) -> Alert:
    """A one-shot alert (start, stop, fill, ...): built by the shell when the event happens."""
    return Alert(id=uuid.uuid4().hex, ts=now, keeper=keeper, level=level, code=code, message=message,
                 data=jsonable(data))


def _from_notice(n: Notice, keeper: str, now: datetime) -> Alert:
    return event_alert(keeper, n.code, n.level, n.message, n.data, now)


# --- metrics --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstrumentRisk:
    """One hedge instrument this cycle. Prices in the market's quote currency, sizes in base coin."""

    venue: str
    symbol: str
    kind: MarketKind
    base: str
    action: str  # the decision: trade | hold | blocked
    exposure_usd: Decimal  # USD value of what the entries on this instrument hedge
    hedge: Decimal  # H, base coin, short negative
    inflight: Decimal  # our open orders' remaining size, base coin, signed
    target: Decimal
    drift: Decimal
    band: Decimal
    mark: Decimal
    notional_usd: Decimal  # |hedge| × mark
    hedge_ratio: Decimal | None  # achieved: −hedge × mark / exposure_usd; None when exposure is 0
    funding_interval_hours: Decimal  # the market's, else 8
    funding_rate: Decimal | None  # per interval, current
    next_funding_rate: Decimal | None
    next_funding_time: datetime | None
    funding_apr_pct: Decimal | None
    next_funding_apr_pct: Decimal | None
    funding_cost_usd_per_day: Decimal | None  # > 0 we pay, < 0 we receive
    next_funding_cost_usd_per_day: Decimal | None
    reference_price: Decimal | None  # index, else spot
    basis_bps: Decimal | None
    liquidation_price: Decimal | None
    liquidation_distance_pct: Decimal | None

    @property
    def key(self) -> str:
        return f"{self.venue}:{self.symbol}"

    def as_json(self) -> dict[str, Any]:
        """Every field, Decimals as strings rounded to 12 places, times as ISO 8601 Z."""
        return {name: jsonable(getattr(self, name)) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class VenueRisk:
    venue: str
    leverage: Decimal | None  # Σ |position USD notional| / equity USD; None when unknown
    equity_usd: Decimal | None = None
    notional_usd: Decimal | None = None
    unpriced: tuple[str, ...] = ()  # coins held there with no USD price: left out of the equity

    def as_json(self) -> dict[str, Any]:
        return {name: jsonable(getattr(self, name)) for name in self.__dataclass_fields__}


def periods_per_day(interval_hours: Decimal) -> Decimal:
    return Decimal(24) / interval_hours


def funding_apr_pct(rate: Decimal, interval_hours: Decimal = DEFAULT_FUNDING_INTERVAL_HOURS) -> Decimal:
    """A rate per interval, annualised, in percent: rate × periods a day × 365 × 100."""
    return rate * periods_per_day(interval_hours) * DAYS_PER_YEAR * HUNDRED


def funding_cost_usd_per_day(rate: Decimal, hedge: Decimal, mark: Decimal,
                             interval_hours: Decimal = DEFAULT_FUNDING_INTERVAL_HOURS) -> Decimal:
    """USD a day the position pays (> 0) or receives (< 0): rate × hedge (base coin, signed) × mark × periods."""
    return rate * hedge * mark * periods_per_day(interval_hours)


def liquidation_distance_pct(mark: Decimal, liquidation: Decimal) -> Decimal:
    return abs(mark - liquidation) / mark * HUNDRED


def instrument_risk(snapshot: Snapshot, decision: Decision) -> InstrumentRisk:
    p: InstrumentPlan = decision.plan
    state = snapshot.venues.get(p.venue)
    ticker = state.tickers.get(p.symbol) if state is not None else None
    position = state.positions.get(p.symbol) if state is not None else None
    interval = p.market.funding_interval_hours
    if interval is None or interval <= 0:
        interval = DEFAULT_FUNDING_INTERVAL_HOURS

    rate = ticker.funding_rate if ticker is not None else None
    next_rate = ticker.next_funding_rate if ticker is not None else None

    reference: Decimal | None = None
    if ticker is not None and ticker.index is not None and ticker.index > 0:
        reference = ticker.index
    else:
        reference = spot_reference(snapshot, p.venue, p.market.base, p.market.quote)

    liq: Decimal | None = None
    if position is not None and position.contracts != 0 and position.liquidation_price is not None \
            and position.liquidation_price > 0 and p.mark > 0:
        liq = position.liquidation_price

    return InstrumentRisk(
        venue=p.venue, symbol=p.symbol, kind=p.market.kind, base=p.market.base, action=decision.action,
        exposure_usd=p.exposure_usd, hedge=p.hedge, inflight=p.inflight, target=p.target, drift=p.drift,
        band=p.band, mark=p.mark, notional_usd=abs(p.hedge) * p.mark,
        hedge_ratio=-p.hedge * p.mark / p.exposure_usd if p.exposure_usd != 0 else None,
        funding_interval_hours=interval,
        funding_rate=rate,
        next_funding_rate=next_rate,
        next_funding_time=ticker.next_funding_time if ticker is not None else None,
        funding_apr_pct=funding_apr_pct(rate, interval) if rate is not None else None,
        next_funding_apr_pct=funding_apr_pct(next_rate, interval) if next_rate is not None else None,
        funding_cost_usd_per_day=(
            funding_cost_usd_per_day(rate, p.hedge, p.mark, interval) if rate is not None else None),
        next_funding_cost_usd_per_day=(
            funding_cost_usd_per_day(next_rate, p.hedge, p.mark, interval) if next_rate is not None else None),
        reference_price=reference,
        basis_bps=basis_bps(snapshot, p.venue, p.market, p.mark),
        liquidation_price=liq,
        liquidation_distance_pct=liquidation_distance_pct(p.mark, liq) if liq is not None else None,
    )


def instrument_risks(snapshot: Snapshot, decisions: Sequence[Decision]) -> tuple[InstrumentRisk, ...]:
    """One InstrumentRisk per decision, in the same order."""
    return tuple(instrument_risk(snapshot, d) for d in decisions)


def _quote_of(symbol: str) -> tuple[str, str] | None:
    """'BTC/USDT:USDT' → ('BTC', 'USDT'); None when not BASE/QUOTE[:SETTLE]."""
    pair = symbol.split(":", 1)[0]
    base, sep, quote = pair.partition("/")
    return (base, quote) if sep and base and quote else None


def coin_usd_price(snapshot: Snapshot, venue: str, coin: str) -> Decimal | None:
    """1 for USD, USDT, USDC; else a ticker of `coin` against one of those (mark, last, mid, index),
    this venue first."""
    if coin in STABLE_COINS:
        return Decimal(1)
    for name in (venue, *(v for v in snapshot.venues if v != venue)):
        state = snapshot.venues.get(name)
        if state is None:
            continue
        for symbol, t in state.tickers.items():
            pair = _quote_of(symbol)
            if pair is None or pair[0] != coin or pair[1] not in STABLE_COINS:
                continue
            price = ticker_price(t)
            if price is None and t.index is not None and t.index > 0:
                price = t.index
            if price is not None:
                return price
    return None


def venue_risk(snapshot: Snapshot, venue: str, settle_coins: Sequence[str] = ()) -> VenueRisk:
    """Effective leverage of one perp account (see the module doc). `settle_coins`: the hedge
    instruments' settle coins there, which must be priced like those of the open positions."""
    state = snapshot.venues.get(venue)
    if state is None:
        return VenueRisk(venue, None)
    notional = ZERO
    upnl: dict[str, Decimal] = {c: ZERO for c in settle_coins}
    for symbol, pos in state.positions.items():
        if pos.contracts == 0:
            continue
        market = state.markets.get(symbol)
        try:
            mark = instrument_mark(state, venue, symbol)
        except PlanInputError:  # no price for it: leverage unknown
            return VenueRisk(venue, None)
        if market is None or not market.is_contract:
            return VenueRisk(venue, None)
        notional += notional_usd(market, abs(pos.contracts), mark)
        coin = market.settle or market.quote
        upnl[coin] = upnl.get(coin, ZERO) + pos.unrealized_pnl
    equity = ZERO
    unpriced: list[str] = []
    for coin in dict.fromkeys((*upnl, *state.balances)):
        amount = state.balances.get(coin, ZERO) + upnl.get(coin, ZERO)
        price = coin_usd_price(snapshot, venue, coin)
        if price is None:
            if coin in upnl:
                return VenueRisk(venue, None, None, notional, (coin,))
            if amount != 0:
                unpriced.append(coin)
            continue
        equity += amount * price
    if notional == 0:
        return VenueRisk(venue, ZERO, equity, notional, tuple(unpriced))
    return VenueRisk(venue, notional / equity if equity > 0 else None, equity, notional, tuple(unpriced))


def venue_risks(snapshot: Snapshot, decisions: Sequence[Decision]) -> tuple[VenueRisk, ...]:
    """One VenueRisk per perp venue of the decisions, in the order they first appear."""
    coins: dict[str, list[str]] = {}
    for d in decisions:
        m = d.plan.market
        settle = m.settle or m.quote
        coins.setdefault(d.plan.venue, [])
        if settle not in coins[d.plan.venue]:
            coins[d.plan.venue].append(settle)
    return tuple(venue_risk(snapshot, v, c) for v, c in coins.items())


# --- one cycle's observation → alerts -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observation:
    time: datetime
    keeper: str
    state: TradingState
    snapshot: Snapshot | None  # None when the cycle failed before reading the exchange
    decisions: tuple[Decision, ...] = ()
    error: str | None = None  # the cycle's error message, if the cycle failed


@dataclass(frozen=True, slots=True)
class MonitorState:
    """Memory between cycles; start from `MonitorState()`."""

    last_state: TradingState | None = None
    failures: int = 0  # consecutive failed cycles
    drift_counts: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (venue, symbol) → cycles out of band
    dedupe: DedupeState = field(default_factory=DedupeState)


def _labels(r: InstrumentRisk) -> dict[str, Any]:
    return {"venue": r.venue, "symbol": r.symbol}


def _side(hedge: Decimal) -> str:
    return "short" if hedge < 0 else "long"


def _funding(config: MonitorsConfig, r: InstrumentRisk, checked: set[str]) -> Condition | None:
    key = f"funding:{r.key}"
    if r.funding_rate is None and r.next_funding_rate is None:
        return None  # unknown: not checked
    checked.add(key)
    if r.hedge == 0:
        return None
    sign = Decimal(1) if r.hedge > 0 else Decimal(-1)
    candidates: list[tuple[Decimal, str, Decimal, Decimal]] = []  # (APR paid, which, rate, USD/day)
    if r.funding_rate is not None and r.funding_apr_pct is not None and r.funding_cost_usd_per_day is not None:
        candidates.append((r.funding_apr_pct * sign, "current", r.funding_rate, r.funding_cost_usd_per_day))
    if r.next_funding_rate is not None and r.next_funding_apr_pct is not None \
            and r.next_funding_cost_usd_per_day is not None:
        candidates.append((r.next_funding_apr_pct * sign, "next", r.next_funding_rate,
                           r.next_funding_cost_usd_per_day))
    paid, which, rate, cost = max(candidates, key=lambda c: c[0])
    if paid <= config.funding_apr_warning:
        return None
    message = (f"{r.venue} {r.symbol}: the {_side(r.hedge)} pays funding at {fmt(paid, 2)}% a year "
               f"({which} rate {fmt(rate * HUNDRED, 4)}% per {fmt(r.funding_interval_hours, 2)}h), "
               f"{fmt(cost, 2)} USD/day")
    data = {"rate": r.funding_rate, "next_rate": r.next_funding_rate, "apr_pct": r.funding_apr_pct,
            "next_apr_pct": r.next_funding_apr_pct, "cost_usd_per_day": r.funding_cost_usd_per_day,
            "next_cost_usd_per_day": r.next_funding_cost_usd_per_day, "interval_hours": r.funding_interval_hours,
            "paid_apr_pct": paid, "which": which, "threshold_apr_pct": config.funding_apr_warning}
    return Condition(key, Code.FUNDING, "warning", message, jsonable(data), _labels(r), paid)


def _basis(config: MonitorsConfig, r: InstrumentRisk, checked: set[str]) -> Condition | None:
    key = f"basis:{r.key}"
    if r.basis_bps is None:
        return None
    checked.add(key)
    size = abs(r.basis_bps)
    if size <= config.basis_bps_warning:
        return None
    message = (f"{r.venue} {r.symbol}: mark {fmt(r.mark, 8)} is {fmt(r.basis_bps, 1)} bps from the reference "
               f"{fmt(r.reference_price or ZERO, 8)} (> {fmt(config.basis_bps_warning)})")
    data = {"basis_bps": r.basis_bps, "mark": r.mark, "reference": r.reference_price,
            "threshold_bps": config.basis_bps_warning}
    return Condition(key, Code.BASIS, "warning", message, jsonable(data), _labels(r), size)


def _liquidation(config: MonitorsConfig, r: InstrumentRisk, checked: set[str]) -> Condition | None:
    key = f"liquidation:{r.key}"
    checked.add(key)
    d = r.liquidation_distance_pct
    if d is None or d >= config.liquidation_warning_pct:
        return None
    level: Level = "critical" if d < config.liquidation_critical_pct else "warning"
    threshold = config.liquidation_critical_pct if level == "critical" else config.liquidation_warning_pct
    message = (f"{r.venue} {r.symbol}: liquidation at {fmt(r.liquidation_price or ZERO, 8)} is {fmt(d, 2)}% from "
               f"mark {fmt(r.mark, 8)} (< {fmt(threshold)}%)")
    data = {"distance_pct": d, "liquidation_price": r.liquidation_price, "mark": r.mark, "hedge": r.hedge,
            "threshold_pct": threshold}
    return Condition(key, Code.LIQUIDATION, level, message, jsonable(data), _labels(r), d, higher_is_worse=False)


def _stale(d: Decision, r: InstrumentRisk, checked: set[str]) -> Condition | None:
    key = f"stale_data:{r.key}"
    checked.add(key)
    stale = [x for x in d.reasons if x.code is Code.STALE_DATA]
    if not stale:
        return None
    message = f"{r.venue} {r.symbol}: stale data, order held back: {stale[0].detail or stale[0].code}"
    return Condition(key, Code.STALE_DATA, "warning", message, {"reasons": [str(x) for x in stale]}, _labels(r))


def _drift(config: MonitorsConfig, d: Decision, r: InstrumentRisk, cycles: int,
           checked: set[str]) -> Condition | None:
    key = f"drift:{r.key}"
    checked.add(key)
    if cycles <= config.drift_cycles:
        return None
    last = d.reasons[-1] if d.reasons else None
    message = (f"{r.venue} {r.symbol}: drift {fmt(r.drift, 8)} {r.base} outside the band {fmt(r.band, 8)} for "
               f"{cycles} cycles ({d.action}{': ' + str(last) if last is not None else ''})")
    data = {"drift": r.drift, "band": r.band, "hedge": r.hedge, "inflight": r.inflight, "target": r.target,
            "cycles": cycles, "action": d.action, "reasons": [str(x) for x in d.reasons]}
    return Condition(key, Code.DRIFT, "warning", message, jsonable(data), _labels(r), abs(r.drift))


def _leverage(config: MonitorsConfig, v: VenueRisk, checked: set[str]) -> Condition | None:
    key = f"leverage:{v.venue}"
    if v.leverage is None:
        return None
    checked.add(key)
    if v.leverage <= config.leverage_warning:
        return None
    level: Level = "critical" if v.leverage > config.leverage_critical else "warning"
    threshold = config.leverage_critical if level == "critical" else config.leverage_warning
    message = (f"{v.venue}: effective leverage {fmt(v.leverage, 2)}x (> {fmt(threshold)}x): "
               f"{fmt(v.notional_usd or ZERO, 2)} USD of positions on {fmt(v.equity_usd or ZERO, 2)} USD equity")
    data = {"leverage": v.leverage, "notional_usd": v.notional_usd, "equity_usd": v.equity_usd,
            "unpriced": list(v.unpriced), "threshold": threshold}
    return Condition(key, Code.LEVERAGE, level, message, jsonable(data), {"venue": v.venue}, v.leverage)


def evaluate(config: MonitorsConfig, obs: Observation,
             memory: MonitorState) -> tuple[MonitorState, tuple[Alert, ...]]:
    """One cycle: the new memory and the alerts to send (state change first, then the deduped conditions)."""
    alerts: list[Alert] = []
    if memory.last_state is not None and obs.state != memory.last_state:
        alerts.append(event_alert(
            obs.keeper, Code.STATE, STATE_LEVEL[obs.state],
            f"trading state {memory.last_state.value} → {obs.state.value}",
            {"from": memory.last_state.value, "to": obs.state.value}, obs.time))

    firing: list[Condition] = []
    checked: set[str] = {"exchange_error"}
    failures = memory.failures + 1 if obs.error is not None else 0
    if obs.error is not None:
        firing.append(Condition(Code.EXCHANGE_ERROR, Code.EXCHANGE_ERROR, "warning",
                                f"cycle failed ({failures} in a row): {obs.error}",
                                {"error": obs.error, "failures": failures}))

    counts = dict(memory.drift_counts)
    if obs.snapshot is not None:  # without one nothing below is checked, and the drift counters stand still
        for d, r in zip(obs.decisions, instrument_risks(obs.snapshot, obs.decisions), strict=True):
            where = (d.plan.venue, d.plan.symbol)
            counts[where] = counts.get(where, 0) + 1 if abs(d.plan.drift) > d.plan.band else 0
            for c in (_funding(config, r, checked), _basis(config, r, checked), _liquidation(config, r, checked),
                      _drift(config, d, r, counts[where], checked), _stale(d, r, checked)):
                if c is not None:
                    firing.append(c)
        for v in venue_risks(obs.snapshot, obs.decisions):
            c = _leverage(config, v, checked)
            if c is not None:
                firing.append(c)

    dedupe, notices = step(memory.dedupe, firing, checked, now=obs.time, cooldown=config.cooldown,
                           worsen_factor=config.worsen_factor)
    alerts.extend(_from_notice(n, obs.keeper, obs.time) for n in notices)
    new_memory = MonitorState(last_state=obs.state, failures=failures,
                              drift_counts={k: v for k, v in counts.items() if v > 0}, dedupe=dedupe)
    return new_memory, tuple(alerts)
