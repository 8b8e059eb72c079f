"""The math (docs/architecture.md, "The math"): coin exposure, hedge size, target. Pure functions; no I/O, no clock.

Why collateral and inverse uPnL count: on a coin-margined account the coins posted as margin, and the
coin-denominated PnL of the short, are coins the holder owns. Leaving them out under-hedges, and makes the
keeper see drift on every price move (and churn fees) where there is none.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from hedged.config import HedgeConfig
from hedged.model import Market, Snapshot, Ticker, VenueState

ZERO = Decimal(0)

# What the math derives from a [[hedge]] entry, computed once per entry object, not on every cycle (the config
# is frozen; HedgeConfig.instrument_base is a regex match, counted_venues a list walk). Keyed by identity; the
# entry is kept with its value so an id is never reused while cached; bounded, for long sweeps.
_DERIVED: dict[int, tuple[HedgeConfig, str, tuple[str, ...]]] = {}
_DERIVED_MAX = 4096


def _derived(entry: HedgeConfig) -> tuple[HedgeConfig, str, tuple[str, ...]]:
    hit = _DERIVED.get(id(entry))
    if hit is None or hit[0] is not entry:
        if len(_DERIVED) >= _DERIVED_MAX:
            _DERIVED.clear()
        hit = _DERIVED[id(entry)] = (entry, entry.instrument_base, entry.counted_venues)
    return hit


def instrument_base(entry: HedgeConfig) -> str:
    """`entry.instrument_base`, computed once per entry."""
    return _derived(entry)[1]


def counted_venues(entry: HedgeConfig) -> tuple[str, ...]:
    """`entry.counted_venues`, computed once per entry."""
    return _derived(entry)[2]


class PlanInputError(ValueError):
    """The snapshot lacks something the config needs (a venue, market or price); one line, names it."""


def venue_state(snapshot: Snapshot, venue: str) -> VenueState:
    try:
        return snapshot.venues[venue]
    except KeyError:
        raise PlanInputError(f"venues.{venue}: venue is configured but missing from the snapshot") from None


def contract_market(state: VenueState, venue: str, symbol: str) -> Market:
    market = state.markets.get(symbol)
    if market is None:
        raise PlanInputError(f"venues.{venue}.markets: unknown instrument {symbol!r}")
    if not market.is_contract:
        raise PlanInputError(f"venues.{venue}.markets[{symbol!r}]: expected a linear or inverse perpetual, got spot")
    return market


def ticker_price(t: Ticker) -> Decimal | None:
    """A ticker's best single price: mark, else last, else the mid."""
    if t.mark is not None and t.mark > 0:
        return t.mark
    if t.last is not None and t.last > 0:
        return t.last
    if t.bid is not None and t.ask is not None and t.bid > 0 and t.ask > 0:
        return (t.bid + t.ask) / 2
    return None


def instrument_mark(state: VenueState, venue: str, symbol: str) -> Decimal:
    """`mark` = position markPrice, else ticker markPrice, else ticker last (docs/architecture.md, "The math")."""
    pos = state.positions.get(symbol)
    if pos is not None and pos.mark_price is not None and pos.mark_price > 0:
        return pos.mark_price
    t = state.tickers.get(symbol)
    price = ticker_price(t) if t is not None else None
    if price is None:
        raise PlanInputError(f"venues.{venue}.tickers[{symbol!r}]: no mark or last price for the instrument")
    return price


def to_coins(market: Market, contracts: Decimal, mark: Decimal) -> Decimal:
    """Contracts → base coins. Linear: c × size. Inverse: c × size(USD) / mark."""
    if market.kind == "inverse":
        return contracts * market.contract_size / mark
    return contracts * market.contract_size


def notional_usd(market: Market, contracts: Decimal, mark: Decimal) -> Decimal:
    """Contracts → USD notional. Inverse: c × size (exact: inverse contracts are USD). Linear: c × size × mark."""
    if market.kind == "inverse":
        return contracts * market.contract_size
    return contracts * market.contract_size * mark


def to_contracts(market: Market, coins: Decimal, mark: Decimal) -> Decimal:
    """Base coins → contracts (unrounded); the inverse of `to_coins`."""
    if market.kind == "inverse":
        return coins * mark / market.contract_size
    return coins / market.contract_size


def inverse_upnl(state: VenueState, coin: str) -> Decimal:
    """Σ unrealised PnL of positions settled in `coin` on inverse contracts (it is paid in that coin)."""
    total = ZERO
    if not state.positions:
        return total
    for symbol, pos in state.positions.items():
        m = state.markets.get(symbol)
        if m is not None and m.kind == "inverse" and m.settle == coin:
            total += pos.unrealized_pnl
    return total


def coin_exposure(entry: HedgeConfig, snapshot: Snapshot) -> Decimal:
    """E: coins of `entry.asset` the holder is long, over the counted venues, plus off-exchange coins."""
    total = entry.off_exchange
    for venue in counted_venues(entry):
        state = venue_state(snapshot, venue)
        total += state.balances.get(entry.asset, ZERO) + inverse_upnl(state, entry.asset)
    return total


def hedge_held(market: Market, state: VenueState, mark: Decimal) -> Decimal:
    """H: the signed position on the instrument, in base coin (short negative)."""
    pos = state.positions.get(market.symbol)
    return to_coins(market, pos.contracts, mark) if pos is not None else ZERO


def price_source(entry: HedgeConfig, snapshot: Snapshot) -> tuple[str, Ticker] | None:
    """Where P_A comes from: the entry's venue first, then the others, the first ticker with a price.

    One function for the price and for the staleness check, so the age checked is the price's own.
    """
    for v in [entry.venue, *(v for v in snapshot.venues if v != entry.venue)]:
        state = snapshot.venues.get(v)
        t = state.tickers.get(entry.price_symbol) if state is not None else None
        if t is not None and ticker_price(t) is not None:
            return v, t
    return None


def asset_price(entry: HedgeConfig, snapshot: Snapshot, instrument_price: Decimal) -> Decimal:
    """P_A: the asset's USD price; the instrument's own when it hedges its own coin."""
    if entry.asset == instrument_base(entry):
        return instrument_price
    source = price_source(entry, snapshot)
    price = ticker_price(source[1]) if source is not None else None
    if price is None:
        raise PlanInputError(
            f"tickers[{entry.price_symbol!r}]: no price for {entry.asset} in any venue of the snapshot")
    return price


def basis_bps(snapshot: Snapshot, venue: str, market: Market, mark: Decimal) -> Decimal | None:
    """The instrument's basis: (mark − reference) / reference in bps; reference = index, else a spot ticker.

    The one definition, for the cycle row and the basis monitor.
    """
    state = snapshot.venues.get(venue)
    t = state.tickers.get(market.symbol) if state is not None else None
    reference = t.index if t is not None and t.index is not None and t.index > 0 else None
    if reference is None:
        reference = spot_reference(snapshot, venue, market.base, market.quote)
    return (mark - reference) / reference * 10000 if reference is not None else None


def spot_reference(snapshot: Snapshot, venue: str, base: str, quote: str) -> Decimal | None:
    """A spot price of `base` (in quote, else a stable coin), this venue first."""
    symbols = list(dict.fromkeys((f"{base}/{quote}", f"{base}/USDT", f"{base}/USDC", f"{base}/USD")))
    for name in (venue, *(v for v in snapshot.venues if v != venue)):
        state = snapshot.venues.get(name)
        if state is None:
            continue
        for s in symbols:
            t = state.tickers.get(s)
            price = ticker_price(t) if t is not None else None
            if price is not None:
                return price
    return None


def ratio_at(entry: HedgeConfig, now: datetime) -> Decimal:
    """ratio(t): the configured ratio until `until`, then 0, so the hedge unwinds by itself."""
    if entry.until is not None and now >= entry.until:
        return ZERO
    return entry.ratio


def target_coins(entry: HedgeConfig, exposure: Decimal, price_asset: Decimal, price_instrument: Decimal,
                 ratio: Decimal) -> Decimal:
    """T_A = −ratio × beta × E × P_A / P_I, in instrument base coin."""
    if entry.asset == instrument_base(entry):
        return -ratio * entry.beta * exposure
    return -ratio * entry.beta * exposure * price_asset / price_instrument
