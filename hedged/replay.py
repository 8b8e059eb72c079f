"""The `keeper` section of a snapshot: what the keeper knew beyond the exchange when it decided.

The keeper records it with the snapshot of every cycle that was not quiet (an order wanted, or ours in
flight); `hedged plan --snapshot` reads it back, so the recorded decision replays exactly: same trading
state, order history (rate and turnover caps), previous marks (price-jump filter), client-id tag, and our
own orders (hold-back rules). See docs/snapshot.md, "The keeper section".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hedged.model import KeeperContext, OurOrder, RecentOrder, Snapshot, TradingState
from hedged.order_state import OrderStatus
from hedged.snapshot import SnapshotError, dump_snapshot, load_json, parse_snapshot, parse_time, to_decimal

# Every key a recorded CycleInputs uses, for the audit store's allow-list (venue names come on top).
RECORD_KEYS = frozenset("""
    version time venues markets tickers balance positions open_orders symbol base quote settle type spot linear
    inverse contractSize precision limits min amount price fundingIntervalHours bid ask last markPrice indexPrice
    timestamp fundingRate nextFundingRate fundingTimestamp contracts side entryPrice unrealizedPnl
    liquidationPrice id clientOrderId filled status reduceOnly total keeper state tag recent previous_marks
    orders venue client_id created_at touched reprices refused inputs unavailable
""".split())  # noqa: SIM905 (a word list reads better)


@dataclass(frozen=True)
class CycleInputs:
    """Everything one decision rests on; `decide(config, **inputs.kwargs())` makes it again."""

    snapshot: Snapshot
    state: TradingState = TradingState.RUNNING
    recent: tuple[RecentOrder, ...] = ()
    previous_marks: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)
    tag: str | None = None
    context: KeeperContext = field(default_factory=KeeperContext)


def dump_inputs(i: CycleInputs) -> dict[str, Any]:
    ctx = i.context
    return {**dump_snapshot(i.snapshot), "keeper": {
        "state": i.state.value,
        "tag": i.tag,
        "recent": [[r.time.isoformat(), str(r.notional_usd)] for r in i.recent],
        "previous_marks": [[v, s, str(m)] for (v, s), m in i.previous_marks.items()],
        "orders": [{"venue": o.venue, "symbol": o.symbol, "client_id": o.client_id, "status": o.status.value,
                    "side": o.side, "amount": str(o.amount), "filled": str(o.filled),
                    "created_at": o.created_at.isoformat(),
                    "price": None if o.price is None else str(o.price)} for o in ctx.orders],
        "touched": sorted([v, s] for v, s in ctx.touched),
        "reprices": [[v, s, n] for (v, s), n in ctx.reprices.items()],
        "refused": [[v, s, why] for (v, s), why in ctx.refused.items()],
    }}


def load_inputs(text: str | bytes) -> CycleInputs:
    """A snapshot file with its optional keeper section (bounded like `snapshot.load_snapshot`)."""
    return parse_inputs(load_json(text))


def parse_inputs(data: Any) -> CycleInputs:
    """A snapshot, with its optional `keeper` section; one-line SnapshotError naming the bad field."""
    snap = parse_snapshot(data)
    k = data.get("keeper") if isinstance(data, Mapping) else None
    if k is None:
        return CycleInputs(snap)
    if not isinstance(k, Mapping):
        raise SnapshotError("keeper: expected an object")
    try:
        state = TradingState(k.get("state", "RUNNING"))
    except ValueError:
        raise SnapshotError(f"keeper.state: expected one of {', '.join(TradingState)}") from None
    tag = k.get("tag")
    if tag is not None and not isinstance(tag, str):
        raise SnapshotError("keeper.tag: expected a string")
    return CycleInputs(
        snapshot=snap, state=state, tag=tag,
        recent=tuple(RecentOrder(_time(r, 0, f"keeper.recent[{n}]"), _dec(r, 1, f"keeper.recent[{n}]"))
                     for n, r in enumerate(_rows(k, "recent", 2))),
        previous_marks={(_s(r, 0, f"keeper.previous_marks[{n}]"), _s(r, 1, f"keeper.previous_marks[{n}]")):
                        _dec(r, 2, f"keeper.previous_marks[{n}]") for n, r in enumerate(_rows(k, "previous_marks", 3))},
        context=KeeperContext(
            orders=tuple(_order(o, f"keeper.orders[{n}]") for n, o in enumerate(_list(k, "orders"))),
            touched=frozenset((_s(r, 0, f"keeper.touched[{n}]"), _s(r, 1, f"keeper.touched[{n}]"))
                              for n, r in enumerate(_rows(k, "touched", 2))),
            reprices={(_s(r, 0, f"keeper.reprices[{n}]"), _s(r, 1, f"keeper.reprices[{n}]")):
                      _int(r, 2, f"keeper.reprices[{n}]") for n, r in enumerate(_rows(k, "reprices", 3))},
            refused={(_s(r, 0, f"keeper.refused[{n}]"), _s(r, 1, f"keeper.refused[{n}]")):
                     _s(r, 2, f"keeper.refused[{n}]") for n, r in enumerate(_rows(k, "refused", 3))},
        ),
    )


def _list(k: Mapping[str, Any], key: str) -> list[Any]:
    v = k.get(key, [])
    if not isinstance(v, list):
        raise SnapshotError(f"keeper.{key}: expected a list")
    return v


def _rows(k: Mapping[str, Any], key: str, width: int) -> list[list[Any]]:
    rows = _list(k, key)
    for n, r in enumerate(rows):
        if not isinstance(r, list) or len(r) != width:
            raise SnapshotError(f"keeper.{key}[{n}]: expected a list of {width} items")
    return rows


def _s(r: list[Any], i: int, where: str) -> str:
    if not isinstance(r[i], str) or not r[i]:
        raise SnapshotError(f"{where}[{i}]: expected a non-empty string")
    return str(r[i])


def _dec(r: list[Any] | Mapping[str, Any], i: int | str, where: str) -> Decimal:
    d = to_decimal(r[i], f"{where}[{i}]")  # type: ignore[index]
    assert d is not None
    return d


def _int(r: list[Any], i: int, where: str) -> int:
    if not isinstance(r[i], int) or isinstance(r[i], bool) or r[i] < 0:
        raise SnapshotError(f"{where}[{i}]: expected a whole number >= 0")
    return int(r[i])


def _time(r: list[Any] | Mapping[str, Any], i: int | str, where: str) -> Any:
    t = parse_time(r[i], f"{where}[{i}]")  # type: ignore[index]
    if t is None:
        raise SnapshotError(f"{where}[{i}]: expected a time")
    return t


def _order(o: Any, where: str) -> OurOrder:
    if not isinstance(o, Mapping):
        raise SnapshotError(f"{where}: expected an object")
    try:
        status = OrderStatus(str(o.get("status")))
    except ValueError:
        raise SnapshotError(f"{where}.status: expected one of {', '.join(OrderStatus)}") from None
    side = o.get("side")
    if side not in ("buy", "sell"):
        raise SnapshotError(f"{where}.side: expected 'buy' or 'sell'")
    names = {}
    for key in ("venue", "symbol", "client_id"):
        if not isinstance(o.get(key), str) or not o[key]:
            raise SnapshotError(f"{where}.{key}: expected a non-empty string")
        names[key] = o[key]
    return OurOrder(venue=names["venue"], symbol=names["symbol"], client_id=names["client_id"], status=status,
                    side=side, amount=_dec(o, "amount", where), filled=_dec(o, "filled", where),
                    created_at=_time(o, "created_at", where),
                    price=None if o.get("price") is None else _dec(o, "price", where))
