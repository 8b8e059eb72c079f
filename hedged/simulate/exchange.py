"""The exchange model of `hedged simulate`: the local exchange's own engine, driven without HTTP.

All accounting — inverse/linear PnL, harmonic-mean entries, fees, funding, the synthetic book and post-only
fills — is `hedged.sim.engine.Engine`'s (one accounting: docs/architecture.md). This module only moves its manual
clock, feeds it the path's prices, places and cancels orders through its Python API, and shows its state to
the core as the same `Snapshot` the keeper builds from ccxt (what `hedged.sim`'s Bybit front would answer,
parsed as `hedged.snapshot` parses it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hedged.model import Market, Order, Position, Snapshot, Ticker, VenueState, quick
from hedged.replay import CycleInputs, dump_inputs
from hedged.sim.clock import Clock
from hedged.sim.engine import Engine
from hedged.sim.instruments import Category, Instrument
from hedged.sim.orders import Execution
from hedged.sim.orders import Order as SimOrder
from hedged.sim.settings import EmulatorSettings

API_KEY = "sim"
STABLE = frozenset({"USD", "USDT", "USDC"})
ZERO = Decimal(0)
# the values a snapshot is made of, built by the thousand: the quick constructors (same instances)
_Ticker, _Position, _VenueState, _Snapshot = quick(Ticker), quick(Position), quick(VenueState), quick(Snapshot)


def dec(x: float) -> Decimal:
    """A path float as the Decimal of its shortest text (what a CSV or a ccxt float would give)."""
    return Decimal(repr(x))


def market_of(inst: Instrument) -> Market:
    """The ccxt market the Bybit front describes, as `hedged.snapshot.parse_market` reads it.

    ccxt takes an inverse contract's size (and minimum) from the front's minOrderQty, which reports the size.
    """
    kind = "spot" if inst.category is Category.SPOT else inst.category.value
    return Market(
        symbol=inst.symbol, base=inst.base, quote=inst.quote, settle=inst.settle, kind=kind,  # type: ignore[arg-type]
        contract_size=inst.contract_size if inst.inverse else Decimal(1), tick=inst.tick, lot=inst.qty_step,
        min_amount=inst.contract_size if inst.inverse else inst.min_qty,
        funding_interval_hours=Decimal(inst.funding_interval_s // 60) / 60 if inst.is_contract else None,
    )


@dataclass
class SimVenue:
    """One venue of the config: an engine with a single account, on a manual clock shared by the run."""

    name: str
    engine: Engine
    symbols: tuple[str, ...]  # instruments and price symbols the config reads here
    prefix: str  # our client-id prefix: open orders with it are ours
    markets: dict[str, Market] = field(default_factory=dict)
    # When a list: every price move, clock step, order and cancel, so a test can replay the very same run on
    # the local exchange over HTTP (ccxt) and compare the accounts.
    journal: list[tuple[Any, ...]] | None = None
    _funding_times: dict[int, datetime] = field(default_factory=dict)  # next funding ms -> its datetime
    # position id -> (it, size, entry, price, the engine's uPnL at them): the snapshot and the valuation of a
    # step read the same uPnL, worked out once (two 28-digit divisions for an inverse position)
    _upnl: dict[int, tuple[Any, Decimal, Decimal, Decimal, Decimal]] = field(default_factory=dict)

    @classmethod
    def create(cls, name: str, settings: EmulatorSettings, start_ms: int, step_ms: int, symbols: tuple[str, ...],
               prefix: str, balances: dict[str, Decimal]) -> SimVenue:
        engine = Engine(settings, Clock(manual=True, start_ms=start_ms))
        engine.tick_ms = max(step_ms, 1)  # one tick per step: the path moves prices, not the engine
        engine.accounts.clear()
        engine.add_account(API_KEY, "-", dict(balances))
        return cls(name, engine, symbols, prefix, {s: market_of(engine.instrument(s)) for s in symbols})

    @property
    def account(self) -> Any:
        return self.engine.accounts[API_KEY]

    # --- time and prices ----------------------------------------------------------------------------
    def move(self, asset: str, price: Decimal) -> None:
        """Set a coin's index (resting orders the new book trades through fill, as makers)."""
        if asset in self.engine.index:
            self.engine.set_price(price, asset=asset)
            if self.journal is not None:
                self.journal.append(("move", asset, price))

    def advance(self, seconds: int) -> None:
        """Move the clock; the engine runs taker flow and settles any funding now due."""
        self.engine.clock.step(seconds)
        self.engine.advance()
        if self.journal is not None:
            self.journal.append(("advance", seconds))

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.engine.now_ms() / 1000, tz=UTC)

    def _upnl_of(self, p: Any) -> Decimal:
        """`p.upnl(p.instrument.price)`, the engine's own arithmetic, remembered while the very Decimals it
        reads (size, entry, price: immutable, compared by identity) are the same."""
        price = p.instrument.price
        hit = self._upnl.get(id(p))
        if hit is not None and hit[0] is p and hit[1] is p.size and hit[2] is p.entry and hit[3] is price:
            return hit[4]
        value: Decimal = p.upnl(price)
        self._upnl[id(p)] = (p, p.size, p.entry, price, value)
        return value

    # --- what the keeper would read ------------------------------------------------------------------
    def state(self, now: datetime | None = None) -> VenueState:
        """Balance, positions, tickers and our open orders, stamped now (a fresh read)."""
        eng = self.engine
        now = now or self.now()
        acct = self.account
        tickers: dict[str, Ticker] = {}
        for s in self.symbols:
            inst = eng.instruments[s]
            if inst.is_contract:
                nxt = self._funding_times.get(inst.next_funding_ms)
                if nxt is None:
                    if len(self._funding_times) > 64:
                        self._funding_times.clear()
                    nxt = self._funding_times[inst.next_funding_ms] = datetime.fromtimestamp(
                        inst.next_funding_ms / 1000, tz=UTC)
                tickers[s] = _Ticker(symbol=s, bid=inst.bid, ask=inst.ask, last=inst.price, mark=inst.price,
                                    index=eng.index[inst.base], timestamp=now, funding_rate=inst.funding_rate,
                                    next_funding_time=nxt)
            else:
                tickers[s] = _Ticker(symbol=s, bid=inst.bid, ask=inst.ask, last=inst.price, mark=None, index=None,
                                    timestamp=now, funding_rate=None, next_funding_time=None)
        positions: dict[str, Position] = {}
        for p in acct.positions.values():
            if p.size != 0 and p.instrument.symbol in self.markets:
                positions[p.instrument.symbol] = _Position(
                    symbol=p.instrument.symbol, contracts=p.size, entry_price=p.entry, mark_price=p.instrument.price,
                    # the liquidation price feeds the risk monitors only, which the simulator does not run
                    unrealized_pnl=self._upnl_of(p), liquidation_price=None, timestamp=now)
        orders = tuple(
            Order(id=o.order_id, client_id=o.client_id, symbol=o.instrument.symbol, side=o.side.lower(),  # type: ignore[arg-type]
                  amount=o.qty, filled=o.filled, price=o.price, status="open", reduce_only=o.reduce_only,
                  timestamp=datetime.fromtimestamp(o.created_ms / 1000, tz=UTC))
            for o in eng.open_orders.values() if o.api_key == API_KEY and o.instrument.symbol in self.markets
        ) if eng.open_orders else ()
        return _VenueState(markets=self.markets, tickers=tickers, balances=dict(acct.wallet), balance_time=now,
                          positions=positions, open_orders=orders)

    # --- orders ---------------------------------------------------------------------------------------
    def place(self, symbol: str, side: str, amount: Decimal, price: Decimal, *, post_only: bool, reduce_only: bool,
              client_id: str) -> SimOrder:
        if self.journal is not None:
            self.journal.append(("place", symbol, side, amount, price, post_only, reduce_only, client_id))
        return self.engine.place_order(
            API_KEY, self.engine.instrument(symbol), "Buy" if side == "buy" else "Sell", "Limit", amount, price,
            time_in_force="PostOnly" if post_only else "GTC", reduce_only=reduce_only, client_id=client_id)

    def open_position(self, symbol: str, contracts: Decimal) -> None:
        """Start with a position already on, at the current price and without a fee (a hedge set up before
        the simulated period), booked by the engine's own position arithmetic."""
        inst = self.engine.instrument(symbol)
        pos = self.account.position(inst)
        pos.apply_fill(contracts, inst.price)
        pos.created_ms = pos.updated_ms = self.engine.now_ms()

    def cancel(self, order: SimOrder) -> None:
        if self.journal is not None:
            self.journal.append(("cancel", order.instrument.symbol, order.client_id))
        self.engine.cancel_order(API_KEY, order.instrument, order.order_id, None)

    def executions(self, since: int = 0) -> list[Execution]:
        return self.engine.executions[since:]

    # --- valuation ----------------------------------------------------------------------------------
    def usd(self, coin: str) -> Decimal:
        if coin in STABLE:
            return Decimal(1)
        return self.engine.index[coin]

    def equity_usd(self) -> Decimal:
        """Every coin of the account, wallet plus unrealised PnL, at its index price.

        A coin's equity is the engine's (`Engine.coin_summary(...).equity`: wallet + the uPnL of the positions
        settled in it, summed in the same order), without the margin figures it also works out.
        """
        acct = self.account
        upnl: dict[str, Decimal] = {}
        for p in acct.positions.values():
            if p.size != 0:
                inst = p.instrument
                coin = inst.settle if inst.settle is not None else inst.quote
                upnl[coin] = upnl.get(coin, ZERO) + self._upnl_of(p)
        coins = set(acct.wallet) | {p.instrument.settle or p.instrument.quote for p in acct.positions.values()}
        wallet = acct.wallet
        return sum(((wallet.get(c, ZERO) + upnl.get(c, ZERO)) * self.usd(c) for c in coins), ZERO)


def snapshot_of(venues: dict[str, SimVenue], now: datetime | None = None) -> Snapshot:
    """Every venue read at once (`now`: the shared clock's time, when the caller has it already)."""
    now = now or next(iter(venues.values())).now()
    return _Snapshot(time=now, venues={n: v.state(now) for n, v in venues.items()})


def inputs_v1(inputs: CycleInputs) -> dict[str, Any]:
    """A simulated cycle's inputs as a snapshot file with its keeper section: `hedged plan --snapshot` on it
    replays the decision exactly (our orders in flight, reprice counts, order history, the tag)."""
    return {**snapshot_v1(inputs.snapshot), "keeper": dump_inputs(inputs)["keeper"]}


def _s(d: Decimal | None) -> str | None:
    return None if d is None else format(d, "f")


def _ms(t: datetime | None) -> int | None:
    return None if t is None else round(t.timestamp() * 1000)


def snapshot_v1(snap: Snapshot) -> dict[str, Any]:
    """The snapshot as docs/snapshot.md v1 (ccxt-unified shapes), for `hedged plan --snapshot`."""
    venues: dict[str, Any] = {}
    for name, vs in snap.venues.items():
        markets = {
            s: {"symbol": m.symbol, "base": m.base, "quote": m.quote, "settle": m.settle,
                "type": "spot" if m.kind == "spot" else "swap", "spot": m.kind == "spot",
                "linear": m.kind == "linear", "inverse": m.kind == "inverse", "contractSize": _s(m.contract_size),
                "precision": {"amount": _s(m.lot), "price": _s(m.tick)},
                "limits": {"amount": {"min": _s(m.min_amount)}},
                "info": {"fundingInterval": str(int(m.funding_interval_hours * 60))}
                if m.funding_interval_hours else {}}
            for s, m in vs.markets.items()
        }
        tickers = {
            s: {"symbol": t.symbol, "bid": _s(t.bid), "ask": _s(t.ask), "last": _s(t.last), "markPrice": _s(t.mark),
                "indexPrice": _s(t.index), "timestamp": _ms(t.timestamp), "fundingRate": _s(t.funding_rate),
                "fundingTimestamp": _ms(t.next_funding_time)}
            for s, t in vs.tickers.items()
        }
        positions = [
            {"symbol": p.symbol, "contracts": _s(abs(p.contracts)), "side": "long" if p.contracts > 0 else "short",
             "entryPrice": _s(p.entry_price), "markPrice": _s(p.mark_price), "unrealizedPnl": _s(p.unrealized_pnl),
             "liquidationPrice": _s(p.liquidation_price), "timestamp": _ms(p.timestamp)}
            for p in vs.positions.values()
        ]
        orders = [
            {"id": o.id, "clientOrderId": o.client_id, "symbol": o.symbol, "side": o.side, "amount": _s(o.amount),
             "filled": _s(o.filled), "price": _s(o.price), "status": o.status, "reduceOnly": o.reduce_only,
             "timestamp": _ms(o.timestamp)}
            for o in vs.open_orders
        ]
        balance = {"total": {c: _s(v) for c, v in vs.balances.items()}, "timestamp": _ms(vs.balance_time)}
        venues[name] = {"markets": markets, "tickers": tickers, "balance": balance, "positions": positions,
                        "open_orders": orders}
    return {"version": 1, "time": snap.time.isoformat().replace("+00:00", "Z"), "venues": venues}
