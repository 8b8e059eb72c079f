"""Bybit's position/closed-pnl and account/transaction-log, from the engine's own records (executions with
the entry and realised PnL of each closing fill and the wallet balance after it; deposits/withdrawals).

Shapes follow ccxt's recorded real Bybit responses (the samples in ccxt's bybit fetch_positions_history and
fetch_ledger). One simplification (docs/emulator.md): closedPnl is the closed quantity's realised PnL less
the fees of the closing fills; the engine does not attribute opening fees to the contracts later closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hedged.sim.engine import Engine, Transfer
from hedged.sim.instruments import ZERO, Category
from hedged.sim.orders import Execution
from hedged.sim.views import fmt


@dataclass
class _Closing:
    """The closing fills of one order, summed."""

    first: Execution
    last: Execution
    closed: Decimal = ZERO
    entry_value: Decimal = ZERO
    exit_value: Decimal = ZERO
    entry_inv: Decimal = ZERO  # Σ closed/entry (inverse: harmonic averages)
    exit_inv: Decimal = ZERO
    pnl: Decimal = ZERO
    fills: int = 0


def closed_pnl(engine: Engine, api_key: str, category: str, symbol: str | None, start: int | None,
               end: int | None) -> list[dict[str, Any]]:
    """One row per order that reduced a position, newest first (by its last closing fill)."""
    groups: dict[str, _Closing] = {}
    for ex in engine.executions:
        inst = ex.instrument
        if (ex.api_key != api_key or ex.exec_type != "Trade" or ex.closed_size <= 0
                or inst.category.value != category or (symbol and inst.id != symbol)):
            continue
        g = groups.setdefault(ex.order_id, _Closing(first=ex, last=ex))
        g.last = ex
        g.closed += ex.closed_size
        g.entry_value += inst.value(ex.closed_size, ex.entry_price)
        g.exit_value += inst.value(ex.closed_size, ex.price)
        g.entry_inv += ex.closed_size / ex.entry_price
        g.exit_inv += ex.closed_size / ex.price
        g.pnl += ex.realised - ex.fee * ex.closed_size / ex.qty  # the closing share of this fill's fee
        g.fills += 1
    acct = engine.account(api_key)
    rows = []
    for g in sorted(groups.values(), key=lambda g: g.last.time_ms, reverse=True):
        if (start is not None and g.last.time_ms < start) or (end is not None and g.last.time_ms > end):
            continue
        inst = g.last.instrument
        order = engine.orders_by_id.get(g.last.order_id)
        avg_entry = g.closed / g.entry_inv if inst.inverse else g.entry_value / g.closed
        avg_exit = g.closed / g.exit_inv if inst.inverse else g.exit_value / g.closed
        rows.append({
            "symbol": inst.id, "orderType": g.last.order_type, "leverage": fmt(engine.leverage_of(acct, inst)),
            "updatedTime": str(g.last.time_ms), "side": g.last.side, "orderId": g.last.order_id,
            "closedPnl": fmt(g.pnl), "avgEntryPrice": fmt(inst.round_price(avg_entry)),
            "qty": fmt(order.qty if order is not None else g.closed), "cumEntryValue": fmt(g.entry_value),
            "createdTime": str(order.created_ms if order is not None else g.first.time_ms),
            "orderPrice": fmt(g.last.order_price), "closedSize": fmt(g.closed),
            "avgExitPrice": fmt(inst.round_price(avg_exit)), "execType": "Trade", "fillCount": str(g.fills),
            "cumExitValue": fmt(g.exit_value),
        })
    return rows


def _trade_rows(ex: Execution) -> list[dict[str, Any]]:
    """A fill moves the settle coin (contracts) or both coins of a spot pair; funding moves the settle coin."""
    inst = ex.instrument
    common = {"symbol": inst.id, "side": ex.side, "orderLinkId": ex.client_id, "orderId": ex.order_id,
              "transactionTime": str(ex.time_ms), "feeRate": fmt(ex.fee_rate), "size": fmt(ex.qty),
              "qty": fmt(ex.qty), "category": inst.category.value, "tradePrice": fmt(ex.price), "tradeId": ex.exec_id,
              "funding": "", "bonusChange": ""}
    if ex.exec_type == "Funding":
        coin = next(iter(ex.balances_after))
        return [{**common, "orderId": "", "type": "SETTLEMENT", "funding": fmt(-ex.fee), "fee": "0",
                 "change": fmt(-ex.fee), "cashFlow": "0", "cashBalance": fmt(ex.balances_after[coin]),
                 "currency": coin, "size": fmt(ex.qty if ex.side == "Buy" else -ex.qty)}]
    if inst.category is not Category.SPOT:
        coin = next(iter(ex.balances_after))
        return [{**common, "type": "TRADE", "fee": fmt(ex.fee), "change": fmt(ex.realised - ex.fee),
                 "cashFlow": fmt(ex.realised), "cashBalance": fmt(ex.balances_after[coin]), "currency": coin}]
    buy = ex.side == "Buy"  # a spot buy pays quote and gets base less the fee; a sell the reverse
    moves = {inst.base: (ex.qty if buy else -ex.qty, ex.fee if buy else ZERO),
             inst.quote: (-ex.value if buy else ex.value, ZERO if buy else ex.fee)}
    return [{**common, "type": "TRADE", "fee": fmt(fee), "change": fmt(flow - fee), "cashFlow": fmt(flow),
             "cashBalance": fmt(ex.balances_after.get(coin, ZERO)), "currency": coin}
            for coin, (flow, fee) in moves.items()]


def _transfer_row(t: Transfer) -> dict[str, Any]:
    return {"symbol": "", "side": "None", "funding": "", "orderLinkId": "", "orderId": "", "fee": "0",
            "change": fmt(t.delta), "cashFlow": fmt(t.delta), "transactionTime": str(t.time_ms),
            "type": "TRANSFER_IN" if t.delta > 0 else "TRANSFER_OUT", "feeRate": "", "bonusChange": "",
            "size": "0", "qty": "0", "cashBalance": fmt(t.after), "currency": t.coin, "category": "",
            "tradePrice": "", "tradeId": t.transfer_id}


def transaction_log(engine: Engine, api_key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every balance change of the account, newest first, filtered as Bybit's query parameters say."""
    rows: list[tuple[str, dict[str, Any]]] = []  # (base coin or "", row)
    for ex in engine.executions:
        if ex.api_key == api_key:
            rows.extend((ex.instrument.base, r) for r in _trade_rows(ex))
    rows.extend(("", _transfer_row(t)) for t in engine.transfers if t.api_key == api_key)
    cat, coin, base, kind = (params.get(k) for k in ("category", "currency", "baseCoin", "type"))
    start, end = params.get("startTime"), params.get("endTime")
    out = []
    for row_base, r in rows:
        t = int(r["transactionTime"])
        if (cat and r["category"] != cat) or (coin and r["currency"] != coin) or (kind and r["type"] != kind):
            continue
        if (base and row_base != base) or (start and t < int(start)) or (end and t > int(end)):
            continue
        out.append(r)
    out.reverse()  # newest first; rows of one instant stay newest first too (the sort below is stable)
    out.sort(key=lambda r: int(r["transactionTime"]), reverse=True)
    return out
