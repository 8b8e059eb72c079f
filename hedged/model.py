"""Frozen value types shared by the pure core: what the exchange told us, and what we decided.

Quantities and prices are `Decimal`. ccxt's floats are converted once, in `hedged.snapshot`.
Position sizes are signed here (short is negative), unlike ccxt's `contracts` + `side`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal, TypeVar, cast

from hedged.order_state import LIVE, UNRESOLVED, OrderStatus

T = TypeVar("T")
Side = Literal["buy", "sell"]
MarketKind = Literal["spot", "linear", "inverse"]


class TradingState(StrEnum):
    RUNNING = "RUNNING"
    REDUCING = "REDUCING"  # only orders that shrink |hedge|
    PAUSED = "PAUSED"  # no new orders; orders already on the book are left alone
    HALTED = "HALTED"  # cancels only


@dataclass(frozen=True, slots=True)
class Market:
    symbol: str
    base: str
    quote: str
    settle: str | None
    kind: MarketKind
    contract_size: Decimal  # base units per contract (linear), USD per contract (inverse), 1 for spot
    tick: Decimal  # price step
    lot: Decimal  # amount step, in contracts
    min_amount: Decimal  # in contracts
    funding_interval_hours: Decimal | None = None  # hours between funding settlements, when the venue says

    @property
    def is_contract(self) -> bool:
        return self.kind != "spot"


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    mark: Decimal | None
    index: Decimal | None
    timestamp: datetime | None
    funding_rate: Decimal | None = None  # per funding interval, applied at next_funding_time
    next_funding_rate: Decimal | None = None  # the one after, where the venue predicts it
    next_funding_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    contracts: Decimal  # signed: short < 0
    entry_price: Decimal | None
    mark_price: Decimal | None
    unrealized_pnl: Decimal  # in the settle currency
    liquidation_price: Decimal | None
    timestamp: datetime | None


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    client_id: str
    symbol: str
    side: Side
    amount: Decimal  # contracts
    filled: Decimal
    price: Decimal | None
    status: str
    reduce_only: bool
    timestamp: datetime | None

    @property
    def remaining(self) -> Decimal:
        return max(self.amount - self.filled, Decimal(0))

    @property
    def signed_remaining(self) -> Decimal:
        return self.remaining if self.side == "buy" else -self.remaining


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """One order as the exchange reports it (create's follow-up fetch, lookup by client id, open orders),
    converted once at the venue boundary (`hedged.snapshot.venue_order`)."""

    id: str
    client_id: str
    symbol: str
    side: Side
    amount: Decimal  # contracts
    filled: Decimal
    price: Decimal | None
    average: Decimal | None
    status: OrderStatus  # ccxt's word mapped once (hedged/order_state.py)
    reduce_only: bool
    post_only: bool
    fee: Decimal | None = None
    fee_currency: str | None = None
    reason: str | None = None  # why the exchange cancelled or rejected it, when it says


@dataclass(frozen=True, slots=True)
class VenueTrade:
    """One fill of ours as the exchange reports it (`fetch_my_trades`)."""

    id: str
    order_id: str
    client_id: str  # "" when the exchange does not say
    symbol: str | None
    side: str | None
    amount: Decimal
    price: Decimal
    fee: Decimal | None
    fee_currency: str | None
    time: datetime | None


@dataclass(frozen=True, slots=True)
class VenueState:
    """One trading account at one moment: exactly what ccxt's fetch_* calls returned."""

    markets: Mapping[str, Market]
    tickers: Mapping[str, Ticker]
    balances: Mapping[str, Decimal]  # coin -> total (wallet balance, excluding unrealised PnL)
    balance_time: datetime | None
    positions: Mapping[str, Position]  # by symbol, one-way mode
    open_orders: tuple[Order, ...] = ()


@dataclass(frozen=True, slots=True)
class Snapshot:
    time: datetime
    venues: Mapping[str, VenueState]
    # Venues whose reads failed this cycle, with why (one human line): the planner blocks exactly the
    # instruments that depend on them and plans the rest.
    unavailable: Mapping[str, str] = field(default_factory=dict)


# --- decisions ------------------------------------------------------------------------------------


class Code(StrEnum):
    """Every reason code the core gives (planner, guard, hold-back) and every alert code of the monitors.

    Stable strings (tests, alerts and dashboards key on them); each is documented once in docs/snapshot.md.
    A StrEnum, so a code still compares equal to its text.
    """

    # planner
    DRIFT = "drift"
    WITHIN_BAND = "within_band"
    BELOW_MIN_SIZE = "below_min_size"
    NO_QUOTE = "no_quote"
    VENUE_UNAVAILABLE = "venue_unavailable"
    # guard: denials
    HALTED = "halted"
    PAUSED = "paused"
    REDUCING = "reducing"
    STALE_DATA = "stale_data"
    PRICE_JUMP = "price_jump"
    PRICE_DEVIATION = "price_deviation"
    WRONG_SIDE = "wrong_side"
    ORDER_RATE = "order_rate"
    # guard: cuts
    POSITION_CAP = "position_cap"
    MAX_ORDER_USD = "max_order_usd"
    TURNOVER = "turnover"
    CUT_BELOW_MIN = "cut_below_min"
    # hold-back (after the guard, on what the keeper knows of our own orders)
    ORDER_CHANGED = "order_changed"
    UNRESOLVED_ORDER = "unresolved_order"
    ESCALATE = "escalate"
    ACCOUNT_SETTINGS = "account_settings"
    REPRICE = "reprice"
    OVERSHOOT = "overshoot"
    # monitors (alert codes; `drift` and `stale_data` above serve there too)
    FUNDING = "funding"
    BASIS = "basis"
    LIQUIDATION = "liquidation"
    LEVERAGE = "leverage"
    EXCHANGE_ERROR = "exchange_error"
    STATE = "state"
    FILL = "fill"
    START = "start"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class Reason:
    """A named reason: `code` is stable (for tests, alerts, dashboards); `detail` is for humans."""

    code: Code
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code

    @classmethod
    def lazy(cls, code: Code, render: Callable[..., str], *args: object) -> Reason:
        """A reason whose detail is `render(*args)`, worked out when first read (the very same text, wherever it
        is read: str, repr, ==, hash, JSON): a quiet cycle's `within_band` detail is mostly never read."""
        return cls(code, deferred(render, *args))


class _Deferred:
    """A frozen field's value not worked out yet: `render(*args)`, on first read (see `_deferred_field`)."""

    __slots__ = ("args", "render")

    def __init__(self, render: Callable[..., object], args: tuple[object, ...]) -> None:
        self.render = render
        self.args = args


def deferred(render: Callable[..., T], *args: object) -> T:
    """A value for a deferred field (Reason.detail): `render(*args)` when first
    read, then kept. Only for pure renders of frozen inputs, so the value is the same whenever it is read."""
    return cast(T, _Deferred(render, args))


def _deferred_field(cls: type, name: str) -> None:
    """Read the slot `name` through a property that renders a `deferred(...)` value once, on first read; the
    dataclass's own __init__, __eq__, __hash__, __repr__ and pickling all go through it, and assignment
    stays refused (the frozen class's __setattr__; only object.__setattr__, as __init__ uses, reaches it)."""
    slot = cls.__dict__[name]

    def get(self: object) -> object:
        v = slot.__get__(self, cls)
        if type(v) is _Deferred:
            v = v.render(*v.args)
            slot.__set__(self, v)
        return v

    def put(self: object, value: object) -> None:
        slot.__set__(self, value)

    setattr(cls, name, property(get, put))


_deferred_field(Reason, "detail")


@dataclass(frozen=True, slots=True)
class OrderIntent:
    venue: str
    symbol: str
    side: Side
    amount: Decimal  # contracts, > 0
    price: Decimal
    reduce_only: bool
    post_only: bool
    client_id: str

    @property
    def signed_amount(self) -> Decimal:
        return self.amount if self.side == "buy" else -self.amount


@dataclass(frozen=True, slots=True)
class HedgeTarget:
    """One [[hedge]] entry evaluated: the coins held and the hedge it asks for, in instrument base coin."""

    asset: str
    venue: str
    instrument: str
    exposure: Decimal  # coins of `asset` held (E)
    price: Decimal  # USD price of `asset` (P_A)
    ratio: Decimal  # ratio(t)
    target: Decimal  # T_A, in instrument base coin, short negative


@dataclass(frozen=True, slots=True)
class InstrumentPlan:
    """The state of one hedge instrument and what the planner wants done there, before the guard."""

    venue: str
    symbol: str
    market: Market
    hedge: Decimal  # H, base coin, signed
    inflight: Decimal  # our open orders' remaining size, base coin, signed
    target: Decimal  # T, base coin
    drift: Decimal  # D = H + inflight - T
    mark: Decimal
    band: Decimal  # base coin
    exposure_usd: Decimal  # USD value of what the entries on this instrument hedge (for the ratio cap)
    intent: OrderIntent | None
    reasons: tuple[Reason, ...] = ()
    data_times: tuple[tuple[str, datetime | None], ...] = ()  # every timestamped input, labelled


@dataclass(frozen=True, slots=True)
class BlockedInstrument:
    """An instrument whose own venue could not be read: nothing is known about it, nothing is sent."""

    venue: str
    symbol: str
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    hedges: tuple[HedgeTarget, ...]
    instruments: tuple[InstrumentPlan, ...]
    unreadable: tuple[BlockedInstrument, ...] = ()


@dataclass(frozen=True, slots=True)
class RecentOrder:
    """An order we sent earlier, for the rate and turnover caps."""

    time: datetime
    notional_usd: Decimal


@dataclass(frozen=True, slots=True)
class Decision:
    """The guard's verdict on one instrument: trade (maybe cut), hold, or blocked, with named reasons."""

    plan: InstrumentPlan
    action: Literal["trade", "hold", "blocked"]
    order: OrderIntent | None
    reasons: tuple[Reason, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class OurOrder:
    """An unsettled order of ours as the audit store knows it after following (for the hold-back rules)."""

    venue: str
    symbol: str
    client_id: str
    status: OrderStatus
    side: Side
    amount: Decimal  # contracts
    filled: Decimal
    created_at: datetime
    price: Decimal | None = None  # its limit price

    @property
    def signed_remaining(self) -> Decimal:
        left = max(self.amount - self.filled, Decimal(0))
        return left if self.side == "buy" else -left

    @property
    def unresolved(self) -> bool:
        """Sent (or about to be) but not confirmed: it may be on the exchange; never send it again."""
        return self.status in UNRESOLVED

    @property
    def live(self) -> bool:
        return self.status in LIVE


@dataclass(frozen=True, slots=True)
class KeeperContext:
    """What the keeper knows beyond the exchange's snapshot, which the hold-back rules decide on.

    Recorded with every non-quiet cycle (docs/snapshot.md, "keeper"), so `hedged plan --snapshot` replays
    the keeper's decision exactly.
    """

    orders: tuple[OurOrder, ...] = ()  # our unsettled orders after following
    touched: frozenset[tuple[str, str]] = frozenset()  # (venue, symbol) where fills or cancels landed this cycle
    reprices: Mapping[tuple[str, str], int] = field(default_factory=dict)  # timeout re-posts this episode
    # (venue, symbol) whose leverage / margin mode the exchange refused at start (hedged.leverage): why
    refused: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def on(self, venue: str, symbol: str) -> tuple[OurOrder, ...]:
        return tuple(o for o in self.orders if o.venue == venue and o.symbol == symbol)


@dataclass(frozen=True, slots=True)
class Cancel:
    """A resting order of ours the core wants off the book, and why."""

    venue: str
    symbol: str
    client_id: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class GuardResult:
    decisions: tuple[Decision, ...]
    cancels: tuple[Cancel, ...] = ()  # resting orders to take off the book (reprice), from `hold_back`

    @property
    def orders(self) -> tuple[OrderIntent, ...]:
        return tuple(d.order for d in self.decisions if d.order is not None)


def quick(cls: type[T]) -> type[T]:
    """A constructor for the frozen slots dataclass `cls`, several times quicker than its own __init__ (which
    sets every field through object.__setattr__, the slow path frozen classes need), for the values a cycle
    builds by the dozen. Same signature and defaults; what it returns is a `cls` instance like any other
    (type, ==, hash, repr, pickling, immutability): a mutable twin with the very same slots is filled by plain
    stores and its __post_init__ turns it into a `cls` (same layout, so CPython allows the class switch)."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    assert getattr(cls, "__slots__", None) == tuple(names), f"{cls.__name__}: quick() needs slots=True"
    specs: list[tuple[str, object, object]] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.default is not dataclasses.MISSING:
            specs.append((f.name, f.type, field(default=f.default)))
        elif f.default_factory is not dataclasses.MISSING:
            specs.append((f.name, f.type, field(default_factory=f.default_factory)))
        else:
            specs.append((f.name, f.type, field()))

    def become(self: object) -> None:
        self.__class__ = cls

    twin = dataclasses.make_dataclass(f"_Quick{cls.__name__}", specs, slots=True, eq=False, repr=False,
                                      namespace={"__post_init__": become})
    return cast(type[T], twin)
