"""Exposure + hedge config → target per instrument → at most one limit order per instrument.

Pure: the same config and snapshot always give the same plan, so `hedged plan --snapshot` replays
exactly what the keeper decided. The guard (hedged.guard) then approves, cuts or blocks each intent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from hedged.config import Config, HedgeConfig
from hedged.exposure import (
    ZERO,
    asset_price,
    coin_exposure,
    contract_market,
    counted_venues,
    hedge_held,
    instrument_base,
    instrument_mark,
    price_source,
    ratio_at,
    target_coins,
    to_coins,
    to_contracts,
    venue_state,
)
from hedged.model import (
    BlockedInstrument,
    Code,
    HedgeTarget,
    InstrumentPlan,
    KeeperContext,
    Market,
    OrderIntent,
    Plan,
    Reason,
    Side,
    Snapshot,
    VenueState,
    quick,
)

# built on every cycle: the quick constructors (the same frozen instances, without object.__setattr__ per field)
_HedgeTarget, _InstrumentPlan, _Plan = quick(HedgeTarget), quick(InstrumentPlan), quick(Plan)


def round_to_step(value: Decimal, step: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """`value` to a whole multiple of `step` (half-even: never more than half a step off)."""
    return (value / step).to_integral_value(rounding=rounding) * step


def limit_price(market: Market, state: VenueState, side: Side, offset_ticks: int, mark: Decimal) -> Decimal | None:
    """At the touch (sell at best ask, buy at best bid), moved `offset_ticks` away from the other side.

    A positive offset is more passive, a negative one steps into the spread. The price is rounded to the
    tick grid on the passive side, so rounding never makes a post-only order cross.
    """
    t = state.tickers.get(market.symbol)
    if t is None:
        return None
    offset = market.tick * offset_ticks
    if side == "sell":
        if t.ask is None or t.ask <= 0:
            return None
        price = round_to_step(t.ask + offset, market.tick, ROUND_CEILING)
        if t.bid is not None and price <= t.bid:
            price = round_to_step(t.bid + market.tick, market.tick, ROUND_CEILING)
    else:
        if t.bid is None or t.bid <= 0:
            return None
        price = round_to_step(t.bid - offset, market.tick, ROUND_FLOOR)
        if t.ask is not None and price >= t.ask:
            price = round_to_step(t.ask - market.tick, market.tick, ROUND_FLOOR)
    return price if price > 0 else None


CLIENT_ID_SEPARATOR = "_"  # keeper names are [a-z0-9-]: keeper `main` never takes `main-b`'s orders for its own


def client_prefix(keeper_name: str) -> str:
    """The start of every client order id a keeper sends: `<name>_`."""
    return f"{keeper_name}{CLIENT_ID_SEPARATOR}"


def inflight_orders(state: VenueState, venue: str, symbol: str, prefix: str,
                    context: KeeperContext | None) -> tuple[Decimal, ...]:
    """Our in-flight orders' remaining sizes, signed contracts: those on the book (client id `<name>_…`),
    and those sent but not yet confirmed, which may be on the exchange: counted, so they are never sent twice.
    """
    if not state.open_orders and (context is None or not context.orders):
        return ()
    on_book = {o.client_id: o.signed_remaining for o in state.open_orders
               if o.symbol == symbol and o.client_id.startswith(prefix)}
    pending = {o.client_id: o.signed_remaining for o in (context.on(venue, symbol) if context else ())
               if o.unresolved and o.client_id not in on_book}
    return (*on_book.values(), *pending.values())


def reduces_only(position: Decimal, order: Decimal, inflight: Sequence[Decimal]) -> bool:
    """An order may be reduce-only when it, with our in-flight orders that also shrink the position,
    stays within the position: two reduce-only orders over more than the position would be refused."""
    if position == 0 or (position > 0) == (order > 0):
        return False
    reducing = sum((abs(q) for q in inflight if q != 0 and (q > 0) != (position > 0)), ZERO)
    return abs(order) + reducing <= abs(position)


@dataclass(frozen=True, slots=True)
class _Group:
    """One instrument of the config and what the planner derives from its entries, computed once per config."""

    n: int
    venue: str
    symbol: str
    entries: list[HedgeConfig]
    needed: tuple[str, ...]  # its venue and every venue whose balance its entries count, once each
    band: Decimal  # the widest entry's band fraction
    min_band_usd: Decimal
    ticker_label: str
    position_label: str
    balance_labels: tuple[tuple[str, str], ...]  # (label, venue), in the staleness check's order
    proxies: tuple[HedgeConfig, ...]  # entries priced from their own ticker (the check reads its time)


@dataclass(frozen=True, slots=True)
class _Prepared:
    config: Config
    prefix: str
    groups: tuple[_Group, ...]


# config -> its groups, by identity (a Config is frozen); the config is kept with them, so an id is never
# reused while cached; bounded, for sweeps over many configs
_PREPARED: dict[int, _Prepared] = {}
_PREPARED_MAX = 256


def _prepared(config: Config) -> _Prepared:
    hit = _PREPARED.get(id(config))
    if hit is not None and hit.config is config:
        return hit
    grouped: dict[tuple[str, str], list[HedgeConfig]] = {}
    for entry in config.hedge:
        grouped.setdefault((entry.venue, entry.instrument), []).append(entry)
    groups = []
    for n, ((venue, symbol), entries) in enumerate(grouped.items()):
        needed: list[str] = []
        for e in entries:
            for v in (e.venue, *counted_venues(e)):
                if v not in needed:
                    needed.append(v)
        first = entries[0]
        groups.append(_Group(
            n=n, venue=venue, symbol=symbol, entries=entries, needed=tuple(needed),
            band=max(e.band for e in entries), min_band_usd=max(e.min_band_usd for e in entries),
            ticker_label=f"{first.venue} ticker {first.instrument}",
            position_label=f"{first.venue} position {first.instrument}",
            balance_labels=tuple((f"{v} balance", v) for e in entries for v in counted_venues(e)),
            proxies=tuple(e for e in entries if e.price_symbol and e.asset != instrument_base(e)),
        ))
    if len(_PREPARED) >= _PREPARED_MAX:
        _PREPARED.clear()
    out = _PREPARED[id(config)] = _Prepared(config, client_prefix(config.keeper.name), tuple(groups))
    return out


def _data_times(snapshot: Snapshot, g: _Group) -> tuple[tuple[str, datetime | None], ...]:
    """Every timestamped input this instrument's decision rests on, labelled for the staleness check."""
    out: dict[str, datetime | None] = {}
    state = snapshot.venues[g.venue]
    t = state.tickers.get(g.symbol)
    out[g.ticker_label] = t.timestamp if t is not None else None
    pos = state.positions.get(g.symbol)
    if pos is not None:
        out[g.position_label] = pos.timestamp
    for label, v in g.balance_labels:
        out[label] = snapshot.venues[v].balance_time
    for e in g.proxies:
        source = price_source(e, snapshot)  # the very ticker asset_price used
        if source is not None:
            out[f"{source[0]} ticker {e.price_symbol}"] = source[1].timestamp
    return tuple(out.items())


def plan(config: Config, snapshot: Snapshot, order_tag: str | Callable[[], str] = "0",
         context: KeeperContext | None = None) -> Plan:
    """One decision pass: a HedgeTarget per [[hedge]] entry and an InstrumentPlan per instrument.

    `context` (the keeper's own orders) adds our sent-but-unconfirmed orders to the in-flight size.
    `order_tag` may be a function: it is then called only when an order is planned (at most once).
    """
    prepared = _prepared(config)
    prefix = prepared.prefix
    hedges: list[HedgeTarget] = []
    instruments: list[InstrumentPlan] = []
    unreadable: list[BlockedInstrument] = []
    tag: str | None = order_tag if isinstance(order_tag, str) else None
    for g in prepared.groups:
        n, venue, symbol, entries = g.n, g.venue, g.symbol, g.entries
        down = unavailable_for(entries, snapshot, g.needed) if snapshot.unavailable else ()
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
            hedges.append(_HedgeTarget(e.asset, venue, symbol, exposure, p_asset, ratio, t))

        held = hedge_held(market, state, mark)
        ours = inflight_orders(state, venue, symbol, prefix, context)
        inflight = to_coins(market, sum(ours, ZERO), mark)
        drift = held + inflight - target
        band = max(g.band * abs(target), g.min_band_usd / mark, to_coins(market, market.lot, mark))
        times = _data_times(snapshot, g)

        intent: OrderIntent | None = None
        reasons: list[Reason] = []
        if abs(drift) <= band:
            reasons.append(Reason.lazy(Code.WITHIN_BAND, _within_band, abs(drift), band))
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
                if tag is None:
                    tag = order_tag() if callable(order_tag) else order_tag
                intent = OrderIntent(
                    venue=venue,
                    symbol=symbol,
                    side=side,
                    amount=abs(contracts),
                    price=price,
                    reduce_only=reduce_only,
                    post_only=config.execution.post_only,
                    client_id=f"{prefix}{tag}-{n}",  # `<name>_<tag>-<n>`
                )
                reasons.append(Reason(Code.DRIFT, f"{_fmt(drift)} beyond band {_fmt(band)}"))
        instruments.append(_InstrumentPlan(
            venue=venue, symbol=symbol, market=market, hedge=held, inflight=inflight, target=target,
            drift=drift, mark=mark, band=band, exposure_usd=exposure_usd, intent=intent,
            reasons=tuple(reasons), data_times=times,
        ))
    return _Plan(hedges=tuple(hedges), instruments=tuple(instruments), unreadable=tuple(unreadable))


def unavailable_for(entries: list[HedgeConfig], snapshot: Snapshot,
                    needed: Sequence[str] | None = None) -> tuple[Reason, ...]:
    """One `venue_unavailable` reason per venue an instrument depends on (its own, and every venue whose
    balance its entries count) that could not be read this cycle. `needed`: those venues, already listed."""
    if needed is None:
        listed: list[str] = []
        for e in entries:
            for v in (e.venue, *counted_venues(e)):
                if v not in listed:
                    listed.append(v)
        needed = listed
    return tuple(Reason(Code.VENUE_UNAVAILABLE, f"venue {v} could not be read: {snapshot.unavailable[v]}")
                 for v in needed if v in snapshot.unavailable)


_EIGHT = Decimal("1e-8")
_BIG = Decimal("1e12")


def _within_band(drift: Decimal, band: Decimal) -> str:
    return f"|drift| {_fmt(drift)} <= band {_fmt(band)}"


def _fmt(d: Decimal) -> str:
    """Short human form for reasons: 8 significant digits, no exponent."""
    q = d.quantize(_EIGHT) if -_BIG < d < _BIG else d
    return format(q.normalize(), "f")
