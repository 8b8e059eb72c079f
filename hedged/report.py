"""Plans and decisions as the JSON object of `hedged plan --json`, and as a rich table for people."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from rich.table import Table

from hedged.model import GuardResult, Plan

COIN_PLACES = Decimal("1e-12")


def number(d: Decimal) -> Decimal:
    """Quantize for output (12 places is far below any lot) and drop trailing zeros."""
    q = d.quantize(COIN_PLACES) if d.adjusted() < 15 else d
    return q.normalize() if q != 0 else Decimal(0)


def plan_json(plan: Plan, result: GuardResult) -> dict[str, Any]:
    """Exactly the `hedged plan --json` object (docs/snapshot.md)."""
    return {
        "instruments": [
            {
                "venue": d.plan.venue,
                "symbol": d.plan.symbol,
                "hedge": number(d.plan.hedge),
                "inflight": number(d.plan.inflight),
                "target": number(d.plan.target),
                "drift": number(d.plan.drift),
                "mark": number(d.plan.mark),
                "band": number(d.plan.band),
                "action": d.action,
                "reasons": [str(r) for r in d.reasons],
            }
            for d in result.decisions
        ],
        "hedges": [
            {
                "asset": h.asset,
                "instrument": h.instrument,
                "exposure": number(h.exposure),
                "price": number(h.price),
                "ratio": number(h.ratio),
                "target": number(h.target),
            }
            for h in plan.hedges
        ],
        "orders": [
            {
                "venue": o.venue,
                "symbol": o.symbol,
                "side": o.side,
                "amount": number(o.amount),
                "price": number(o.price),
                "reduce_only": o.reduce_only,
                "post_only": o.post_only,
                "client_id": o.client_id,
            }
            for o in result.orders
        ],
        "cancels": [
            {"venue": c.venue, "symbol": c.symbol, "client_id": c.client_id, "reason": str(c.reason)}
            for c in result.cancels
        ],
    }


def dumps(value: Any) -> str:
    """JSON with Decimals written as exact JSON numbers (never floats, never strings)."""
    import json

    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def plan_table(plan: Plan, result: GuardResult) -> list[Table]:
    """Three tables: instruments (with the decision), hedge entries, and the orders it would send."""
    inst = Table(title="Instruments (coins of the instrument's base; short is negative)", title_justify="left")
    for col in ("instrument", "hedge", "in-flight", "target", "drift", "band", "mark", "action"):
        inst.add_column(col, justify="left" if col in ("instrument", "action") else "right")
    colours = {"trade": "green", "hold": "dim", "blocked": "red"}
    notes: list[str] = []
    one_venue = len({x.plan.venue for x in result.decisions}) == 1
    for d in result.decisions:
        p = d.plan
        inst.add_row(
            p.symbol if one_venue else f"{p.venue} {p.symbol}",
            *(_f(x) for x in (p.hedge, p.inflight, p.target, p.drift, p.band, p.mark)),
            f"[{colours[d.action]}]{d.action}[/]",
        )
        notes.extend(f"{p.venue} {p.symbol}: {r}" for r in d.reasons)
    inst.caption = "\n".join(notes) or None
    inst.caption_justify = "left"
    hedges = Table(title="Hedges", title_justify="left")
    for col in ("asset", "instrument", "exposure", "price", "ratio", "target"):
        hedges.add_column(col, justify="left" if col in ("asset", "instrument") else "right")
    for h in plan.hedges:
        hedges.add_row(h.asset, h.instrument, _f(h.exposure), _f(h.price), _f(h.ratio), _f(h.target))
    orders = Table(title="Orders", title_justify="left")
    for col in ("instrument", "side", "contracts", "price", "flags", "client id"):
        orders.add_column(col, justify="right" if col in ("contracts", "price") else "left")
    for o in result.orders:
        flags = ",".join(f for f, on in (("post-only", o.post_only), ("reduce-only", o.reduce_only)) if on)
        orders.add_row(f"{o.venue} {o.symbol}", o.side, _f(o.amount), _f(o.price), flags, o.client_id)
    if not result.orders:
        orders.caption = "no orders"
    return [inst, hedges, orders]


def _f(d: Decimal) -> str:
    n = number(d)
    return f"{n:,.4f}".rstrip("0").rstrip(".") if n != n.to_integral_value() else f"{n:,.0f}"
