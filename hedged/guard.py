"""The safety rules (docs/architecture.md, "The guard"): every planned order is approved, cut, or blocked,
with named reasons.

Pure: limits, trading state and the recent order history come in as values. Checks that can only say no
come first; cuts follow, and are applied from the tightest, so an approved order satisfies every limit
at once. Reason codes are stable strings (tests, alerts and dashboards key on them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from hedged.config import LimitsConfig
from hedged.exposure import ZERO, notional_usd, to_coins, to_contracts
from hedged.model import (
    Code,
    Decision,
    GuardResult,
    InstrumentPlan,
    OrderIntent,
    Plan,
    Reason,
    RecentOrder,
    TradingState,
    quick,
)
from hedged.planner import round_to_step

BPS = Decimal(10000)
_Decision = quick(Decision)  # one per instrument per cycle: the quick constructor (the same instances)
HOLD_CODES = frozenset({Code.WITHIN_BAND, Code.BELOW_MIN_SIZE})


def _stale(p: InstrumentPlan, now: datetime, max_age: Decimal) -> Reason | None:
    limit = timedelta(seconds=float(max_age))
    for label, ts in p.data_times:
        if ts is None:
            return Reason(Code.STALE_DATA, f"{label} has no timestamp")
        if now - ts > limit:
            return Reason(Code.STALE_DATA, f"{label} is {(now - ts).total_seconds():.0f}s old > {max_age}s")
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
    return GuardResult(decisions=guard_decisions(plan, now=now, limits=limits, state=state, recent=recent,
                                                 previous_marks=previous_marks))


def guard_decisions(
    plan: Plan,
    *,
    now: datetime,
    limits: LimitsConfig,
    state: TradingState,
    recent: Sequence[RecentOrder] = (),
    previous_marks: Mapping[tuple[str, str], Decimal] | None = None,
) -> tuple[Decision, ...]:
    """`guard(...)`'s decisions, without the result object (decide() wraps them in its own)."""
    orders_last_hour, turnover_today = 0, ZERO
    counted = False  # the order history is read only when there is an order to check (most cycles have none)
    decisions: list[Decision] = []
    for p in plan.instruments:
        intent = p.intent
        if intent is None:
            rs = p.reasons  # one reason on a quiet cycle (within_band): no generator for it
            hold = rs[0].code in HOLD_CODES if len(rs) == 1 else all(r.code in HOLD_CODES for r in rs)
            decisions.append(_Decision(plan=p, action="hold" if hold else "blocked", order=None, reasons=p.reasons))
            continue
        if not counted:
            hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
            orders_last_hour = sum(1 for r in recent if r.time > hour_ago)
            turnover_today = sum((r.notional_usd for r in recent if r.time > day_ago), ZERO)
            counted = True
        denial = _denial(p, intent, now=now, limits=limits, state=state, previous_marks=previous_marks or {},
                         orders_last_hour=orders_last_hour)
        if denial is not None:
            decisions.append(_blocked(p, denial))
            continue
        amount, cuts = _cut(p, intent, limits, turnover_today)
        if amount < p.market.min_amount or amount <= 0:
            decisions.append(_blocked(p, *cuts, Reason(
                Code.CUT_BELOW_MIN, f"after limits {amount} contracts < minimum {p.market.min_amount}")))
            continue
        order = intent if amount == intent.amount else replace(intent, amount=amount)
        orders_last_hour += 1
        turnover_today += notional_usd(p.market, amount, p.mark)
        decisions.append(Decision(plan=p, action="trade", order=order, reasons=(*p.reasons, *cuts)))
    return tuple(decisions)


def _denial(p: InstrumentPlan, intent: OrderIntent, *, now: datetime, limits: LimitsConfig, state: TradingState,
            previous_marks: Mapping[tuple[str, str], Decimal], orders_last_hour: int) -> Reason | None:
    """The first check that says no, in the documented order; None when the order may go."""
    if state is TradingState.HALTED:
        return Reason(Code.HALTED, "trading is halted: cancels only")
    if state is TradingState.PAUSED:
        return Reason(Code.PAUSED, "trading is paused: no new orders")
    if state is TradingState.REDUCING and not intent.reduce_only:
        return Reason(Code.REDUCING, "reduce-only state: order would not shrink |hedge|")
    stale = _stale(p, now, limits.max_data_age)
    if stale is not None:
        return stale
    prev = previous_marks.get((p.venue, p.symbol))
    if prev is not None and prev > 0:
        jump = abs(p.mark - prev) / prev * BPS
        if jump > limits.max_price_jump_bps:
            return Reason(Code.PRICE_JUMP,
                          f"mark moved {jump:.0f} bps since last cycle > {limits.max_price_jump_bps}")
    deviation = abs(intent.price - p.mark) / p.mark * BPS
    if deviation > limits.max_price_deviation_bps:
        return Reason(Code.PRICE_DEVIATION, f"limit {intent.price} is {deviation:.1f} bps from mark {p.mark} > "
                      f"{limits.max_price_deviation_bps}")
    after = p.hedge + p.inflight + to_coins(p.market, intent.signed_amount, p.mark)
    if intent.side == "buy" and after > 0:
        return Reason(Code.WRONG_SIDE, f"buying would leave the perp net long {after} {p.market.base}")
    if orders_last_hour >= limits.max_orders_per_hour:
        return Reason(Code.ORDER_RATE, f"{orders_last_hour} orders in the last hour >= {limits.max_orders_per_hour}")
    return None


def _cut(p: InstrumentPlan, intent: OrderIntent, limits: LimitsConfig,
         turnover_today: Decimal) -> tuple[Decimal, list[Reason]]:
    """The amount every cap allows (the smallest of them, rounded down to the lot), with a reason per cut."""
    cuts: list[Reason] = []
    allowed = intent.amount
    current = p.hedge + p.inflight  # our in-flight orders count: two orders may not together break a cap
    after = current + to_coins(p.market, intent.signed_amount, p.mark)
    if abs(after) > abs(current):
        cap_usd = min(limits.max_position_usd, limits.max_ratio * p.exposure_usd)
        room_coins = cap_usd / p.mark - abs(current)
        room = to_contracts(p.market, room_coins, p.mark) if room_coins > 0 else ZERO
        if room < allowed:
            allowed = room
            cuts.append(Reason(Code.POSITION_CAP, f"|hedge| capped at {cap_usd:.2f} USD "
                               f"(max_position_usd, max_ratio × exposure)"))
    unit_usd = notional_usd(p.market, Decimal(1), p.mark)
    by_order = limits.max_order_usd / unit_usd
    if by_order < allowed:
        allowed = by_order
        cuts.append(Reason(Code.MAX_ORDER_USD, f"order cut to {limits.max_order_usd} USD"))
    by_turnover = max(limits.max_daily_turnover_usd - turnover_today, ZERO) / unit_usd
    if by_turnover < allowed:
        allowed = by_turnover
        cuts.append(Reason(Code.TURNOVER, f"24h turnover {turnover_today:.2f} USD near cap "
                           f"{limits.max_daily_turnover_usd}"))
    amount = round_to_step(allowed, p.market.lot, ROUND_DOWN) if allowed < intent.amount else intent.amount
    return amount, cuts
