"""Snapshot format v1: ccxt-unified structures per venue, and their conversion into the core's types.

This is the venue boundary: ccxt's floats become `Decimal` here and nowhere else, so a snapshot dumped
from a live account and the keeper's own fetches go through the very same code. See docs/snapshot.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from hedged import boundedjson
from hedged.model import Market, MarketKind, Order, Position, Snapshot, Ticker, VenueOrder, VenueState, VenueTrade
from hedged.order_state import OrderStatus, from_ccxt

VERSION = 1
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z, the last time a datetime holds
T = TypeVar("T")


class SnapshotError(ValueError):
    """A snapshot that cannot be used; the message is one line naming the field."""


# a number written as text: optional sign, digits with at most one point, optional exponent; nothing around it
# (Decimal() alone would also take " 1", "1_000", "Infinity" and "NaN")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def to_decimal(value: Any, where: str, *, optional: bool = False) -> Decimal | None:
    """ccxt number (float, int, numeric string) → Decimal, via its shortest repr so 0.1 stays 0.1.

    The one number parser of the venue boundary: None (ccxt's "absent") is None where `optional`; anything
    else must be a number, so an empty or blank string is an error naming the field, like any other text."""
    if value is None:
        if optional:
            return None
        raise SnapshotError(f"{where}: expected a number, got nothing")
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise SnapshotError(f"{where}: expected a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SnapshotError(f"{where}: expected a finite number, got {value}")
    if isinstance(value, str) and not _NUMBER.fullmatch(value):
        raise SnapshotError(f"{where}: expected a number, got {value[:40]!r}")
    try:
        d = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise SnapshotError(f"{where}: expected a number, got {str(value)[:40]!r}") from None
    if not d.is_finite():
        raise SnapshotError(f"{where}: expected a finite number, got {value}")
    return d


def _num(value: Any, where: str) -> Decimal:
    d = to_decimal(value, where)
    assert d is not None
    return d


def _opt(value: Any, where: str) -> Decimal | None:
    return to_decimal(value, where, optional=True)


def _positive(value: Any, where: str) -> Decimal:
    d = _num(value, where)
    if d <= 0:
        raise SnapshotError(f"{where}: expected a number > 0, got {d}")
    return d


def parse_time(value: Any, where: str) -> datetime | None:
    """ccxt millisecond timestamps or RFC 3339 strings → aware UTC datetime; None is absent, "" is an error."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise SnapshotError(f"{where}: expected a timestamp in ms or an RFC 3339 time")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value < MAX_MS:
            raise SnapshotError(f"{where}: expected a timestamp in ms since 1970 (0 to {MAX_MS}), got {value}")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise SnapshotError(f"{where}: expected an RFC 3339 time, got {value[:40]!r}") from None
        if dt.tzinfo is None:
            raise SnapshotError(f"{where}: expected an RFC 3339 time with a UTC offset, got {value!r}")
        return dt.astimezone(UTC)
    raise SnapshotError(f"{where}: expected a timestamp in ms or an RFC 3339 time")


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SnapshotError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise SnapshotError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise SnapshotError(f"{where}: expected a non-empty string")
    return value


def _info(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    info = obj.get("info")
    return info if isinstance(info, Mapping) else {}


def _lenient(value: Any, parse: Callable[[Any, str], T | None], where: str) -> T | None:
    """A field only the risk monitors read: unreadable means unknown, never an unusable snapshot."""
    try:
        return parse(value, where)
    except SnapshotError:
        return None


def _ms_or_rfc3339(value: Any, where: str) -> datetime | None:
    """Like `parse_time`, also taking numeric strings (Bybit's raw "1663689600000"); 0 or less is unknown."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
        return None
    return parse_time(value, where)


def _hours_from_minutes(value: Any, where: str) -> Decimal | None:
    minutes = _opt(value, where)
    return minutes / 60 if minutes is not None and minutes > 0 else None


def parse_market(raw: Any, where: str) -> Market:
    m = _obj(raw, where)
    symbol = _str(m.get("symbol"), f"{where}.symbol")
    kind: MarketKind
    if m.get("spot") or m.get("type") == "spot":
        kind = "spot"
    elif m.get("inverse"):
        kind = "inverse"
    elif m.get("linear"):
        kind = "linear"
    else:
        raise SnapshotError(f"{where}: expected spot, or a contract with linear or inverse true")
    precision = _obj(m.get("precision", {}), f"{where}.precision")
    limits = _obj(m.get("limits", {}), f"{where}.limits")
    amount_limits = _obj(limits.get("amount") or {}, f"{where}.limits.amount")
    lot = _positive(precision.get("amount"), f"{where}.precision.amount")
    min_amount = _opt(amount_limits.get("min"), f"{where}.limits.amount.min") or lot
    return Market(
        symbol=symbol,
        base=_str(m.get("base"), f"{where}.base"),
        quote=_str(m.get("quote"), f"{where}.quote"),
        settle=m.get("settle") or None,
        kind=kind,
        contract_size=(
            Decimal(1) if kind == "spot" else _positive(m.get("contractSize"), f"{where}.contractSize")
        ),
        tick=_positive(precision.get("price"), f"{where}.precision.price"),
        lot=lot,
        min_amount=min_amount,
        funding_interval_hours=(
            None if kind == "spot"
            else _lenient(m["fundingIntervalHours"], _opt, f"{where}.fundingIntervalHours")
            if m.get("fundingIntervalHours") is not None
            else _lenient(_info(m).get("fundingInterval"), _hours_from_minutes, f"{where}.info.fundingInterval")
        ),
    )


def parse_ticker(raw: Any, where: str, symbol: str) -> Ticker:
    t = _obj(raw, where)
    info = _info(t)
    raw_funding = info.get("fundingRate")  # the venue's raw text: Bybit writes "" where it has no rate
    funding = t.get("fundingRate", None if raw_funding == "" else raw_funding)
    next_time = t.get("fundingTimestamp", info.get("nextFundingTime"))
    next_rate = t.get("nextFundingRate", info.get("nextFundingRate"))
    return Ticker(
        symbol=t.get("symbol") or symbol,
        bid=_opt(t.get("bid"), f"{where}.bid"),
        ask=_opt(t.get("ask"), f"{where}.ask"),
        last=_opt(t.get("last"), f"{where}.last"),
        mark=_opt(t.get("markPrice"), f"{where}.markPrice"),
        index=_opt(t.get("indexPrice"), f"{where}.indexPrice"),
        timestamp=parse_time(t.get("timestamp"), f"{where}.timestamp"),
        funding_rate=_opt(funding, f"{where}.fundingRate"),
        next_funding_rate=_lenient(next_rate, _opt, f"{where}.nextFundingRate"),
        next_funding_time=_lenient(next_time, _ms_or_rfc3339, f"{where}.fundingTimestamp"),
    )


def parse_position(raw: Any, where: str) -> Position:
    p = _obj(raw, where)
    contracts = _opt(p.get("contracts"), f"{where}.contracts") or Decimal(0)
    side = p.get("side")
    if contracts != 0 and side not in ("long", "short"):
        raise SnapshotError(f"{where}.side: expected 'long' or 'short', got {side!r}")
    if contracts < 0:
        raise SnapshotError(f"{where}.contracts: expected a number >= 0 (the side says short), got {contracts}")
    return Position(
        symbol=_str(p.get("symbol"), f"{where}.symbol"),
        contracts=-contracts if side == "short" else contracts,
        entry_price=_opt(p.get("entryPrice"), f"{where}.entryPrice"),
        mark_price=_opt(p.get("markPrice"), f"{where}.markPrice"),
        unrealized_pnl=_opt(p.get("unrealizedPnl"), f"{where}.unrealizedPnl") or Decimal(0),
        liquidation_price=_opt(p.get("liquidationPrice"), f"{where}.liquidationPrice"),
        timestamp=parse_time(p.get("timestamp"), f"{where}.timestamp"),
    )


def parse_order(raw: Any, where: str) -> Order:
    o = _obj(raw, where)
    side = o.get("side")
    if side not in ("buy", "sell"):
        raise SnapshotError(f"{where}.side: expected 'buy' or 'sell', got {side!r}")
    amount = _num(o.get("amount"), f"{where}.amount")
    filled = _opt(o.get("filled"), f"{where}.filled")
    if filled is None:
        remaining = _opt(o.get("remaining"), f"{where}.remaining")
        filled = amount - remaining if remaining is not None else Decimal(0)
    return Order(
        id=str(o.get("id") or ""),
        client_id=str(o.get("clientOrderId") or ""),
        symbol=_str(o.get("symbol"), f"{where}.symbol"),
        side=side,
        amount=amount,
        filled=filled,
        price=_opt(o.get("price"), f"{where}.price"),
        status=str(o.get("status") or "open"),
        reduce_only=bool(o.get("reduceOnly")),
        timestamp=parse_time(o.get("timestamp"), f"{where}.timestamp"),
    )


def _fee(o: Mapping[str, Any], where: str) -> tuple[Decimal | None, str | None]:
    fee = o.get("fee")
    if isinstance(fee, Mapping) and fee.get("cost") is not None:
        currency = fee.get("currency")
        return _lenient(fee.get("cost"), _opt, f"{where}.fee.cost"), str(currency) if currency else None
    return None, None


def venue_order(raw: Any, where: str = "order") -> VenueOrder:
    """A ccxt order from the executor's calls → VenueOrder; the status mapped once (order_state.from_ccxt)."""
    base = parse_order(raw, where)
    o = _obj(raw, where)
    status = from_ccxt(str(o.get("status") or "open"), base.amount, base.filled)
    info = _info(o)
    why = info.get("rejectReason") or info.get("cancelType")
    reason = str(why)[:200] if why and why != "EC_NoError" and status in (OrderStatus.CANCELLED,
                                                                          OrderStatus.REJECTED) else None
    fee, fee_currency = _fee(o, where)
    return VenueOrder(
        id=base.id, client_id=base.client_id, symbol=base.symbol, side=base.side, amount=base.amount,
        filled=base.filled, price=base.price, average=_lenient(o.get("average"), _opt, f"{where}.average"),
        status=status, reduce_only=base.reduce_only, post_only=bool(o.get("postOnly")), fee=fee,
        fee_currency=fee_currency, reason=reason,
    )


def venue_trade(raw: Any, where: str = "trade") -> VenueTrade | None:
    """A ccxt trade → VenueTrade; None for one without id, amount or price (nothing to record)."""
    t = _obj(raw, where)
    amount = _lenient(t.get("amount"), _opt, f"{where}.amount")
    price = _lenient(t.get("price"), _opt, f"{where}.price")
    if amount is None or price is None or not t.get("id"):
        return None
    info = _info(t)
    fee, fee_currency = _fee(t, where)
    side = t.get("side")
    symbol = t.get("symbol")
    return VenueTrade(
        id=str(t["id"]), order_id=str(t.get("order") or ""),
        client_id=str(t.get("clientOrderId") or info.get("orderLinkId") or ""),  # bybit: in info only
        symbol=str(symbol) if symbol else None, side=str(side) if side else None, amount=amount, price=price,
        fee=fee, fee_currency=fee_currency, time=_lenient(t.get("timestamp"), parse_time, f"{where}.timestamp"),
    )


def parse_balance(raw: Any, where: str) -> tuple[dict[str, Decimal], datetime | None]:
    b = _obj(raw, where)
    totals: dict[str, Decimal] = {}
    total_map = b.get("total")
    if isinstance(total_map, Mapping):
        for coin, v in total_map.items():
            d = _opt(v, f"{where}.total.{coin}")
            if d is not None:
                totals[coin] = d
    for coin, v in b.items():
        if coin in ("info", "timestamp", "datetime", "free", "used", "total", "debt"):
            continue
        if isinstance(v, Mapping) and "total" in v:
            # checked even where `total` already names the coin: a snapshot whose two copies of a balance are
            # not both numbers is damaged, and nothing in it should be trusted
            d = _opt(v.get("total"), f"{where}.{coin}.total")
            if d is not None and coin not in totals:
                totals[coin] = d
    return totals, parse_time(b.get("timestamp"), f"{where}.timestamp")


def parse_venue(raw: Any, where: str) -> VenueState:
    v = _obj(raw, where)
    markets = {
        sym: parse_market(m, f"{where}.markets[{sym!r}]")
        for sym, m in _obj(v.get("markets", {}), f"{where}.markets").items()
    }
    tickers = {
        sym: parse_ticker(t, f"{where}.tickers[{sym!r}]", sym)
        for sym, t in _obj(v.get("tickers", {}), f"{where}.tickers").items()
    }
    balances, balance_time = parse_balance(v.get("balance", {}), f"{where}.balance")
    positions: dict[str, Position] = {}
    for i, p in enumerate(_list(v.get("positions", []), f"{where}.positions")):
        pos = parse_position(p, f"{where}.positions[{i}]")
        if pos.symbol in positions:
            # one-way mode: a second entry for the same symbol would be hedge mode, which we refuse
            raise SnapshotError(f"{where}.positions[{i}]: second position for {pos.symbol} (hedge mode?)")
        positions[pos.symbol] = pos
    orders = tuple(
        parse_order(o, f"{where}.open_orders[{i}]")
        for i, o in enumerate(_list(v.get("open_orders", []), f"{where}.open_orders"))
    )
    return VenueState(
        markets=markets,
        tickers=tickers,
        balances=balances,
        balance_time=balance_time,
        positions=positions,
        open_orders=orders,
    )


def parse_snapshot(data: Any) -> Snapshot:
    d = _obj(data, "snapshot")
    if d.get("version") != VERSION:
        raise SnapshotError(f"version: expected {VERSION}, got {d.get('version')!r}")
    time = parse_time(d.get("time"), "time")
    if time is None:
        raise SnapshotError("time: expected an RFC 3339 time, got nothing")
    venues = {
        name: parse_venue(v, f"venues.{name}") for name, v in _obj(d.get("venues"), "venues").items()
    }
    unavailable = {str(name): _str(why, f"unavailable.{name}")
                   for name, why in _obj(d.get("unavailable", {}), "unavailable").items()}
    return Snapshot(time=time, venues=venues, unavailable=unavailable)


MAX_BYTES = 64 * 1024 * 1024  # a snapshot of many venues is a few megabytes
MAX_DEPTH = 32  # ccxt structures nest about 6 deep (venue, markets, market, limits, …)


def load_json(text: str | bytes) -> Any:
    """A snapshot file's JSON, size- and depth-bounded before parsing; one-line SnapshotError otherwise."""
    try:
        return boundedjson.loads(text, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH)
    except boundedjson.JsonInputError as exc:
        raise SnapshotError(str(exc)) from None


def load_snapshot(text: str | bytes) -> Snapshot:
    return parse_snapshot(load_json(text))


# --- the other way: model types → snapshot v1, for recording what the keeper decided on -------------------


def _num_out(d: Decimal | None) -> str | None:
    return None if d is None else str(d)


def _time_out(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat()


def dump_market(m: Market) -> dict[str, Any]:
    out: dict[str, Any] = {
        "symbol": m.symbol, "base": m.base, "quote": m.quote, "settle": m.settle,
        "type": "spot" if m.kind == "spot" else "swap", "spot": m.kind == "spot",
        "linear": m.kind == "linear", "inverse": m.kind == "inverse", "contractSize": str(m.contract_size),
        "precision": {"amount": str(m.lot), "price": str(m.tick)}, "limits": {"amount": {"min": str(m.min_amount)}},
    }
    if m.funding_interval_hours is not None:  # not `info`: the audit store never keeps ccxt's raw blobs
        out["fundingIntervalHours"] = str(m.funding_interval_hours)
    return out


def dump_ticker(t: Ticker) -> dict[str, Any]:
    return {"symbol": t.symbol, "bid": _num_out(t.bid), "ask": _num_out(t.ask), "last": _num_out(t.last),
            "markPrice": _num_out(t.mark), "indexPrice": _num_out(t.index), "timestamp": _time_out(t.timestamp),
            "fundingRate": _num_out(t.funding_rate), "nextFundingRate": _num_out(t.next_funding_rate),
            "fundingTimestamp": _time_out(t.next_funding_time)}


def dump_position(p: Position) -> dict[str, Any]:
    return {"symbol": p.symbol, "contracts": str(abs(p.contracts)), "side": "short" if p.contracts < 0 else "long",
            "entryPrice": _num_out(p.entry_price), "markPrice": _num_out(p.mark_price),
            "unrealizedPnl": str(p.unrealized_pnl), "liquidationPrice": _num_out(p.liquidation_price),
            "timestamp": _time_out(p.timestamp)}


def dump_order(o: Order) -> dict[str, Any]:
    return {"id": o.id, "clientOrderId": o.client_id, "symbol": o.symbol, "side": o.side, "amount": str(o.amount),
            "filled": str(o.filled), "price": _num_out(o.price), "status": o.status, "reduceOnly": o.reduce_only,
            "timestamp": _time_out(o.timestamp)}


def dump_venue(v: VenueState) -> dict[str, Any]:
    return {
        "markets": {s: dump_market(m) for s, m in v.markets.items()},
        "tickers": {s: dump_ticker(t) for s, t in v.tickers.items()},
        "balance": {"timestamp": _time_out(v.balance_time), "total": {c: str(d) for c, d in v.balances.items()}},
        "positions": [dump_position(p) for p in v.positions.values()],
        "open_orders": [dump_order(o) for o in v.open_orders],
    }


def dump_snapshot(s: Snapshot) -> dict[str, Any]:
    """Snapshot v1 of exactly what the core read (the fields it uses; numbers as exact strings):
    `parse_snapshot(dump_snapshot(s)) == s`."""
    out: dict[str, Any] = {"version": VERSION, "time": _time_out(s.time),
                           "venues": {n: dump_venue(v) for n, v in s.venues.items()}}
    if s.unavailable:
        out["unavailable"] = dict(s.unavailable)
    return out
