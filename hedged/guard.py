"""The safety rules (docs/architecture.md, "The guard"): every planned order is approved, cut, or blocked,
with named reasons.

Pure: limits, trading state and the recent order history come in as values. Checks that can only say no
come first; cuts follow, and are applied from the tightest, so an approved order satisfies every limit
at once. Reason codes are stable strings (tests, alerts and dashboards key on them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from hedged.config import LimitsConfig
from hedged.exposure import ZERO, notional_usd, to_coins, to_contracts
from hedged.model import Decision, GuardResult, InstrumentPlan, OrderIntent, Plan, Reason, RecentOrder, TradingState
from hedged.planner import round_to_step

BPS = Decimal(10000)
HOLD_CODES = frozenset({"within_band", "below_min_size"})


def _stale(p: InstrumentPlan, now: datetime, max_age: Decimal) -> Reason | None:
    limit = timedelta(seconds=float(max_age))
    for label, ts in p.data_times:
        if ts is None:
            return Reason("stale_data", f"{label} has no timestamp")
        if now - ts > limit:
            return Reason("stale_data", f"{label} is {(now - ts).total_seconds():.0f}s old > {max_age}s")
    return None


def _blocked(p: InstrumentPlan, *reasons: Reason) -> Decision:
    return Decision(plan=p, action="blocked", order=None, reasons=(*p.reasons, *reasons))


def guard(
    plan: Plan,
    *,
    now: datetime,
    limits: LimitsConfig,
    state: TradingState,
    recent: Sequence[RecentOrder] = (),
    previous_marks: Mapping[tuple[str, str], Decimal] | None = None,
) -> GuardResult:
    """Approve, cut or block each instrument's intent; see the module docstring."""
    hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
    orders_last_hour = sum(1 for r in recent if r.time > hour_ago)
    turnover_today = sum((r.notional_usd for r in recent if r.time > day_ago), ZERO)

    decisions: list[Decision] = []
    for p in plan.instruments:
        intent = p.intent
        if intent is None:
            hold = all(r.code in HOLD_CODES for r in p.reasons)
            decisions.append(Decision(plan=p, action="hold" if hold else "blocked", order=None, reasons=p.reasons))
            continue

        # --- denials ------------------------------------------------------------------------------
        if state is TradingState.HALTED:
            decisions.append(_blocked(p, Reason("halted", "trading is halted: cancels only")))
            continue
        if state is TradingState.PAUSED:
            decisions.append(_blocked(p, Reason("paused", "trading is paused: no new orders")))
            continue
        if state is TradingState.REDUCING and not intent.reduce_only:
            decisions.append(_blocked(p, Reason("reducing", "reduce-only state: order would not shrink |hedge|")))
            continue
        stale = _stale(p, now, limits.max_data_age)
        if stale is not None:
            decisions.append(_blocked(p, stale))
            continue
        prev = (previous_marks or {}).get((p.venue, p.symbol))
        if prev is not None and prev > 0:
            jump = abs(p.mark - prev) / prev * BPS
            if jump > limits.max_price_jump_bps:
                decisions.append(_blocked(p, Reason(
                    "price_jump", f"mark moved {jump:.0f} bps since last cycle > {limits.max_price_jump_bps}")))
                continue
        deviation = abs(intent.price - p.mark) / p.mark * BPS
        if deviation > limits.max_price_deviation_bps:
            decisions.append(_blocked(p, Reason(
                "price_deviation",
                f"limit {intent.price} is {deviation:.1f} bps from mark {p.mark} > {limits.max_price_deviation_bps}")))
            continue
        current = p.hedge + p.inflight
        order_coins = to_coins(p.market, intent.signed_amount, p.mark)
        after = current + order_coins
        if intent.side == "buy" and after > 0:
            decisions.append(_blocked(p, Reason(
                "wrong_side", f"buying would leave the perp net long {after} {p.market.base}")))
            continue
        if orders_last_hour >= limits.max_orders_per_hour:
            decisions.append(_blocked(p, Reason(
                "order_rate", f"{orders_last_hour} orders in the last hour >= {limits.max_orders_per_hour}")))
            continue

        # --- cuts: the amount allowed is the smallest of every cap ------------------------------------
        cuts: list[Reason] = []
        allowed = intent.amount
        growing = abs(after) > abs(current)
        if growing:
            cap_usd = min(limits.max_position_usd, limits.max_ratio * p.exposure_usd)
            room_coins = cap_usd / p.mark - abs(current)
            room = to_contracts(p.market, room_coins, p.mark) if room_coins > 0 else ZERO
            if room < allowed:
                allowed = room
                cuts.append(Reason("position_cap", f"|hedge| capped at {cap_usd:.2f} USD "
                                   f"(max_position_usd, max_ratio × exposure)"))
        unit_usd = notional_usd(p.market, Decimal(1), p.mark)
        by_order = limits.max_order_usd / unit_usd
        if by_order < allowed:
            allowed = by_order
            cuts.append(Reason("max_order_usd", f"order cut to {limits.max_order_usd} USD"))
        by_turnover = max(limits.max_daily_turnover_usd - turnover_today, ZERO) / unit_usd
        if by_turnover < allowed:
            allowed = by_turnover
            cuts.append(Reason("turnover", f"24h turnover {turnover_today:.2f} USD near cap "
                               f"{limits.max_daily_turnover_usd}"))
        amount = round_to_step(allowed, p.market.lot, ROUND_DOWN) if allowed < intent.amount else intent.amount
        if amount < p.market.min_amount or amount <= 0:
            decisions.append(_blocked(p, *cuts, Reason(
                "cut_below_min", f"after limits {amount} contracts < minimum {p.market.min_amount}")))
            continue
        order = intent if amount == intent.amount else OrderIntent(
            venue=intent.venue, symbol=intent.symbol, side=intent.side, amount=amount, price=intent.price,
            reduce_only=intent.reduce_only, post_only=intent.post_only, client_id=intent.client_id)
        orders_last_hour += 1
        turnover_today += notional_usd(p.market, amount, p.mark)
        decisions.append(Decision(plan=p, action="trade", order=order, reasons=(*p.reasons, *cuts)))
    return GuardResult(decisions=tuple(decisions))
