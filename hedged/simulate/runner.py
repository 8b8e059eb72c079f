"""`hedged simulate`: the real decision, step by step, over a seeded price path, on the real engine.

Per step: the clock moves (the engine runs taker flow and settles funding due), the path's candle moves
the index through its high and low to its close (resting orders the book trades through fill as makers),
then the rule decides on a fresh snapshot and its orders go to the engine. Three rules run on the same
path: `config` (the keeper's cycle: hedged.decide.decide — plan → guard → hold-back — with the keeper's
context of our orders, the core's reprice cancels and `settled`), `naive` (hedged.simulate.baselines) and
`unhedged` (no orders).
"""

from __future__ import annotations

import math
import tomllib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hedged.config import Config, parse_config
from hedged.decide import base36, decide, order_tag, settled
from hedged.exposure import notional_usd
from hedged.model import GuardResult, Plan, RecentOrder, Snapshot, TradingState
from hedged.planner import client_prefix
from hedged.planner import plan as make_plan
from hedged.replay import CycleInputs
from hedged.sim.engine import EngineError
from hedged.sim.orders import Order as SimOrder
from hedged.sim.settings import AssetSettings, EmulatorSettings, PathSettings, default_settings
from hedged.simulate.baselines import NaiveRule
from hedged.simulate.exchange import STABLE, SimVenue, dec, snapshot_of
from hedged.simulate.execution import OurOrders
from hedged.simulate.metrics import OrderRow, Series, diffs, r_squared, sampled, sampling_interval, summary
from hedged.simulate.paths import PathSpec, SimPath, generate

RULES = ("config", "naive", "unhedged")
MAX_CYCLES_PER_STEP = 4  # the config rule's cycles at one instant (woken by its own cancels or bounces)
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


class SimError(ValueError):
    """A simulation that cannot run as asked; one line naming the option or key."""


@dataclass(frozen=True)
class Deposit:
    """`amount` of `coin` credited every `every_days` (negative: a withdrawal), e.g. a DCA plan."""

    coin: str
    amount: Decimal
    every_days: float


@dataclass(frozen=True)
class SimOptions:
    path: PathSpec = field(default_factory=PathSpec)
    funding_rate: Decimal | None = Decimal("0.0001")  # per interval; None keeps the exchange's
    spread_ticks: int | None = None
    start: datetime = DEFAULT_START
    balances: Mapping[str, Decimal] | None = None
    deposits: tuple[Deposit, ...] = ()
    exchange: EmulatorSettings | None = None  # instruments, fees, book; default: the built-in exchange
    rules: tuple[str, ...] = RULES
    start_hedged: bool = True  # hedged rules start at target (no opening trades); False: from no hedge
    keep: frozenset[int] = frozenset()  # steps whose snapshot and decision are kept (replay checks)
    journal: bool = False  # keep every venue's journal of moves, steps, orders and cancels (replay checks)


@dataclass
class Scenario:
    rule: str
    series: Series
    orders: list[OrderRow]
    fills: int
    spread_usd: float
    summary: dict[str, Any] = field(default_factory=dict)
    kept: dict[int, tuple[Snapshot, Plan, GuardResult | None]] = field(default_factory=dict)
    # the config rule's kept steps: everything its last decision at that step rested on (snapshot + keeper)
    kept_inputs: dict[int, CycleInputs] = field(default_factory=dict)
    kept_cycles: list[tuple[int, CycleInputs]] = field(default_factory=list)  # every cycle of those steps
    venues: dict[str, SimVenue] = field(default_factory=dict)


@dataclass
class SimResult:
    config: Config
    path: SimPath
    scenarios: list[Scenario]
    meta: dict[str, Any] = field(default_factory=dict)

    def scenario(self, rule: str) -> Scenario:
        return next(s for s in self.scenarios if s.rule == rule)

    def json(self) -> dict[str, Any]:
        return {"scenarios": [s.summary for s in self.scenarios], **self.meta}


# --- set-up -----------------------------------------------------------------------------------------


def _needed_assets(cfg: Config, balances: Mapping[str, Decimal], deposits: tuple[Deposit, ...]) -> list[str]:
    out: list[str] = []
    for e in cfg.hedge:
        out += [e.instrument_base, e.asset]
    out += [c for c in balances if c not in STABLE]
    out += [d.coin for d in deposits if d.coin not in STABLE]
    return list(dict.fromkeys(out))


def _default_balances(cfg: Config, settings: EmulatorSettings) -> dict[str, Decimal]:
    """Ten coins of every hedged asset; USDT margin of a quarter of the notional for linear hedges."""
    bal: dict[str, Decimal] = {}
    linear_usd = Decimal(0)
    for e in cfg.hedge:
        bal.setdefault(e.asset, Decimal(10))
        settle = e.instrument.split(":")[1]
        if settle != e.instrument_base:
            price = settings.assets[e.asset].price if e.asset in settings.assets else Decimal(0)
            linear_usd += 10 * price * e.ratio * e.beta
            bal.setdefault(settle, Decimal(0))
    for coin in [c for c in bal if c in STABLE]:
        bal[coin] += (linear_usd / 4).quantize(Decimal(1))
    return bal


def _prepare(cfg: Config, opts: SimOptions) -> tuple[EmulatorSettings, SimPath, dict[str, Decimal], datetime]:
    base = opts.exchange or default_settings()
    if opts.balances is not None:
        balances = dict(opts.balances)
    elif opts.exchange is not None and opts.exchange.accounts:
        balances = dict(opts.exchange.accounts[0].balances)
    else:
        balances = _default_balances(cfg, base)
    listed = {i.symbol for i in base.instruments}
    for i, e in enumerate(cfg.hedge):
        for key, sym in (("instrument", e.instrument), ("price_symbol", e.price_symbol)):
            if sym and sym not in listed:
                raise SimError(f"hedge[{i}].{key}: {sym} is not listed by the simulated exchange "
                               f"(list it in --exchange FILE; listed: {', '.join(sorted(listed))})")
    assets = _needed_assets(cfg, balances, opts.deposits)
    starts: dict[str, float] = {}
    for a in assets:
        if a not in base.assets:
            raise SimError(f"{a}: no start price on the simulated exchange (add [assets.{a}] to --exchange FILE)")
        starts[a] = float(base.assets[a].price)
    primary = cfg.hedge[0].instrument_base
    try:
        path = generate(opts.path, starts, primary)
    except ValueError as exc:
        raise SimError(str(exc)) from None
    settings = base.model_copy(deep=True)
    settings.clock = "manual"
    # only what the config trades or reads: every listed instrument costs the engine time on every step
    wanted = {e.instrument for e in cfg.hedge} | {e.price_symbol for e in cfg.hedge if e.price_symbol}
    settings.instruments = [i for i in settings.instruments if i.symbol in wanted]
    settings.assets = {a: AssetSettings(price=dec(path.candles[a][0].close), path=PathSettings()) for a in assets}
    for inst in settings.instruments:
        if opts.funding_rate is not None:
            inst.funding_rate = opts.funding_rate
        if opts.spread_ticks is not None:
            inst.spread_ticks = opts.spread_ticks
    start = path.start or opts.start
    return settings, path, balances, start


def _venues(cfg: Config, settings: EmulatorSettings, start: datetime, step_s: int,
            balances: Mapping[str, Decimal]) -> dict[str, SimVenue]:
    used: list[str] = []
    for e in cfg.hedge:
        used += [e.venue, *e.sources]
    names = list(dict.fromkeys(used))
    start_ms = int(start.timestamp() * 1000)
    out: dict[str, SimVenue] = {}
    for n in names:
        symbols = [e.instrument for e in cfg.hedge if e.venue == n]
        symbols += [e.price_symbol for e in cfg.hedge if e.price_symbol]
        # every coin starts on the first hedge's venue (the usual coin-margined set-up)
        bal = balances if n == cfg.hedge[0].venue else {}
        out[n] = SimVenue.create(n, settings, start_ms, step_s * 1000, tuple(dict.fromkeys(symbols)),
                                 client_prefix(cfg.keeper.name), {k: Decimal(v) for k, v in bal.items()})
    return out


# --- one scenario -----------------------------------------------------------------------------------


@dataclass
class _Book:
    """Orders a rule placed (with the engine's order object, to read the final status) and the executions seen."""

    rows: list[tuple[OrderRow, SimOrder | None]] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    fees: float = 0.0
    funding: float = 0.0
    spread: float = 0.0
    fills: int = 0

    def place(self, venue: SimVenue, t: float, symbol: str, side: str, amount: Decimal, price: Decimal,
              post_only: bool, reduce_only: bool, client_id: str) -> SimOrder | None:
        row = OrderRow(t, venue.name, symbol, side, float(amount), float(price))
        try:
            o = venue.place(symbol, side, amount, price, post_only=post_only, reduce_only=reduce_only,
                            client_id=client_id)
        except EngineError as exc:
            row.status, row.reason = "rejected", exc.message
            self.rows.append((row, None))
            return None
        self.rows.append((row, o))
        return o

    def collect(self, venues: dict[str, SimVenue]) -> None:
        for name, v in venues.items():
            start = self.seen.get(name, 0)
            new = v.executions(start)
            self.seen[name] = start + len(new)
            for ex in new:
                inst = ex.instrument
                usd = Decimal(1) if ex.fee_coin in STABLE else (ex.index_price if ex.fee_coin == inst.base
                                                                 else v.usd(ex.fee_coin))
                if ex.exec_type == "Funding":
                    self.funding -= float(ex.fee * usd)
                    continue
                self.fills += 1
                self.fees += float(ex.fee * usd)
                coins = ex.qty * inst.contract_size / ex.price if inst.inverse else ex.qty
                sign = 1 if ex.side == "Buy" else -1
                self.spread += float(sign * (ex.price - ex.mark_price) * coins)

    def finish(self) -> list[OrderRow]:
        out = []
        for row, o in self.rows:
            if o is not None:
                row.filled = float(o.filled)
                if o.status == "Filled":
                    row.status = "filled"
                elif o.reject_reason == "EC_PostOnlyWillTakeLiquidity":
                    row.status, row.reason = "rejected", "post-only would take liquidity"
                elif o.status in ("Cancelled", "PartiallyFilledCanceled"):
                    row.status = "cancelled"
                else:
                    row.status = "partially_filled" if o.filled > 0 else "open"
            out.append(row)
        return out


def _record(series: Series, t: float, p: Plan, value: Decimal, deposits: float, book: _Book,
            funding_rate: float) -> None:
    hedge = target = band = dsum = 0.0
    outside = False
    price = None
    for ip in p.instruments:
        m = float(ip.mark)
        if price is None:
            price = m
        hedge += float(ip.hedge) * m
        target += float(ip.target) * m
        band += float(ip.band) * m
        dsum += abs(float(ip.drift)) * m
        outside = outside or abs(ip.drift) > ip.band
    series.t.append(t)
    series.price.append(price if price is not None else float(p.instruments[0].mark))
    series.value_usd.append(float(value))
    series.deposits_usd.append(deposits)
    series.hedge_usd.append(hedge)
    series.target_usd.append(target)
    series.band_usd.append(band)
    series.drift.append(dsum / abs(target) if target else (0.0 if not outside else 1.0))
    series.outside.append(outside)
    series.fees_usd.append(book.fees)
    series.funding_usd.append(book.funding)
    series.funding_rate.append(funding_rate)


def run_rule(rule: str, cfg: Config, path: SimPath, settings: EmulatorSettings, balances: Mapping[str, Decimal],
             start: datetime, opts: SimOptions) -> Scenario:
    if rule not in RULES:
        raise SimError(f"rule: expected one of {', '.join(RULES)}, got {rule!r}")
    venues = _venues(cfg, settings, start, path.step_s, balances)
    if opts.journal:
        for v in venues.values():
            v.journal = []
    first = next(iter(venues.values()))
    book = _Book()
    series = Series()
    ours = OurOrders()
    naive = NaiveRule()
    recent: deque[RecentOrder] = deque()
    prev_marks: dict[tuple[str, str], Decimal] = {}
    kept: dict[int, tuple[Snapshot, Plan, GuardResult | None]] = {}
    kept_inputs: dict[int, CycleInputs] = {}
    kept_cycles: list[tuple[int, CycleInputs]] = []
    last = {a: cs[0].close for a, cs in path.candles.items()}
    primary = cfg.hedge[0].instrument_base
    deposited = 0.0
    off_exchange = {e.asset: e.off_exchange for e in cfg.hedge}  # counted once per asset
    off_exchange = {a: amt for a, amt in off_exchange.items() if amt}
    funding_rate = float(first.engine.instruments[cfg.hedge[0].instrument].funding_rate)
    step_s = path.step_s
    vlist = list(venues.values())
    candles = list(path.candles.items())
    one_day = timedelta(days=1)
    keep = opts.keep
    if opts.start_hedged and rule != "unhedged":
        for ip in make_plan(cfg, snapshot_of(venues)).instruments:
            if ip.intent is not None:
                venues[ip.venue].open_position(ip.symbol, ip.intent.signed_amount)
    for i in range(path.steps + 1):
        t = float(i * step_s)
        if i > 0:
            for v in vlist:
                v.advance(step_s)
            resting: set[str] | tuple[()] = ()
            for v in vlist:
                if v.engine.open_orders:  # most steps: nothing rests, only the close moves the book
                    resting = {o.instrument.base for v in vlist for o in v.engine.open_orders.values()}
                    break
            for asset, cs in candles:
                c = cs[i]
                # through the candle's extremes only when an order rests there to be traded through
                moves = ((c.high, c.low, c.close) if c.close < c.open else (c.low, c.high, c.close)) \
                    if asset in resting else (c.close,)
                for px in moves:
                    if px != last[asset]:
                        price = dec(px)
                        for v in vlist:
                            v.move(asset, price)
                        last[asset] = px
            if path.funding is not None and not math.isnan(path.funding[i]):
                funding_rate = path.funding[i]
                for v in venues.values():
                    for inst in v.engine.instruments.values():
                        if inst.is_contract and inst.base == primary:
                            inst.funding_rate = dec(funding_rate)
            for dep in opts.deposits:
                every = round(dep.every_days * 86400 / step_s)
                if every > 0 and i % every == 0:
                    first.engine.credit("sim", dep.coin, dep.amount)
                    deposited += float(dep.amount * first.usd(dep.coin))
        now = first.now()
        decided: GuardResult | None = None
        if rule == "config":
            if recent:
                day_ago = now - one_day
                while recent and recent[0].time <= day_ago:
                    recent.popleft()
            touched = ours.follow()
            # the keeper's cycle: follow → decide → remember → cancel → place; a cancel (or a post-only
            # bounce) wakes it at once, so it cycles again at the same instant, as the keeper does
            for cycle in range(MAX_CYCLES_PER_STEP):
                snap = snapshot_of(venues, now)
                ctx = ours.context(touched)
                tag = None if cycle == 0 else f"{order_tag(snap)}{base36(cycle).rjust(2, '0')}"
                inputs = CycleInputs(snap, TradingState.RUNNING, tuple(recent), dict(prev_marks), tag, ctx) \
                    if i in keep else None
                p, decided = decide(cfg, snap, state=TradingState.RUNNING, recent=tuple(recent) if recent else (),
                                    previous_marks=prev_marks, tag=tag, context=ctx)
                if inputs is not None:
                    kept_inputs[i] = inputs
                    kept_cycles.append((i, inputs))
                for d in decided.decisions:
                    ip = d.plan
                    prev_marks[(ip.venue, ip.symbol)] = ip.mark
                    if settled(ip, ctx):
                        ours.settled(ip.venue, ip.symbol)
                wake = False
                for cancel in decided.cancels:
                    wake = ours.cancel(venues, cancel) or wake
                for d in decided.decisions:
                    ip, order = d.plan, d.order
                    if order is None:
                        continue
                    o = book.place(venues[order.venue], t, order.symbol, order.side, order.amount, order.price,
                                   order.post_only, order.reduce_only, order.client_id)
                    recent.append(RecentOrder(now, notional_usd(ip.market, order.amount, ip.mark)))
                    if o is not None:
                        ours.track(order.venue, o)
                    if order.post_only and (o is None or (not o.is_open and o.filled == 0)):
                        wake = True  # post-only bounced: re-plan at once at the new touch
                if not wake:
                    break
                touched = ours.follow()
        else:
            if rule == "naive":  # its unfilled remainders from the last step
                for v in venues.values():
                    for o in [o for o in v.engine.open_orders.values() if o.client_id.startswith(naive.prefix)]:
                        v.cancel(o)
            # every rule's series is the state it decided on: the hedge as the rule found it at this step
            snap = snapshot_of(venues, now)
            p = make_plan(cfg, snap)
            if rule == "naive":
                for order in naive.orders(cfg, snap, base36(i)):
                    book.place(venues[order.venue], t, order.symbol, order.side, order.amount, order.price,
                               False, order.reduce_only, order.client_id)
        book.collect(venues)
        if i in keep:
            kept[i] = (snap, p, decided)
        value = sum((v.equity_usd() for v in vlist), Decimal(0)) if len(vlist) > 1 else vlist[0].equity_usd()
        if off_exchange:
            value += sum((amt * first.usd(a) for a, amt in off_exchange.items()), Decimal(0))
        _record(series, t, p, value, deposited, book, funding_rate)
    return Scenario(rule, series, book.finish(), book.fills, book.spread, kept=kept, kept_inputs=kept_inputs,
                    kept_cycles=kept_cycles, venues=venues)


# --- the whole run ------------------------------------------------------------------------------------


def prepare(cfg: Config, opts: SimOptions) -> tuple[EmulatorSettings, SimPath, dict[str, Decimal], datetime]:
    """The exchange settings, path, starting balances and start time a run uses (replay checks use them too)."""
    return _prepare(cfg, opts)


def simulate(cfg: Config, opts: SimOptions) -> SimResult:
    settings, path, balances, start = _prepare(cfg, opts)
    rules = list(dict.fromkeys([*opts.rules, "unhedged"]))  # effectiveness is measured against unhedged
    scenarios = {r: run_rule(r, cfg, path, settings, balances, start, opts) for r in rules}
    unhedged = scenarios["unhedged"].series
    for s in scenarios.values():
        s.summary = summary(s.rule, s.series, s.orders, s.fills, s.spread_usd, unhedged, path.step_s)
    meta: dict[str, Any] = {
        "path": {"kind": path.kind, "steps": path.steps, "step_s": path.step_s, "seed": opts.path.seed,
                 "vol": opts.path.vol, "drift": opts.path.drift, "start": start.isoformat(),
                 "symbol": cfg.hedge[0].instrument},
        "balances": {k: float(v) for k, v in balances.items()},
    }
    proxy = [e for e in cfg.hedge if e.asset != e.instrument_base]
    if proxy:
        # a proxy hedge cannot remove more variance than the squared correlation of what it hedges with
        every = sampling_interval(unhedged, path.step_s)
        a, b = proxy[0].asset, proxy[0].instrument_base
        xs = diffs(_every(path.close(a), path.step_s, every))
        ys = diffs(_every(path.close(b), path.step_s, every))
        r2 = r_squared(xs, ys)
        meta["path"]["r2"] = round(r2, 6) if r2 is not None else None
        meta["path"]["r2_of"] = f"{a} vs {b}, USD changes every {every:.0f}s"
    cfg_s, naive_s = scenarios.get("config"), scenarios.get("naive")
    if cfg_s is not None and naive_s is not None:
        meta["note"] = (f"naive rule: {naive_s.summary['orders']} orders, cost {naive_s.summary['cost_usd']:.2f} USD; "
                        f"config: {cfg_s.summary['orders']} orders, cost {cfg_s.summary['cost_usd']:.2f} USD "
                        "on the same path")
    ordered = [scenarios[r] for r in RULES if r in scenarios]
    return SimResult(cfg, path, ordered, meta)


def _every(xs: list[float], step_s: float, every_s: float) -> list[float]:
    k = max(1, round(every_s / step_s))
    return xs[::k]


def _toml_value(text: str) -> Any:
    """A sweep value read as the config file would read it (0.02 a number, true a boolean); a bare word stays text."""
    try:
        return tomllib.loads(f"v = {text}", parse_float=Decimal)["v"]
    except tomllib.TOMLDecodeError:
        return text


def sweep_configs(cfg: Config, grid: list[tuple[str, list[str]]]) -> list[tuple[dict[str, str], Config]]:
    """Every combination of `key=v1,v2` settings: hedge keys apply to every [[hedge]], `section.key` elsewhere."""
    combos: list[dict[str, str]] = [{}]
    for key, values in grid:
        combos = [{**c, key: v} for c in combos for v in values]
    out = []
    # python mode keeps Decimal/datetime as the strict validators want them (json mode would turn them to strings)
    base = cfg.model_dump(mode="python", exclude={"base_dir"})
    for combo in combos:
        data: dict[str, Any] = {**base, "hedge": [dict(h) for h in base["hedge"]]}
        for key, text in combo.items():
            value = _toml_value(text)
            if "." in key:
                section, name = key.split(".", 1)
                data[section] = {**data.get(section, {}), name: value}
            else:
                for h in data["hedge"]:
                    h[key] = value
        try:
            out.append((combo, parse_config(data, cfg.base_dir)))
        except Exception as exc:  # ConfigError: name the sweep key
            problems = getattr(exc, "problems", [str(exc)])
            raise SimError(f"--sweep {', '.join(f'{k}={v}' for k, v in combo.items())}: {problems[0]}") from None
    return out


def value_changes(series: Series, step_s: float) -> list[float]:
    """The daily (or per-step, for short paths) changes of the portfolio value net of deposits."""
    return diffs(sampled(series, sampling_interval(series, step_s)))
