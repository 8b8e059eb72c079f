"""The matching engine: plain synchronous Python, no I/O, so it can be unit-tested directly.

It owns instruments, coin index prices, accounts, orders and executions. The HTTP/WS fronts call it and
listen to its events; a background task (hedged.sim.server) calls `advance()` to run price paths, taker
flow and funding. Money and quantities are Decimal throughout.
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from hedged.sim.accounts import Account, Position
from hedged.sim.clock import Clock
from hedged.sim.instruments import ONE, ZERO, Category, Instrument, parse_symbol, quantize
from hedged.sim.orders import Execution, Order
from hedged.sim.paths import CsvPath, FixedPath, GbmPath, PricePath, StepPath
from hedged.sim.settings import EmulatorSettings, InstrumentSettings, PathSettings

D = Decimal
MAX_SUBSTEPS = 2000
HISTORY = 200_000  # price points kept per instrument and per index, for candles

Listener = Callable[[str, str | None, Any], None]
"""Event callback: (kind, api_key or None for public events, payload)."""


class EngineError(Exception):
    """A request the exchange refuses; `code` is the Bybit v5 retCode the front answers with."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass
class CoinSummary:
    """One coin of a unified account, as wallet-balance reports it."""

    coin: str
    wallet: Decimal
    upnl: Decimal
    position_im: Decimal
    position_mm: Decimal
    order_im: Decimal
    locked: Decimal

    @property
    def equity(self) -> Decimal:
        return self.wallet + self.upnl

    @property
    def available(self) -> Decimal:
        return self.equity - self.position_im - self.order_im - self.locked


@dataclass(frozen=True)
class Transfer:
    """Money moved into (delta > 0) or out of an account from outside the exchange's trading."""

    api_key: str
    coin: str
    delta: Decimal
    after: Decimal
    time_ms: int
    transfer_id: str


def make_path(ps: PathSettings, seed: int) -> PricePath:
    if ps.kind == "steps":
        return StepPath(list(ps.steps), repeat=ps.repeat)
    if ps.kind == "gbm":
        return GbmPath(
            ps.volatility, ps.drift, ps.jumps_per_day, ps.jump_mean, ps.jump_stdev,
            seed=ps.seed if ps.seed is not None else seed,
        )
    if ps.kind == "csv":
        assert ps.file is not None
        return CsvPath(ps.file, repeat=ps.repeat)
    return FixedPath()


def make_instrument(s: InstrumentSettings) -> Instrument:
    base, quote, settle, category = parse_symbol(s.symbol)
    spot = category is Category.SPOT
    step = s.qty_step if s.qty_step is not None else (D(1) if category is Category.INVERSE else D("0.001"))
    return Instrument(
        symbol=s.symbol, base=base, quote=quote, settle=settle, category=category,
        tick=s.tick, qty_step=step, min_qty=s.min_qty if s.min_qty is not None else step,
        max_qty=s.max_qty, contract_size=s.contract_size,
        maker_fee=s.maker_fee if s.maker_fee is not None else D("0.001") if spot else D("0.0002"),
        taker_fee=s.taker_fee if s.taker_fee is not None else D("0.001") if spot else D("0.00055"),
        spread_ticks=s.spread_ticks, depth_usd=s.depth_usd, levels=s.levels,
        funding_rate=s.funding_rate if not spot else ZERO,
        funding_interval_s=int(s.funding_interval_hours * 3600),
    )


class Engine:
    """The exchange state machine. Every public method is synchronous and safe to call from tests."""

    def __init__(self, settings: EmulatorSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or Clock(manual=settings.clock == "manual", speed=settings.speed)
        self.rng = random.Random(settings.seed)
        self.taker_flow_usd_per_s = settings.taker_flow_usd_per_s
        self.mmr = settings.maintenance_margin_rate
        self.listeners: list[Listener] = []
        self.index: dict[str, Decimal] = {}
        self.paths: dict[str, PricePath] = {}
        self.instruments: dict[str, Instrument] = {}
        self.by_key: dict[tuple[Category, str], Instrument] = {}
        self.accounts: dict[str, Account] = {}
        self.orders: list[Order] = []
        self.orders_by_id: dict[str, Order] = {}
        self.open_orders: dict[str, Order] = {}  # insertion order = time priority
        self.by_client_id: dict[tuple[str, str], Order] = {}
        self.executions: list[Execution] = []
        self.funding_events: list[tuple[Instrument, Decimal, int]] = []  # (instrument, rate, settled at ms)
        self.transfers: list[Transfer] = []
        # every price each instrument (by symbol) and each coin index (by asset) took, for candles
        self.price_history: dict[str, deque[tuple[int, Decimal]]] = {}
        self.index_history: dict[str, deque[tuple[int, Decimal]]] = {}
        self.seq = 0
        # Sub-step length of `advance` (taker flow, paths, funding). `hedged simulate` sets its own step here:
        # it moves prices itself, so one tick per step gives the same accounting at a fraction of the cost.
        self.tick_ms = 200
        self.start_ms = self.clock.now_ms()
        self.last_ms = self.start_ms
        for i, (asset, a) in enumerate(sorted(settings.assets.items())):
            self.index[asset] = a.price
            self.paths[asset] = make_path(a.path, settings.seed * 1000 + i)
        for s in settings.instruments:
            inst = make_instrument(s)
            inst.price = inst.round_price(self.index[inst.base])
            if inst.is_contract:
                interval_ms = inst.funding_interval_s * 1000
                inst.next_funding_ms = (self.start_ms // interval_ms + 1) * interval_ms
            self.instruments[inst.symbol] = inst
            self.by_key[inst.key] = inst
            self.price_history[inst.symbol] = deque([(self.start_ms, inst.price)], maxlen=HISTORY)
        for asset, price in self.index.items():
            self.index_history[asset] = deque([(self.start_ms, price)], maxlen=HISTORY)
        for acc in settings.accounts:
            self.accounts[acc.api_key] = Account(acc.api_key, acc.secret, acc.leverage, dict(acc.balances))

    # ---- plumbing ------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return self.clock.now_ms()

    def emit(self, kind: str, api_key: str | None, payload: Any) -> None:
        for listener in list(self.listeners):
            listener(kind, api_key, payload)

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def account(self, api_key: str) -> Account:
        acct = self.accounts.get(api_key)
        if acct is None:
            raise EngineError(10003, "API key is invalid.")
        return acct

    def add_account(self, api_key: str, secret: str, balances: dict[str, Decimal] | None = None) -> Account:
        acct = Account(api_key, secret, D(10), dict(balances or {}))
        self.accounts[api_key] = acct
        return acct

    def instrument(self, symbol: str) -> Instrument:
        inst = self.instruments.get(symbol)
        if inst is None:
            raise EngineError(10001, f"unknown symbol {symbol}")
        return inst

    def find_instrument(self, category: str, symbol_id: str) -> Instrument:
        try:
            inst = self.by_key.get((Category(category), symbol_id))
        except ValueError:
            inst = None
        if inst is None:
            raise EngineError(10001, f"params error: symbol invalid ({category} {symbol_id})")
        return inst

    def instruments_in(self, category: str) -> list[Instrument]:
        return [i for i in self.instruments.values() if i.category.value == category]

    # ---- prices --------------------------------------------------------------------------------
    def set_price(self, price: Decimal, *, asset: str | None = None, symbol: str | None = None) -> None:
        """Move a coin's index (and every instrument on it, keeping basis) or one instrument (basis)."""
        if price <= 0:
            raise EngineError(10001, "price must be positive")
        if symbol is not None:
            inst = self.instrument(symbol)
            inst.basis = price / self.index[inst.base] - 1
            inst.price = inst.round_price(price)
            self._after_price_move([inst])
            return
        if asset is None or asset not in self.index:
            raise EngineError(10001, f"unknown asset {asset}")
        self.index[asset] = price
        moved = [i for i in self.instruments.values() if i.base == asset]
        for inst in moved:
            inst.price = inst.round_price(price * (1 + inst.basis))
        self._after_price_move(moved)

    def _after_price_move(self, moved: list[Instrument]) -> None:
        now = self.now_ms()
        for inst in moved:
            self.price_history[inst.symbol].append((now, inst.price))
        for asset in {i.base for i in moved}:
            self.index_history[asset].append((now, self.index[asset]))
        if not self.listeners:  # nobody to tell (`hedged simulate`): only the book can react to the move
            if self.open_orders:
                for inst in moved:
                    self._match_resting(inst)
            return
        for inst in moved:
            self._match_resting(inst)
            self.emit("ticker", None, inst)
        for acct in self.accounts.values():
            if any(p.size != 0 and p.instrument in moved for p in acct.positions.values()):
                for p in acct.positions.values():
                    if p.size != 0 and p.instrument in moved:
                        self.emit("position", acct.api_key, p)
                self.emit("wallet", acct.api_key, None)

    # ---- balances ------------------------------------------------------------------------------
    def coin_summary(self, acct: Account, coin: str) -> CoinSummary:
        upnl = position_im = position_mm = order_im = locked = ZERO
        for pos in acct.positions.values():
            inst = pos.instrument
            if pos.size == 0 or self._settle_coin(inst) != coin:
                continue
            upnl += pos.upnl(inst.price)
            value = pos.value(inst.price)
            position_im += value / self.leverage_of(acct, inst)
            position_mm += value * self.mmr
        for o in self.open_orders.values():
            if o.api_key != acct.api_key:
                continue
            lock_coin, amount = self._order_hold(acct, o)
            if lock_coin != coin:
                continue
            if o.instrument.is_contract:
                order_im += amount
            else:
                locked += amount
        return CoinSummary(coin, acct.wallet.get(coin, ZERO), upnl, position_im, position_mm, order_im, locked)

    @staticmethod
    def _settle_coin(inst: Instrument) -> str:
        return inst.settle if inst.settle is not None else inst.quote

    def _order_hold(self, acct: Account, o: Order) -> tuple[str, Decimal]:
        """What an open order holds back: spot funds it would spend, or a contract's initial margin."""
        inst = o.instrument
        price = o.price if o.price is not None else inst.price
        if not inst.is_contract:
            if o.side == "Buy":
                return inst.quote, o.remaining * price
            return inst.base, o.remaining
        if o.reduce_only:
            return self._settle_coin(inst), ZERO
        pos = acct.positions.get(inst.key)
        opening = o.remaining
        if pos is not None and pos.size != 0 and (pos.size > 0) != (o.side == "Buy"):
            opening = max(ZERO, o.remaining - abs(pos.size))
        return self._settle_coin(inst), inst.value(opening, price) / self.leverage_of(acct, inst)

    # ---- leverage and margin mode -------------------------------------------------------------
    @staticmethod
    def leverage_of(acct: Account, inst: Instrument) -> Decimal:
        return acct.leverages.get(inst.key, acct.leverage)

    @staticmethod
    def margin_mode_of(acct: Account, inst: Instrument) -> str:
        """"cross" (the whole settle-coin wallet backs the position) or "isolated" (only its own margin)."""
        return acct.margin_modes.get(inst.key, "cross")

    def set_leverage(self, api_key: str, inst: Instrument, leverage: Decimal) -> bool:
        """Set one instrument's leverage; False when it already was that (fronts answer "not modified")."""
        acct = self.account(api_key)
        if not inst.is_contract:
            raise EngineError(10001, f"{inst.symbol} has no leverage")
        if leverage < 1 or leverage > 125:
            raise EngineError(110013, f"leverage {leverage} outside [1, 125]")
        if self.leverage_of(acct, inst) == leverage:
            return False
        acct.leverages[inst.key] = leverage
        self.emit("position", api_key, acct.position(inst))
        return True

    def set_margin_mode(self, api_key: str, inst: Instrument, mode: str) -> bool:
        """Switch cross/isolated; refused while the instrument has open orders (110025) or a position
        (110024), as both venues do. False when nothing changes."""
        acct = self.account(api_key)
        if mode not in ("cross", "isolated") or not inst.is_contract:
            raise EngineError(10001, f"params error: margin mode {mode!r} invalid")
        if self.margin_mode_of(acct, inst) == mode:
            return False
        if any(o.api_key == api_key and o.instrument is inst for o in self.open_orders.values()):
            raise EngineError(110025, "margin mode cannot be changed while there are open orders")
        pos = acct.positions.get(inst.key)
        if pos is not None and pos.size != 0:
            raise EngineError(110024, "margin mode cannot be changed while there is a position")
        acct.margin_modes[inst.key] = mode
        return True

    def set_hedge_mode(self, api_key: str, hedge: bool) -> bool:
        """One-way (False) or two-way (True) positions; refused with positions or orders open."""
        acct = self.account(api_key)
        if acct.hedge_mode == hedge:
            return False
        if any(o.api_key == api_key for o in self.open_orders.values()) or any(
                p.size != 0 for p in acct.positions.values()):
            raise EngineError(110025, "position mode cannot be changed with open orders or positions")
        acct.hedge_mode = hedge
        return True

    def isolated_margin(self, acct: Account, pos: Position) -> Decimal:
        """Margin an isolated position holds: its value at entry over its leverage, in the settle coin."""
        if pos.size == 0 or pos.entry == 0:
            return ZERO
        return pos.instrument.value(abs(pos.size), pos.entry) / self.leverage_of(acct, pos.instrument)

    def liquidation_price(self, acct: Account, pos: Position) -> Decimal | None:
        """Approximation: the margin backing the position is the settle coin's wallet (cross; other
        collateral ignored) or the position's own margin, value at entry / leverage (isolated);
        maintenance margin `mmr`·value; solves margin + uPnL(P) = mmr·value(P) for P. None if no such
        price exists (e.g. a short inverse position at 1x, or fully backed by coin collateral)."""
        if pos.size == 0 or pos.entry == 0:
            return None
        inst = pos.instrument
        if self.margin_mode_of(acct, inst) == "isolated":
            w = self.isolated_margin(acct, pos)
        else:
            w = acct.wallet.get(self._settle_coin(inst), ZERO)
        m = self.mmr
        n = abs(pos.size)
        e = pos.entry
        price: Decimal | None
        if inst.inverse:
            c = n * inst.contract_size
            if pos.size > 0:
                denom = w + c / e
                price = c * (1 + m) / denom if denom > 0 else None
            else:
                denom = c / e - w
                price = c * (1 - m) / denom if denom > 0 else None
        elif pos.size > 0:
            price = (n * e - w) / (n * (1 - m))
        else:
            price = (w + n * e) / (n * (1 + m))
        if price is None or price <= 0:
            return None
        return inst.round_price(price)

    def credit(self, api_key: str, coin: str, delta: Decimal) -> Decimal:
        """A deposit (or, negative, a withdrawal) into the account; kept for the transaction log."""
        acct = self.account(api_key)
        acct.credit(coin, delta)
        self.transfers.append(Transfer(api_key, coin, delta, acct.wallet[coin], self.now_ms(),
                                       f"transfer-{len(self.transfers) + 1}"))
        self.emit("wallet", api_key, None)
        return acct.wallet[coin]

    # ---- orders --------------------------------------------------------------------------------
    def find_order(self, api_key: str, order_id: str | None = None, client_id: str | None = None) -> Order | None:
        if order_id:
            o = self.orders_by_id.get(order_id)
            if o is not None and o.api_key == api_key and (not client_id or o.client_id == client_id):
                return o
            return None
        if client_id:
            return self.by_client_id.get((api_key, client_id))
        return None

    def place_order(
        self,
        api_key: str,
        inst: Instrument,
        side: str,
        order_type: str,
        qty: Decimal,
        price: Decimal | None = None,
        *,
        time_in_force: str = "GTC",
        reduce_only: bool = False,
        client_id: str = "",
        market_unit: str | None = None,
        post_only_reject: bool = False,
        partial_fill_ratio: Decimal | None = None,
    ) -> Order:
        """Validate, then rest / take / reject like Bybit. Raises EngineError with the v5 retCode."""
        acct = self.account(api_key)
        if side not in ("Buy", "Sell"):
            raise EngineError(10001, "params error: side invalid")
        if order_type not in ("Limit", "Market"):
            raise EngineError(10001, "params error: orderType invalid")
        tif = {"gtc": "GTC", "postonly": "PostOnly", "ioc": "IOC", "fok": "FOK"}.get(time_in_force.lower())
        if tif is None:
            raise EngineError(10001, "params error: timeInForce invalid")
        if order_type == "Market":
            tif = "IOC"
            price = None
        elif price is None or price <= 0:
            raise EngineError(10001, "params error: price invalid")
        elif quantize(price, inst.tick) != price:
            raise EngineError(10001, f"params error: price {price} is not a multiple of tick {inst.tick}")
        if client_id and (api_key, client_id) in self.by_client_id:
            raise EngineError(110072, "OrderLinkedID is duplicate")
        if not inst.is_contract:
            reduce_only = False
            if order_type == "Market" and side == "Buy" and (market_unit or "quoteCoin") == "quoteCoin":
                qty = inst.floor_qty(qty / inst.ask)  # qty was quote coin to spend
        if qty <= 0 or quantize(qty, inst.qty_step) != qty:
            raise EngineError(10001, f"Qty invalid: must be a positive multiple of {inst.qty_step}")
        if qty < inst.min_qty or qty > inst.max_qty:
            raise EngineError(10001, f"Qty invalid: outside [{inst.min_qty}, {inst.max_qty}]")
        pos = acct.positions.get(inst.key)
        if reduce_only:
            cap = ZERO
            if pos is not None and pos.size != 0 and (pos.size > 0) != (side == "Buy"):
                cap = abs(pos.size)
            if cap == 0:
                raise EngineError(110017, "Reduce-only rule not satisfied: current position is zero or same side")
            qty = min(qty, cap)
        now = self.now_ms()
        order = Order(
            order_id=self.new_id(), client_id=client_id, api_key=api_key, instrument=inst, side=side,
            order_type=order_type, time_in_force=tif, qty=qty, price=price, reduce_only=reduce_only,
            created_ms=now, updated_ms=now, price_on_created=inst.price,
        )
        self._check_funds(acct, order)
        self.orders.append(order)
        self.orders_by_id[order.order_id] = order
        self.open_orders[order.order_id] = order
        if client_id:
            self.by_client_id[(api_key, client_id)] = order
        marketable = self._marketable(order)
        if tif == "PostOnly" and (marketable or post_only_reject):
            self._close(order, "Cancelled", "EC_PostOnlyWillTakeLiquidity", "CancelByUser")
            return order
        if tif == "FOK" and self._takeable_qty(order) < order.qty:
            self._close(order, "Cancelled", "EC_CancelForNoFullFill", "UNKNOWN")
            return order
        cap_qty = inst.floor_qty(qty * partial_fill_ratio) if partial_fill_ratio is not None else None
        if marketable:
            self._take(order, limit=cap_qty)
        elif cap_qty is not None and cap_qty > 0 and order.price is not None:
            self._fill(order, cap_qty, order.price, is_maker=True)
        if order.is_open and tif == "IOC":
            self._close(order, "Cancelled", "EC_CancelForNoFullFill", "UNKNOWN")
        elif order.status == "New":
            self.emit("order", api_key, order)
        self.emit("wallet", api_key, None)
        return order

    def _check_funds(self, acct: Account, order: Order) -> None:
        inst = order.instrument
        coin, need = self._order_hold(acct, order)
        if order.price is None:  # market: value at the far side of the touch
            ref = inst.ask if order.side == "Buy" else inst.bid
            if inst.is_contract:
                need = need * ref / inst.price if not inst.inverse else need * inst.price / ref
            elif order.side == "Buy":
                need = order.qty * ref
        if need <= 0:
            return
        if self.coin_summary(acct, coin).available < need:
            raise EngineError(110007, "ab not enough for new order")

    def cancel_order(self, api_key: str, inst: Instrument, order_id: str | None, client_id: str | None) -> Order:
        o = self.find_order(api_key, order_id, client_id)
        if o is None or o.instrument is not inst or not o.is_open:
            raise EngineError(110001, "Order does not exist.")
        self._close(o, "Cancelled", "EC_PerCancelRequest", "CancelByUser")
        self.emit("wallet", api_key, None)
        return o

    def amend_order(self, api_key: str, inst: Instrument, order_id: str | None, client_id: str | None, *,
                    qty: Decimal | None = None, price: Decimal | None = None) -> Order:
        """Change an open limit order's quantity (not below what filled) and/or price, keeping its place
        unless the price moves; a post-only order may not be moved to where it would take."""
        o = self.find_order(api_key, order_id, client_id)
        if o is None or o.instrument is not inst or not o.is_open:
            raise EngineError(110001, "Order does not exist.")
        if o.price is None:
            raise EngineError(10001, "params error: a market order cannot be amended")
        if qty is not None and (qty <= o.filled or quantize(qty, inst.qty_step) != qty or qty > inst.max_qty):
            raise EngineError(10001, f"Qty invalid: must be a multiple of {inst.qty_step} above the filled {o.filled}")
        if price is not None and (price <= 0 or quantize(price, inst.tick) != price):
            raise EngineError(10001, f"params error: price {price} is not a multiple of tick {inst.tick}")
        if (qty is None or qty == o.qty) and (price is None or price == o.price):
            raise EngineError(10001, "order not modified")
        if price is not None and o.time_in_force == "PostOnly" and (
                price >= inst.ask if o.side == "Buy" else price <= inst.bid):
            raise EngineError(110094, "amend would take liquidity: the post-only order is not moved")
        if qty is not None:
            o.qty = qty
        if price is not None and price != o.price:
            o.price = price
            self.open_orders.pop(o.order_id, None)  # a new price loses time priority
            self.open_orders[o.order_id] = o
        o.updated_ms = self.now_ms()
        if self._marketable(o):
            self._take(o)
        self.emit("order", api_key, o)
        self.emit("wallet", api_key, None)
        return o

    def _close(self, o: Order, status: str, reason: str, cancel_type: str) -> None:
        if status == "Cancelled" and o.filled > 0:
            status = "PartiallyFilledCanceled"
        o.status = status
        self.open_orders.pop(o.order_id, None)
        o.reject_reason = reason
        o.cancel_type = cancel_type
        o.updated_ms = self.now_ms()
        self.emit("order", o.api_key, o)

    def _marketable(self, o: Order) -> bool:
        inst = o.instrument
        if o.price is None:
            return True
        return o.price >= inst.ask if o.side == "Buy" else o.price <= inst.bid

    def _levels(self, o: Order) -> list[Decimal]:
        inst = o.instrument
        out = []
        for i in range(inst.levels):
            lvl = inst.ask + inst.tick * i if o.side == "Buy" else inst.bid - inst.tick * i
            if lvl <= 0 or (o.price is not None and (lvl > o.price if o.side == "Buy" else lvl < o.price)):
                break
            out.append(lvl)
        return out

    def _takeable_qty(self, o: Order) -> Decimal:
        return sum((o.instrument.level_qty(p) for p in self._levels(o)), ZERO)

    def _take(self, o: Order, limit: Decimal | None = None) -> None:
        """Walk the synthetic book from the touch; what cannot be taken rests (limit) or is cancelled."""
        budget = o.remaining if limit is None else min(limit, o.remaining)
        for lvl in self._levels(o):
            if budget <= 0 or not o.is_open:
                break
            q = min(budget, o.instrument.level_qty(lvl))
            got = self._fill(o, q, lvl, is_maker=False)
            budget -= got
            if got < q:
                break

    def _fill(self, o: Order, qty: Decimal, price: Decimal, is_maker: bool) -> Decimal:
        """Execute `qty` of `o` at `price`; moves balances and position. Returns the quantity filled."""
        inst = o.instrument
        acct = self.accounts[o.api_key]
        pos = acct.position(inst) if inst.is_contract else None
        if o.reduce_only and pos is not None:
            cap = abs(pos.size) if pos.size != 0 and (pos.size > 0) != (o.side == "Buy") else ZERO
            if cap == 0:
                self._close(o, "Cancelled", "EC_ReduceOnlySetButNotClosePosition", "CancelByReduceOnly")
                return ZERO
            qty = min(qty, cap)
        qty = inst.floor_qty(min(qty, o.remaining))
        if qty <= 0:
            return ZERO
        now = self.now_ms()
        rate = inst.maker_fee if is_maker else inst.taker_fee
        value = inst.value(qty, price)
        closed = realised = entry = ZERO
        if pos is None:
            if o.side == "Buy":
                fee = qty * rate
                acct.credit(inst.quote, -value)
                acct.credit(inst.base, qty - fee)
            else:
                fee = value * rate
                acct.credit(inst.base, -qty)
                acct.credit(inst.quote, value - fee)
        else:
            fee = value * rate
            settle = self._settle_coin(inst)
            if pos.size == 0:
                pos.created_ms = now
                pos.realised = ZERO
            entry = pos.entry
            realised, closed = pos.apply_fill(qty * o.sign, price)
            pos.realised -= fee
            pos.cum_realised -= fee
            pos.updated_ms = now
            pos.seq = self.next_seq()
            acct.credit(settle, realised - fee)
            acct.cum_realised[settle] = acct.cum_realised.get(settle, ZERO) + realised - fee
        o.filled += qty
        o.cum_value += value
        o.inv_sum += qty / price
        o.cum_fee += fee
        o.updated_ms = now
        o.status = "Filled" if o.remaining == 0 else "PartiallyFilled"
        if o.status == "Filled":
            self.open_orders.pop(o.order_id, None)
        inst.volume_24h += qty
        inst.turnover_24h += value
        ex = Execution(
            exec_id=self.new_id(), order_id=o.order_id, client_id=o.client_id, api_key=o.api_key,
            instrument=inst, side=o.side, price=price, qty=qty, value=value, fee=fee, fee_rate=rate,
            fee_coin=o.fee_coin, is_maker=is_maker, exec_type="Trade", time_ms=now, mark_price=inst.price,
            index_price=self.index[inst.base], order_type=o.order_type,
            order_price=o.price if o.price is not None else ZERO, order_qty=o.qty, leaves_qty=o.remaining,
            closed_size=closed, seq=self.next_seq(), entry_price=entry if closed else ZERO, realised=realised,
            balances_after={c: acct.wallet.get(c, ZERO) for c in
                            ((inst.base, inst.quote) if pos is None else (self._settle_coin(inst),))},
        )
        self.executions.append(ex)
        self.emit("order", o.api_key, o)
        self.emit("execution", o.api_key, ex)
        if pos is not None:
            self.emit("position", o.api_key, pos)
        self.emit("wallet", o.api_key, None)
        return qty

    def _open_orders(self, inst: Instrument) -> list[Order]:
        return [o for o in self.open_orders.values() if o.instrument is inst and o.price is not None]

    def _match_resting(self, inst: Instrument) -> None:
        """Resting orders the new book trades through fill completely at their own price (maker)."""
        for o in self._open_orders(inst):
            assert o.price is not None
            if (o.side == "Buy" and o.price >= inst.ask) or (o.side == "Sell" and o.price <= inst.bid):
                self._fill(o, o.remaining, o.price, is_maker=True)

    def _taker_flow(self, inst: Instrument, dt_s: Decimal) -> None:
        """Anonymous takers hit our orders at (or better than) the touch at `taker_flow_usd_per_s`."""
        if self.taker_flow_usd_per_s <= 0:
            return
        if not self.open_orders:  # nothing rests anywhere: no side has an order at the touch
            inst.flow_credit["Buy"] = inst.flow_credit["Sell"] = ZERO
            return
        for side in ("Buy", "Sell"):
            at_touch = [
                o for o in self._open_orders(inst) if o.side == side and o.price is not None
                and (o.price >= inst.bid if side == "Buy" else o.price <= inst.ask)
            ]
            if not at_touch:
                inst.flow_credit[side] = ZERO
                continue
            at_touch.sort(key=lambda o: (-o.sign * (o.price or ZERO), o.created_ms))
            inst.flow_credit[side] += self.taker_flow_usd_per_s * dt_s
            for o in at_touch:
                assert o.price is not None
                per_unit = inst.usd_per_unit(o.price)
                q = inst.floor_qty(min(inst.flow_credit[side] / per_unit, o.remaining))
                if q <= 0:
                    break
                got = self._fill(o, q, o.price, is_maker=True)
                inst.flow_credit[side] -= got * per_unit
                if got < q:
                    continue

    # ---- time ----------------------------------------------------------------------------------
    def step(self, seconds: float) -> None:
        """Advance a manual (or any) clock by `seconds` and run everything due in between."""
        self.clock.step(seconds)
        self.advance()

    def advance(self, now_ms: int | None = None) -> None:
        """Run price paths, taker flow and funding from the last tick up to `now_ms` (default: clock)."""
        target = self.clock.now_ms() if now_ms is None else now_ms
        if target <= self.last_ms:
            return
        span = target - self.last_ms
        n = max(1, min(MAX_SUBSTEPS, span // self.tick_ms))
        t = self.last_ms
        for i in range(1, n + 1):
            nxt = self.last_ms + span * i // n
            self._tick(t, nxt)
            t = nxt
        self.last_ms = target

    def _tick(self, t0: int, t1: int) -> None:
        elapsed = (t1 - self.start_ms) / 1000.0
        for asset, path in self.paths.items():
            p = path.price_at(elapsed, self.index[asset])
            if p is not None and p > 0 and p != self.index[asset]:
                self.set_price(p, asset=asset)
        # the step's length feeds only the taker flow onto resting orders (none rest on most steps)
        dt = D(t1 - t0) / 1000 if self.open_orders else ZERO
        for inst in self.instruments.values():
            self._taker_flow(inst, dt)
            while inst.is_contract and inst.next_funding_ms and inst.next_funding_ms <= t1:
                self._settle_funding(inst, inst.funding_rate, inst.next_funding_ms)
                inst.next_funding_ms += inst.funding_interval_s * 1000

    def settle_funding(self, symbol: str | None = None, rate: Decimal | None = None) -> int:
        """Settle one funding interval now (all contracts, or one symbol); returns payments made."""
        insts = [self.instrument(symbol)] if symbol else [i for i in self.instruments.values() if i.is_contract]
        n = 0
        for inst in insts:
            if not inst.is_contract:
                raise EngineError(10001, f"{inst.symbol} has no funding")
            if rate is not None:
                inst.funding_rate = rate
            n += self._settle_funding(inst, inst.funding_rate, self.now_ms())
        return n

    def _settle_funding(self, inst: Instrument, rate: Decimal, at_ms: int) -> int:
        """Positive rate: longs pay shorts. Inverse pays in the base coin, linear in the quote."""
        self.funding_events.append((inst, rate, at_ms))
        n = 0
        for acct in self.accounts.values():
            pos = acct.positions.get(inst.key)
            if pos is None or pos.size == 0:
                continue
            value = pos.value(inst.price)
            fee = value * rate * (1 if pos.size > 0 else -1)  # > 0: this account pays
            settle = self._settle_coin(inst)
            acct.credit(settle, -fee)
            acct.cum_realised[settle] = acct.cum_realised.get(settle, ZERO) - fee
            pos.realised -= fee
            pos.cum_realised -= fee
            side = "Buy" if pos.size > 0 else "Sell"
            ex = Execution(
                exec_id=self.new_id(), order_id=self.new_id(), client_id="", api_key=acct.api_key,
                instrument=inst, side=side, price=inst.price, qty=abs(pos.size), value=value, fee=fee,
                fee_rate=rate, fee_coin=settle, is_maker=False, exec_type="Funding", time_ms=at_ms,
                mark_price=inst.price, index_price=self.index[inst.base], order_type="UNKNOWN",
                order_price=ZERO, order_qty=ZERO, leaves_qty=ZERO, closed_size=ZERO, seq=self.next_seq(),
                balances_after={settle: acct.wallet.get(settle, ZERO)},
            )
            self.executions.append(ex)
            self.emit("execution", acct.api_key, ex)
            self.emit("position", acct.api_key, pos)
            self.emit("wallet", acct.api_key, None)
            n += 1
        return n

    # ---- views for admin -----------------------------------------------------------------------
    def open_interest(self, inst: Instrument) -> Decimal:
        """Contracts open: the larger of the accounts' longs and shorts (the synthetic book, which has
        no account, holds the other side of the difference)."""
        sizes = [p.size for a in self.accounts.values() for p in a.positions.values() if p.instrument is inst]
        return max(sum((s for s in sizes if s > 0), ZERO), -sum((s for s in sizes if s < 0), ZERO))

    def orders_list(self) -> list[dict[str, Any]]:
        return [
            {
                "order_id": o.order_id, "client_order_id": o.client_id, "api_key": o.api_key,
                "symbol": o.instrument.symbol, "side": o.side.lower(), "type": o.order_type.lower(),
                "time_in_force": o.time_in_force, "reduce_only": o.reduce_only, "qty": str(o.qty),
                "price": str(o.price) if o.price is not None else None, "status": o.status,
                "filled": str(o.filled), "avg_price": str(o.avg_price) if o.avg_price is not None else None,
                "reject_reason": o.reject_reason, "created_ms": o.created_ms, "updated_ms": o.updated_ms,
            }
            for o in self.orders
        ]

    def state(self) -> dict[str, Any]:
        accounts: dict[str, Any] = {}
        for key, acct in self.accounts.items():
            coins = sorted(set(acct.wallet) | {self._settle_coin(p.instrument) for p in acct.positions.values()})
            summaries = {c: self.coin_summary(acct, c) for c in coins}
            accounts[key] = {
                "leverage": str(acct.leverage),
                "wallet": {c: str(s.wallet) for c, s in summaries.items()},
                "equity": {c: str(s.equity) for c, s in summaries.items()},
                "available": {c: str(s.available) for c, s in summaries.items()},
                "positions": [
                    {
                        "symbol": p.instrument.symbol, "size": str(p.size), "entry_price": str(p.entry),
                        "mark_price": str(p.instrument.price), "unrealised_pnl": str(p.upnl(p.instrument.price)),
                        "realised_pnl": str(p.cum_realised),
                        "liq_price": str(self.liquidation_price(acct, p) or ""),
                    }
                    for p in acct.positions.values() if p.size != 0
                ],
            }
        return {
            "time_ms": self.now_ms(),
            "index": {a: str(p) for a, p in self.index.items()},
            "instruments": {
                s: {"price": str(i.price), "bid": str(i.bid), "ask": str(i.ask), "basis": str(i.basis),
                    "funding_rate": str(i.funding_rate), "next_funding_ms": i.next_funding_ms}
                for s, i in self.instruments.items()
            },
            "accounts": accounts,
        }


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    return quantize(value, step, ROUND_FLOOR)


__all__ = ["ONE", "Engine", "EngineError", "floor_to"]
