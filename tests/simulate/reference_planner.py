"""The planner and the guard's entry as they were before the speed work (hedged/planner.py and guard.guard at
the start of issue 13's part 5), kept verbatim as a test oracle: the fast ones must give the very same result.

It recomputes everything per call (groups, instrument_base, counted_venues, labels, the client-id tag).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from hedged.config import Config, HedgeConfig, LimitsConfig
from hedged.exposure import (
    ZERO,
    contract_market,
    hedge_held,
    instrument_mark,
    notional_usd,
    price_source,
    ratio_at,
    to_coins,
    to_contracts,
    venue_state,
)
from hedged.guard import HOLD_CODES, _blocked, _cut, _denial
from hedged.model import (
    BlockedInstrument,
    Code,
    Decision,
    GuardResult,
    HedgeTarget,
    InstrumentPlan,
    KeeperContext,
    OrderIntent,
    Plan,
    Reason,
    RecentOrder,
    Side,
    Snapshot,
    TradingState,
    VenueState,
)
from hedged.planner import client_prefix, limit_price, reduces_only, round_to_step


def coin_exposure(entry: HedgeConfig, snapshot: Snapshot) -> Decimal:
    total = entry.off_exchange
    for venue in entry.counted_venues:
        state = venue_state(snapshot, venue)
        upnl = ZERO
        for symbol, pos in state.positions.items():
            m = state.markets.get(symbol)
            if m is not None and m.kind == "inverse" and m.settle == entry.asset:
                upnl += pos.unrealized_pnl
        total += state.balances.get(entry.asset, ZERO) + upnl
    return total


def asset_price(entry: HedgeConfig, snapshot: Snapshot, instrument_price: Decimal) -> Decimal:
    from hedged.exposure import PlanInputError, ticker_price

    if entry.asset == entry.instrument_base:
        return instrument_price
    source = price_source(entry, snapshot)
    price = ticker_price(source[1]) if source is not None else None
    if price is None:
        raise PlanInputError(
            f"tickers[{entry.price_symbol!r}]: no price for {entry.asset} in any venue of the snapshot")
    return price


def target_coins(entry: HedgeConfig, exposure: Decimal, price_asset: Decimal, price_instrument: Decimal,
                 ratio: Decimal) -> Decimal:
    if entry.asset == entry.instrument_base:
        return -ratio * entry.beta * exposure
    return -ratio * entry.beta * exposure * price_asset / price_instrument


def inflight_orders(state: VenueState, venue: str, symbol: str, prefix: str,
                    context: KeeperContext | None) -> tuple[Decimal, ...]:
    """Our in-flight orders' remaining sizes, signed contracts: those on the book (client id `<name>_…`),
    and those sent but not yet confirmed, which may be on the exchange: counted, so they are never sent twice.
    """
    on_book = {o.client_id: o.signed_remaining for o in state.open_orders
               if o.symbol == symbol and o.client_id.startswith(prefix)}
    pending = {o.client_id: o.signed_remaining for o in (context.on(venue, symbol) if context else ())
               if o.unresolved and o.client_id not in on_book}
    return (*on_book.values(), *pending.values())


def _data_times(config: Config, snapshot: Snapshot, entries: Sequence[HedgeConfig]) -> tuple[
        tuple[str, datetime | None], ...]:
    """Every timestamped input this instrument's decision rests on, labelled for the staleness check."""
    first = entries[0]
    out: dict[str, datetime | None] = {}
    state = snapshot.venues[first.venue]
    t = state.tickers.get(first.instrument)
    out[f"{first.venue} ticker {first.instrument}"] = t.timestamp if t is not None else None
    pos = state.positions.get(first.instrument)
    if pos is not None:
        out[f"{first.venue} position {first.instrument}"] = pos.timestamp
    for e in entries:
        for v in e.counted_venues:
            out[f"{v} balance"] = snapshot.venues[v].balance_time
        if e.price_symbol and e.asset != e.instrument_base:
            source = price_source(e, snapshot)  # the very ticker asset_price used
            if source is not None:
                out[f"{source[0]} ticker {e.price_symbol}"] = source[1].timestamp
    return tuple(out.items())


def plan(config: Config, snapshot: Snapshot, order_tag: str = "0", context: KeeperContext | None = None) -> Plan:
    """One decision pass: a HedgeTarget per [[hedge]] entry and an InstrumentPlan per instrument.

    `context` (the keeper's own orders) adds our sent-but-unconfirmed orders to the in-flight size.
    """
    groups: dict[tuple[str, str], list[HedgeConfig]] = {}
    for entry in config.hedge:
        groups.setdefault((entry.venue, entry.instrument), []).append(entry)

    prefix = client_prefix(config.keeper.name)
    hedges: list[HedgeTarget] = []
    instruments: list[InstrumentPlan] = []
    unreadable: list[BlockedInstrument] = []
    for n, ((venue, symbol), entries) in enumerate(groups.items()):
        down = unavailable_for(entries, snapshot)
        if venue in snapshot.unavailable:
            unreadable.append(BlockedInstrument(venue, symbol, down))
            continue
        state = venue_state(snapshot, venue)
        market = contract_market(state, venue, symbol)
        mark = instrument_mark(state, venue, symbol)
        if down:  # the exposure is unknown: keep the hedge as it is, neither add nor unwind
            held = hedge_held(market, state, mark)
            inflight = to_coins(market, sum(inflight_orders(state, venue, symbol, prefix, context), ZERO), mark)
            instruments.append(InstrumentPlan(
                venue=venue, symbol=symbol, market=market, hedge=held, inflight=inflight, target=held + inflight,
                drift=ZERO, mark=mark, band=to_coins(market, market.lot, mark), exposure_usd=ZERO, intent=None,
                reasons=down, data_times=(),
            ))
            continue

        target = ZERO
        exposure_usd = ZERO
        for e in entries:
            exposure = coin_exposure(e, snapshot)
            p_asset = asset_price(e, snapshot, mark)
            ratio = ratio_at(e, snapshot.time)
            t = target_coins(e, exposure, p_asset, mark, ratio)
            target += t
            exposure_usd += e.beta * exposure * p_asset
            hedges.append(HedgeTarget(e.asset, venue, symbol, exposure, p_asset, ratio, t))

        held = hedge_held(market, state, mark)
        ours = inflight_orders(state, venue, symbol, prefix, context)
        inflight = to_coins(market, sum(ours, ZERO), mark)
        drift = held + inflight - target
        band = max(
            max(e.band for e in entries) * abs(target),
            max(e.min_band_usd for e in entries) / mark,
            to_coins(market, market.lot, mark),
        )
        times = _data_times(config, snapshot, entries)

        intent: OrderIntent | None = None
        reasons: list[Reason] = []
        if abs(drift) <= band:
            reasons.append(Reason(Code.WITHIN_BAND, f"|drift| {_fmt(abs(drift))} <= band {_fmt(band)}"))
        else:
            contracts = round_to_step(to_contracts(market, -drift, mark), market.lot)
            side: Side = "buy" if contracts > 0 else "sell"
            price = limit_price(market, state, side, config.execution.offset_ticks, mark)
            if abs(contracts) < market.min_amount or contracts == 0:
                reasons.append(Reason(
                    Code.BELOW_MIN_SIZE, f"{_fmt(abs(contracts))} contracts < minimum {_fmt(market.min_amount)}"))
            elif price is None:
                reasons.append(Reason(Code.NO_QUOTE, f"no {'ask' if side == 'sell' else 'bid'} for {symbol}"))
            else:
                pos = state.positions.get(symbol)
                pos_contracts = pos.contracts if pos is not None else ZERO
                reduce_only = reduces_only(pos_contracts, contracts, ours)
                intent = OrderIntent(
                    venue=venue,
                    symbol=symbol,
                    side=side,
                    amount=abs(contracts),
                    price=price,
                    reduce_only=reduce_only,
                    post_only=config.execution.post_only,
                    client_id=f"{prefix}{order_tag}-{n}",  # `<name>_<tag>-<n>`
                )
                reasons.append(Reason(Code.DRIFT, f"{_fmt(drift)} beyond band {_fmt(band)}"))
        instruments.append(InstrumentPlan(
            venue=venue, symbol=symbol, market=market, hedge=held, inflight=inflight, target=target,
            drift=drift, mark=mark, band=band, exposure_usd=exposure_usd, intent=intent,
            reasons=tuple(reasons), data_times=times,
        ))
    return Plan(hedges=tuple(hedges), instruments=tuple(instruments), unreadable=tuple(unreadable))


def unavailable_for(entries: list[HedgeConfig], snapshot: Snapshot) -> tuple[Reason, ...]:
    """One `venue_unavailable` reason per venue an instrument depends on (its own, and every venue whose
    balance its entries count) that could not be read this cycle."""
    needed: list[str] = []
    for e in entries:
        for v in (e.venue, *e.counted_venues):
            if v not in needed:
                needed.append(v)
    return tuple(Reason(Code.VENUE_UNAVAILABLE, f"venue {v} could not be read: {snapshot.unavailable[v]}")
                 for v in needed if v in snapshot.unavailable)


def _fmt(d: Decimal) -> str:
    """Short human form for reasons: 8 significant digits, no exponent."""
    q = d.quantize(Decimal("1e-8")) if abs(d) < Decimal("1e12") else d
    return format(q.normalize(), "f")


def guard(
    plan: Plan,
    *,
    now: datetime,
    limits: LimitsConfig,
    state: TradingState,
    recent: Sequence[RecentOrder] = (),
    previous_marks: Mapping[tuple[str, str], Decimal] | None = None,
) -> GuardResult:
    """Approve, cut or block each instrument's intent; see the module docstring."""
    hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
    orders_last_hour = sum(1 for r in recent if r.time > hour_ago)
    turnover_today = sum((r.notional_usd for r in recent if r.time > day_ago), ZERO)
    decisions: list[Decision] = []
    for p in plan.instruments:
        intent = p.intent
        if intent is None:
            hold = all(r.code in HOLD_CODES for r in p.reasons)
            decisions.append(Decision(plan=p, action="hold" if hold else "blocked", order=None, reasons=p.reasons))
            continue
        denial = _denial(p, intent, now=now, limits=limits, state=state, previous_marks=previous_marks or {},
                         orders_last_hour=orders_last_hour)
        if denial is not None:
            decisions.append(_blocked(p, denial))
            continue
        amount, cuts = _cut(p, intent, limits, turnover_today)
        if amount < p.market.min_amount or amount <= 0:
            decisions.append(_blocked(p, *cuts, Reason(
                Code.CUT_BELOW_MIN, f"after limits {amount} contracts < minimum {p.market.min_amount}")))
            continue
        order = intent if amount == intent.amount else replace(intent, amount=amount)
        orders_last_hour += 1
        turnover_today += notional_usd(p.market, amount, p.mark)
        decisions.append(Decision(plan=p, action="trade", order=order, reasons=(*p.reasons, *cuts)))
    return GuardResult(decisions=tuple(decisions))
