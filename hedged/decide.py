"""plan → guard in one call: the whole pure decision of a cycle, shared by `hedged plan` and the keeper."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from hedged.config import Config
from hedged.guard import guard
from hedged.model import GuardResult, Plan, RecentOrder, Snapshot, TradingState
from hedged.planner import plan


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
) -> tuple[Plan, GuardResult]:
    p = plan(config, snapshot, order_tag=tag if tag is not None else order_tag(snapshot))
    return p, guard(p, now=snapshot.time, limits=config.limits, state=state, recent=recent,
                    previous_marks=previous_marks)
