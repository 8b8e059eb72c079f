"""plan → guard → hold-back in one call: the whole pure decision of a cycle, for `hedged plan` and the keeper.

The hold-back rules decide on what the keeper knows of its own orders (`KeeperContext`: our unsettled orders
with their status, where fills or cancels just landed, how often the instrument's order was re-posted).
With the context recorded beside the snapshot, `hedged plan --snapshot` replays the keeper's decision exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from hedged.config import Config, ExecutionConfig
from hedged.exposure import to_coins
from hedged.guard import guard_decisions
from hedged.model import (
    Cancel,
    Code,
    Decision,
    GuardResult,
    InstrumentPlan,
    KeeperContext,
    OrderIntent,
    Plan,
    Reason,
    RecentOrder,
    Snapshot,
    TradingState,
    quick,
)
from hedged.planner import limit_price, plan, round_to_step

BPS = Decimal(10000)
_GuardResult = quick(GuardResult)  # one per cycle: the quick constructor (the same instances)


def base36(n: int) -> str:
    """Compact digits for client order ids (exchanges cap them at 36 characters)."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


def order_tag(snapshot: Snapshot) -> str:
    """A short, time-derived tag for client order ids: base-36 milliseconds of the snapshot time."""
    return base36(int(snapshot.time.timestamp() * 1000))


def decide(
    config: Config,
    snapshot: Snapshot,
    *,
    state: TradingState,
    recent: Sequence[RecentOrder] = (),
    previous_marks: Mapping[tuple[str, str], Decimal] | None = None,
    tag: str | None = None,
    context: KeeperContext | None = None,
) -> tuple[Plan, GuardResult]:
    """Plan, guard, then hold back on our own orders; `cancels` lists resting orders to re-price."""
    ctx = context or _NO_CONTEXT
    # the time-derived tag is built only when an order is planned (most cycles plan none)
    p = plan(config, snapshot, order_tag=tag if tag is not None else lambda: order_tag(snapshot), context=ctx)
    checked = guard_decisions(p, now=snapshot.time, limits=config.limits, state=state, recent=recent,
                              previous_marks=previous_marks)
    return p, _GuardResult(hold_back(checked, ctx, config.execution),
                           reprices_due(p, snapshot, ctx, config.execution))


_NO_CONTEXT = KeeperContext()  # read only: nothing of ours in flight


def hold_back(decisions: Sequence[Decision], context: KeeperContext,
              execution: ExecutionConfig) -> tuple[Decision, ...]:
    """The rules on our own orders, applied to each approved order after the guard, first match wins:

    0. `account_settings` (blocked): the exchange refused the instrument's leverage or margin mode at start.
    1. `order_changed` (hold): fills or cancels landed on the instrument this cycle; re-plan on fresh data.
    2. `unresolved_order` (blocked): an order of ours there is sent but unconfirmed and the new order goes the
       other way. The planner counts an unconfirmed order in flight, so a same-side order only covers drift
       beyond it: never a second order for the same intent. An opposite one could only come from counting
       it twice (it filled, the position shows it, and we do not know yet): wait until it is resolved.
    3. `escalate`: the instrument's order was re-posted `max_reprices` times this episode and `escalate` is
       on: a marketable limit, not post-only, within `max_slippage_bps` of the mark.
    """
    for d in decisions:
        if d.order is not None:
            return tuple(_hold_back_one(d, context, execution) for d in decisions)
    return tuple(decisions)  # nothing to hold back (a quiet cycle)


def _hold_back_one(d: Decision, context: KeeperContext, execution: ExecutionConfig) -> Decision:
    p, order = d.plan, d.order
    if order is None:
        return d
    if (p.venue, p.symbol) in context.refused:
        return Decision(p, "blocked", None, (*d.reasons, Reason(
            Code.ACCOUNT_SETTINGS, context.refused[(p.venue, p.symbol)])))
    if (p.venue, p.symbol) in context.touched:
        return Decision(p, "hold", None, (*d.reasons, Reason(
            Code.ORDER_CHANGED, "fills or cancels this cycle: re-plan on fresh data")))
    against = [o for o in context.on(p.venue, p.symbol) if o.unresolved and o.side != order.side]
    if against:
        return Decision(p, "blocked", None, (*d.reasons, Reason(
            Code.UNRESOLVED_ORDER, f"{against[0].client_id} ({against[0].side}) not yet confirmed by the exchange")))
    if execution.escalate and context.reprices.get((p.venue, p.symbol), 0) >= execution.max_reprices:
        return Decision(p, d.action, escalated(order, p.mark, p.market.tick, execution.max_slippage_bps),
                        (*d.reasons, Reason(Code.ESCALATE, f"re-posted {execution.max_reprices} times: marketable "
                                            f"limit within {execution.max_slippage_bps} bps of mark")))
    return d


def escalated(order: OrderIntent, mark: Decimal, tick: Decimal, max_slippage_bps: Decimal) -> OrderIntent:
    """The order as a marketable limit: `max_slippage_bps` through the mark, rounded back towards it."""
    slip = max_slippage_bps / BPS
    if order.side == "buy":
        price = round_to_step(mark * (1 + slip), tick, ROUND_FLOOR)
    else:
        price = round_to_step(mark * (1 - slip), tick, ROUND_CEILING)
    return OrderIntent(order.venue, order.symbol, order.side, order.amount, price, order.reduce_only, False,
                       order.client_id)


def reprices_due(plan: Plan, snapshot: Snapshot, context: KeeperContext,
                 execution: ExecutionConfig) -> tuple[Cancel, ...]:
    """Resting orders of ours older than `order_timeout` to take off the book, so the next cycle re-posts.

    Re-priced while the position without our orders is outside the band: when the touch has moved (an order
    still at the touch keeps its place in the queue), up to `max_reprices` times; with `escalate`, always,
    since the re-post after `max_reprices` is the marketable one.
    Band hysteresis: when the position without our orders is back inside the band (the price moved, not a
    fill), an order that still reduces |drift| and would not overshoot the band stays on the book; cancelling
    it would leave nothing to re-post, and the price moving back would place it again.
    """
    if not context.orders:  # nothing of ours rests anywhere
        return ()
    timeout = timedelta(seconds=execution.order_timeout)
    out: list[Cancel] = []
    for p in plan.instruments:
        gap = p.hedge - p.target  # the drift without our in-flight orders
        spent = context.reprices.get((p.venue, p.symbol), 0) >= execution.max_reprices
        for o in context.on(p.venue, p.symbol):
            if not o.live or snapshot.time - o.created_at <= timeout:
                continue
            after = gap + to_coins(p.market, o.signed_remaining, p.mark)
            touch = limit_price(p.market, snapshot.venues[p.venue], o.side, execution.offset_ticks, p.mark)
            if abs(gap) > p.band and (execution.escalate or (not spent and touch != o.price)):
                out.append(Cancel(p.venue, p.symbol, o.client_id, Reason(
                    Code.REPRICE, f"order_timeout {execution.order_timeout}s: re-post at the new touch")))
            elif abs(gap) <= p.band and abs(after) > p.band:
                out.append(Cancel(p.venue, p.symbol, o.client_id, Reason(
                    Code.OVERSHOOT, "back inside the band: filling it would overshoot the other side")))
    return tuple(out)


def settled(p: InstrumentPlan, context: KeeperContext) -> bool:
    """The instrument's episode is over (its reprice count starts again): the position without our orders
    is inside the band, or nothing of ours is in flight there and nothing is wanted."""
    return abs(p.hedge - p.target) <= p.band or (p.intent is None and not context.on(p.venue, p.symbol))
