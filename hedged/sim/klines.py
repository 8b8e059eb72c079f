"""Candles from the engine's own price history (every price an instrument or index took, with its time):
what Bybit's kline, mark-price-kline and index-price-kline answer. Nothing before the exchange started."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from decimal import Decimal

from hedged.sim.engine import EngineError
from hedged.sim.orders import Execution

INTERVALS_MS = {**{str(m): m * 60_000 for m in (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)},
                "D": 86_400_000, "W": 7 * 86_400_000}

Candle = tuple[int, Decimal, Decimal, Decimal, Decimal]


def interval_ms(raw: str) -> int:
    ms = INTERVALS_MS.get(raw)
    if ms is None:
        raise EngineError(10001, f"params error: interval {raw!r} invalid, expected one of {', '.join(INTERVALS_MS)}")
    return ms


def candles(history: Sequence[tuple[int, Decimal]], step: int, start: int | None, end: int, limit: int,
            first_ms: int) -> list[Candle]:
    """(start, open, high, low, close) per bucket of `step` ms, newest first, from `history` (ascending)."""
    times = [t for t, _ in history]
    out: list[Candle] = []
    bucket = end // step * step
    lowest = max(first_ms // step * step, (start // step * step) if start is not None else 0)
    while bucket >= lowest and len(out) < limit:
        i = bisect_right(times, bucket) - 1  # the price in force when the bucket opened
        j = bisect_right(times, bucket + step - 1)
        inside = [p for _, p in history[max(i, 0):j]]
        if inside:
            out.append((bucket, inside[0], max(inside), min(inside), inside[-1]))
        bucket -= step
    return out


def volume(executions: Sequence[Execution], symbol: str, bucket: int, step: int) -> tuple[Decimal, Decimal]:
    """(quantity, value) traded on `symbol` in the bucket."""
    qty = value = Decimal(0)
    for e in executions:
        if e.exec_type == "Trade" and e.instrument.symbol == symbol and bucket <= e.time_ms < bucket + step:
            qty += e.qty
            value += e.value
    return qty, value
