"""`hedged report --config FILE`: what a live (or demo) keeper's hedge did and cost, from its audit store.

Reads the store (read-only): every cycle row (exposure, hedge, target, band, drift, mark, funding rate per
instrument), our orders and their fills, and draws the same figures as a simulation. Two quantities are not
in the store and are estimated, and labelled so: funding (−hedge × mark × rate at each funding time the
cycles pass, every 8 hours) and, for linear hedges, the hedge's PnL (Σ hedge × Δmark between cycles) in the
portfolio value; inverse PnL is already in the exposure. "Unhedged" is the first cycle's coins at each
later price.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from hedged.audit.models import Cycle, Fill, Order
from hedged.audit.store import AuditStore, CycleRecord, FillRecord, OrderRecord
from hedged.simulate.metrics import OrderRow, Series, summary
from hedged.simulate.output import RunData

FUNDING_EVERY_S = 8 * 3600
STABLE = frozenset({"USD", "USDT", "USDC"})


class AuditReportError(ValueError):
    """Nothing to report; one line."""


async def load(store: AuditStore, since: datetime) -> RunData:
    async with store.engine.connect() as conn:
        cycles = [CycleRecord(**r) for r in (await conn.execute(
            sa.select(Cycle).where(Cycle.keeper == store.keeper, Cycle.ts >= since).order_by(Cycle.id))).mappings()]
        orders = [OrderRecord(**r) for r in (await conn.execute(
            sa.select(Order).where(Order.keeper == store.keeper, Order.created_at >= since)
            .order_by(Order.created_at))).mappings()]
        fills = [FillRecord(**r) for r in (await conn.execute(
            sa.select(Fill).where(Fill.keeper == store.keeper, Fill.ts >= since).order_by(Fill.id))).mappings()]
    if not cycles:
        raise AuditReportError(f"no cycles of keeper {store.keeper!r} in the audit store since {since:%Y-%m-%d}")
    return build(cycles, orders, fills)


def build(cycles: list[CycleRecord], orders: list[OrderRecord], fills: list[FillRecord]) -> RunData:
    by_cycle: dict[int, list[CycleRecord]] = {}
    for c in cycles:
        by_cycle.setdefault(c.cycle, []).append(c)
    t0 = cycles[0].ts
    first_symbol = (cycles[0].venue, cycles[0].symbol)
    # a fill is stamped with the exchange's time, which need not be ours (the demo's exchange runs fast):
    # place its fee at the time we created the order
    created = {o.client_order_id: o.created_at for o in orders}
    fees_by_time = sorted(
        (created.get(f.client_order_id or "", f.ts), float((f.fee or 0) * (1 if (f.fee_currency or "") in STABLE
                                                                            else f.price))) for f in fills)
    live, unhedged = Series(), Series()
    coins0: dict[tuple[str, str], float] = {}
    last_mark: dict[tuple[str, str], float] = {}
    last_hedge: dict[tuple[str, str], float] = {}
    linear_pnl = funding = fees = 0.0
    fi = 0
    next_funding = (t0.timestamp() // FUNDING_EVERY_S + 1) * FUNDING_EVERY_S
    for rows in by_cycle.values():
        ts = rows[0].ts
        t = (ts - t0).total_seconds()
        hedge = target = band = dsum = value = value_u = 0.0
        outside = False
        rate = 0.0
        while fi < len(fees_by_time) and fees_by_time[fi][0] <= ts:
            fees += fees_by_time[fi][1]
            fi += 1
        passed = ts.timestamp() >= next_funding
        while ts.timestamp() >= next_funding:
            next_funding += FUNDING_EVERY_S
        for c in rows:
            key = (c.venue, c.symbol)
            m = float(c.mark or 0)
            h = float(c.hedge or 0)
            e = float(c.exposure or 0)
            inverse = c.symbol.split(":")[-1] == c.symbol.split("/")[0]
            if key in last_mark and not inverse:
                linear_pnl += last_hedge[key] * (m - last_mark[key])
            last_mark[key], last_hedge[key] = m, h
            coins0.setdefault(key, e)
            hedge += h * m
            target += float(c.target or 0) * m
            band += float(c.band or 0) * m
            dsum += abs(float(c.drift or 0)) * m
            outside = outside or abs(float(c.drift or 0)) > float(c.band or 0)
            value += e * m
            value_u += coins0[key] * m
            if key == first_symbol:
                rate = float(c.funding_rate or 0)
            if passed and c.funding_rate is not None:
                funding += -h * m * float(c.funding_rate)
        for s, v in ((live, value + linear_pnl), (unhedged, value_u)):
            s.t.append(t)
            s.price.append(float(rows[0].mark or 0))
            s.value_usd.append(v)
            s.deposits_usd.append(0.0)
            s.funding_rate.append(rate)
        live.hedge_usd.append(hedge)
        live.target_usd.append(target)
        live.band_usd.append(band)
        live.drift.append(dsum / abs(target) if target else 0.0)
        live.outside.append(outside)
        live.fees_usd.append(fees)
        live.funding_usd.append(funding)
        unhedged.hedge_usd.append(0.0)
        unhedged.target_usd.append(target)
        unhedged.band_usd.append(band)
        unhedged.drift.append(1.0 if target else 0.0)
        unhedged.outside.append(bool(target))
        unhedged.fees_usd.append(0.0)
        unhedged.funding_usd.append(0.0)
    rows_out = [OrderRow((o.created_at - t0).total_seconds(), o.venue, o.symbol, o.side, float(o.amount),
                         float(o.price or 0), _status(o.status), float(o.filled), o.reason[:100]) for o in orders]
    step = (live.t[-1] / max(1, len(live.t) - 1)) if len(live.t) > 1 else 1.0
    s_live = summary("config", live, rows_out, len(fills), 0.0, unhedged, step)
    s_live["rule"] = "live"
    s_live["funding_usd_estimated"] = True
    s_u = summary("unhedged", unhedged, [], 0, 0.0, unhedged, step)
    meta = {"scenarios": [s_live, s_u], "path": {"kind": "audit store", "from": t0.isoformat(),
                                                  "to": cycles[-1].ts.isoformat(), "cycles": len(by_cycle),
                                                  "symbol": first_symbol[1]},
            "value_caption": "Live: exposure × mark (plus the linear hedges' PnL). Unhedged: the first cycle's "
                             "coins at each later price; deposits and withdrawals are not in the store, so a "
                             "deposit shows as a step in the live line only.",
            "note": f"live keeper: {len(rows_out)} orders, {len(fills)} fills, fees {fees:.2f} USD, "
                    f"funding about {funding:.2f} USD (estimated from the cycles' funding rates)"}
    return RunData(meta, {"live": live, "unhedged": unhedged}, {"live": rows_out, "unhedged": []})


def _status(s: str) -> str:
    return {"filled": "filled", "cancelled": "cancelled", "rejected": "rejected", "lost": "rejected"}.get(
        s.lower(), "open")


def since_days(days: float, now: datetime) -> datetime:
    return now - timedelta(days=days)
