"""When a stream event warrants a keeper cycle, and how bursts of them are spaced (pure, no I/O, no clock).

A fill, an order change, a position or a balance change can move drift: it wakes the keeper. A price
alone moves drift only for a price-sensitive hedge (an asset hedged with another coin's perp, or an
inverse perp whose coin collateral is not counted); for the common case — own coin, collateral counted —
§2 makes drift invariant under price, so a ticker never wakes it. For a sensitive hedge a price update
wakes only once the relative move since the last plan could have eaten the band's headroom.

`Spacing` turns a stream of "wake?" answers into at most one cycle per `min_spacing` seconds: a burst of
1,000 tickers that each warrant a cycle becomes one cycle now and, if more came after it started, one more.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import Enum


class Event(Enum):
    PRICE = "price"
    FILL = "fill"
    ORDER = "order"
    POSITION = "position"
    BALANCE = "balance"
    RESYNC = "resync"  # a REST resync found the view wrong, or a stream came back: plan on fresh data


@dataclass(frozen=True)
class Headroom:
    """What the last plan of one instrument left: |drift| against band, and the size drift scales with."""

    drift: Decimal
    band: Decimal
    scale: Decimal  # max(|target|, |hedge|): a relative price move r changes a sensitive drift by ≤ scale·r


def price_sensitive(*, inverse: bool, own_coin: bool, collateral_counted: bool) -> bool:
    """Can a price move alone change drift (§2)? Own-coin linear: no; own-coin inverse with collateral: no."""
    if not own_coin:
        return True
    return inverse and not collateral_counted


def warrants_cycle(event: Event, *, sensitive: bool = False, move: Decimal = Decimal(0),
                   headroom: Headroom | None = None) -> bool:
    """Does this event warrant a cycle? `move` is the relative price change since the last plan."""
    if event is not Event.PRICE:
        return True
    if not sensitive:
        return False
    if headroom is None:  # never planned: nothing to compare with
        return True
    return abs(move) * headroom.scale >= headroom.band - abs(headroom.drift)


@dataclass(frozen=True)
class Spacing:
    """Coalescing state: is a wake pending, and when did the last cycle start (seconds, any monotonic base)."""

    min_spacing: float
    pending: bool = False
    last_cycle: float | None = None

    def event(self, wakes: bool) -> Spacing:
        return replace(self, pending=True) if wakes else self

    def cycle_started(self, now: float) -> Spacing:
        """A cycle read the view: everything pending so far is in it."""
        return replace(self, pending=False, last_cycle=now)

    def fire_at(self) -> float | None:
        """When to wake the keeper: None when nothing is pending; otherwise not before min_spacing."""
        if not self.pending:
            return None
        return 0.0 if self.last_cycle is None else self.last_cycle + self.min_spacing
