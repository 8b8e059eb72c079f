"""The order state machine, row by row: every (from, to) pair is legal, stale, or illegal, as the table says."""

from __future__ import annotations

import json
from decimal import Decimal
from itertools import product

import pytest

from hedged.model import KeeperContext, OurOrder, RecentOrder, TradingState
from hedged.order_state import TRANSITIONS, IllegalTransition, OrderStatus, advance, from_ccxt
from hedged.replay import CycleInputs, dump_inputs, parse_inputs
from hedged.snapshot import SnapshotError, dump_snapshot, parse_snapshot

from .factory import T0, inverse_market, position, snapshot, spot_market, ticker, venue

S = OrderStatus
LEGAL = {
    S.INTENT: {S.SENT, S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED, S.LOST},
    S.SENT: {S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED, S.LOST},
    S.OPEN: {S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED, S.LOST},
    S.PARTIALLY_FILLED: {S.FILLED, S.CANCELLED, S.LOST},
    S.LOST: {S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED},  # found again
    S.FILLED: set(), S.CANCELLED: set(), S.REJECTED: set(),
}
STALE = {  # an older view than what we know: changes nothing
    S.SENT: {S.INTENT},
    S.OPEN: {S.INTENT, S.SENT},
    S.PARTIALLY_FILLED: {S.INTENT, S.SENT, S.OPEN},
    S.LOST: {S.INTENT},
    **{t: {S.INTENT, S.SENT, S.OPEN, S.PARTIALLY_FILLED, S.LOST} for t in (S.FILLED, S.CANCELLED, S.REJECTED)},
}


@pytest.mark.parametrize(("cur", "new"), list(product(S, S)))
def test_every_pair(cur: OrderStatus, new: OrderStatus) -> None:
    if cur == new or new in LEGAL[cur]:
        assert advance(cur, new) is new
        assert cur == new or (cur, new) in TRANSITIONS
    elif new in STALE.get(cur, set()):
        assert advance(cur, new) is cur
    else:
        with pytest.raises(IllegalTransition, match=f"from {cur.value} to {new.value}"):
            advance(cur, new)


def test_the_table_is_exactly_the_legal_rows() -> None:
    assert {(a, b) for a, bs in LEGAL.items() for b in bs} == set(TRANSITIONS)


@pytest.mark.parametrize(("status", "amount", "filled", "ours"), [
    ("open", "10", "0", S.OPEN), (None, "10", None, S.OPEN), ("open", "10", "4", S.PARTIALLY_FILLED),
    ("closed", "10", "10", S.FILLED), ("closed", "513641", "440000", S.CANCELLED),  # PartiallyFilledCanceled
    ("canceled", "10", "4", S.CANCELLED), ("cancelled", "10", "0", S.CANCELLED), ("expired", "10", "0", S.CANCELLED),
    ("rejected", "10", "0", S.REJECTED),
])
def test_ccxt_statuses_map_once(status: str | None, amount: str, filled: str | None, ours: OrderStatus) -> None:
    assert from_ccxt(status, Decimal(amount), Decimal(filled) if filled is not None else None) is ours


def test_a_recorded_cycle_round_trips_exactly() -> None:
    raw = snapshot({"bybit": venue([inverse_market("BTC"), spot_market("SOL")],
                                   [ticker("BTC/USD:BTC", 65000), ticker("SOL/USDT", 150, tick="0.01")],
                                   {"BTC": "10.5", "SOL": 100},
                                   [position("BTC/USD:BTC", -650000, 65000, 65000, "0.01")],
                                   [{"id": "1", "clientOrderId": "main_a-0", "symbol": "BTC/USD:BTC", "side": "sell",
                                     "amount": 3000, "filled": 1000, "price": "65000.5", "status": "open"}])})
    snap = parse_snapshot(raw)
    assert parse_snapshot(json.loads(json.dumps(dump_snapshot(snap)))) == snap
    inputs = CycleInputs(
        snap, TradingState.REDUCING, (RecentOrder(T0, Decimal("123.45")),), {("bybit", "BTC/USD:BTC"): Decimal(64000)},
        "abc01", KeeperContext((OurOrder("bybit", "BTC/USD:BTC", "main_a-0", S.SENT, "sell", Decimal(3000),
                                         Decimal(0), T0, Decimal("65000.5")),),
                               frozenset({("bybit", "BTC/USD:BTC")}), {("bybit", "BTC/USD:BTC"): 2}))
    assert parse_inputs(json.loads(json.dumps(dump_inputs(inputs)))) == inputs


@pytest.mark.parametrize(("keeper", "message"), [
    ({"state": "FAST"}, "keeper.state: expected one of"),
    ({"orders": [{"venue": "bybit", "symbol": "X", "client_id": "c", "status": "open", "side": "up"}]},
     "keeper.orders[0].side"),
    ({"orders": [{"venue": "bybit", "symbol": "X", "client_id": "c", "status": "maybe", "side": "buy"}]},
     "keeper.orders[0].status"),
    ({"reprices": [["bybit", "X", -1]]}, "keeper.reprices[0][2]: expected a whole number"),
    ({"touched": "all"}, "keeper.touched: expected a list"),
])
def test_a_bad_keeper_section_is_one_line_naming_the_field(keeper: dict[str, object], message: str) -> None:
    raw = {**snapshot({"bybit": venue([inverse_market("BTC")], [ticker("BTC/USD:BTC", 65000)], {"BTC": 1})}),
           "keeper": keeper}
    with pytest.raises(SnapshotError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_inputs(raw)
