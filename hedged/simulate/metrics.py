"""What a scenario cost and what it protected, from its per-step series and the engine's executions.

Floats: these are report figures computed from the engine's exact Decimal accounting, not accounting.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SECONDS_PER_YEAR = 365.0 * 86400
# How people see a scenario's summary (CLI table, HTML report): label, key, format, scale
ROWS: tuple[tuple[str, str, str, float], ...] = (
    ("orders placed", "orders", "{:,.0f}", 1), ("fills", "fills", "{:,.0f}", 1),
    ("cancelled unfilled", "cancelled_unfilled", "{:,.0f}", 1), ("fees, USD", "fees_usd", "{:,.2f}", 1),
    ("funding received, USD", "funding_usd", "{:,.2f}", 1), ("spread crossed, USD", "spread_usd", "{:,.2f}", 1),
    ("total cost, USD", "cost_usd", "{:,.2f}", 1), ("cost, %/yr of notional", "cost_pct_per_year", "{:.3f}", 1),
    ("hedge effectiveness", "hedge_effectiveness", "{:.6f}", 1), ("max |drift|/target, %", "max_drift", "{:.3f}", 100),
    ("mean |drift|/target, %", "mean_drift", "{:.3f}", 100), ("time outside band, %", "time_outside_band_pct",
                                                                "{:.2f}", 1),
    ("worst day, USD", "worst_day_usd", "{:,.0f}", 1), ("start, USD", "start_usd", "{:,.0f}", 1),
    ("final, USD", "final_usd", "{:,.0f}", 1),
)


@dataclass
class Series:
    """One value per step (index 0 = start). USD unless named otherwise; cumulative where it says cum.

    Each step is recorded as the rule found it when it decided (before that step's orders), with values and
    costs as they stand after them.
    """

    t: list[float] = field(default_factory=list)  # seconds since start
    price: list[float] = field(default_factory=list)  # the first instrument's mark
    value_usd: list[float] = field(default_factory=list)  # portfolio: the account's coins + uPnL, off-exchange
    deposits_usd: list[float] = field(default_factory=list)  # cum, valued when they arrived
    hedge_usd: list[float] = field(default_factory=list)
    target_usd: list[float] = field(default_factory=list)
    band_usd: list[float] = field(default_factory=list)
    drift: list[float] = field(default_factory=list)  # |D| / |T|
    outside: list[bool] = field(default_factory=list)
    fees_usd: list[float] = field(default_factory=list)  # cum
    funding_usd: list[float] = field(default_factory=list)  # cum, received positive
    funding_rate: list[float] = field(default_factory=list)


@dataclass
class OrderRow:
    t: float
    venue: str
    symbol: str
    side: str
    amount: float
    price: float
    status: str = "open"  # filled | cancelled | partially_filled | rejected | open
    filled: float = 0.0
    reason: str = ""


def variance(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = sum(xs) / len(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def sampled(series: Series, every_s: float) -> list[float]:
    """Portfolio value net of deposits, at every multiple of `every_s` (daily values by default)."""
    out: list[float] = []
    nxt = 0.0
    for t, v, d in zip(series.t, series.value_usd, series.deposits_usd, strict=True):
        if t + 1e-9 >= nxt:
            out.append(v - d)
            nxt += every_s
    return out


def diffs(xs: Sequence[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(xs)]


def sampling_interval(series: Series, step_s: float) -> float:
    """Daily when the path has at least three days, else per step (short test paths)."""
    return 86400.0 if series.t and series.t[-1] >= 3 * 86400 else step_s


def effectiveness(hedged: Series, unhedged: Series, every_s: float) -> float | None:
    """Ederington: 1 − Var(Δ hedged) / Var(Δ unhedged), on values sampled every `every_s`."""
    vu = variance(diffs(sampled(unhedged, every_s)))
    if vu <= 0:
        return None
    return 1 - variance(diffs(sampled(hedged, every_s))) / vu


def r_squared(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Squared correlation of two equally long series."""
    if len(xs) < 3:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy * sxy / (sxx * syy) if sxx > 0 and syy > 0 else None


def summary(rule: str, series: Series, orders: list[OrderRow], fills: int, spread_usd: float, unhedged: Series,
            step_s: float) -> dict[str, Any]:
    every = sampling_interval(series, step_s)
    years = series.t[-1] / SECONDS_PER_YEAR if series.t and series.t[-1] > 0 else 0.0
    fees = series.fees_usd[-1] if series.fees_usd else 0.0
    funding = series.funding_usd[-1] if series.funding_usd else 0.0
    cost = fees - funding + spread_usd
    notional = sum(abs(h) for h in series.hedge_usd) / len(series.hedge_usd) if series.hedge_usd else 0.0
    days = diffs(sampled(series, every))
    steps_out = sum(1 for o in series.outside[1:] if o)
    he = effectiveness(series, unhedged, every) if rule != "unhedged" else 0.0
    return {
        "rule": rule,
        "orders": len(orders),
        "fills": fills,
        "cancelled_unfilled": sum(1 for o in orders if o.status == "cancelled" and o.filled == 0),
        "rejected": sum(1 for o in orders if o.status == "rejected"),
        "fees_usd": round(fees, 6),
        "funding_usd": round(funding, 6),
        "spread_usd": round(spread_usd, 6),
        "cost_usd": round(cost, 6),
        "hedged_notional_usd": round(notional, 2),
        "cost_pct_per_year": round(cost / notional / years * 100, 6) if notional > 0 and years > 0 else 0.0,
        "hedge_effectiveness": round(he, 8) if he is not None else None,
        "he_interval_s": every,
        "max_drift": round(max(series.drift[1:], default=0.0), 8),
        "mean_drift": round(sum(series.drift[1:]) / max(1, len(series.drift) - 1), 8),
        "worst_day_usd": round(min(days, default=0.0), 2),
        "start_usd": round(series.value_usd[0], 2),
        "final_usd": round(series.value_usd[-1], 2),
        "deposits_usd": round(series.deposits_usd[-1], 2),
        "steps": len(series.t) - 1,
        "time_outside_band_pct": round(steps_out / max(1, len(series.t) - 1) * 100, 4),
    }


def finite(x: float) -> bool:
    return math.isfinite(x)
