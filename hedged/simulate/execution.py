"""Our orders on the simulated exchange, followed as the keeper follows them; the rules are the core's.

The keeper's executor keeps, per order, what the audit store knows, and per instrument how often it re-posted
this episode; every decision about those orders is made by the core (`hedged.decide`): `reprices_due` says
which resting orders to cancel (timeout, re-price at the new touch, band hysteresis), `hold_back` holds or
escalates the next order (fills or cancels just landed, reprice budget spent), `settled` ends the episode.
This module only keeps the same facts over the engine, so the simulator hands `decide()` the same
`KeeperContext` the keeper would and cannot follow other rules:

- `follow` is `Executor.follow`: an order that left the book or got a fill since the last cycle marks its
  instrument touched (the keeper re-plans it on fresh data next cycle);
- `cancel` is `Executor.cancel_for_reprice`: a confirmed cancel (not touched: the store already knows it),
  counted against `max_reprices` when the core's reason is a re-price;
- `settled` is `Executor.settled`, called where the core's `settled` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from hedged.model import Cancel, Code, KeeperContext, OurOrder
from hedged.order_state import OrderStatus
from hedged.sim.orders import Order as SimOrder
from hedged.simulate.exchange import SimVenue

NO_CONTEXT = KeeperContext()
NOTHING_TOUCHED: frozenset[tuple[str, str]] = frozenset()


@dataclass
class _Followed:
    venue: str
    order: SimOrder
    filled: Decimal  # the fill last seen
    created_at: datetime


@dataclass
class OurOrders:
    """Our live orders on the engine (what the keeper's store holds as open) and the reprice counts."""

    reprices: dict[tuple[str, str], int] = field(default_factory=dict)
    live: dict[str, _Followed] = field(default_factory=dict)  # client id -> order

    def track(self, venue: str, order: SimOrder) -> None:
        """A placed order; one the engine did not rest (filled at once, rejected) is settled already."""
        if order.is_open:
            self.live[order.client_id] = _Followed(venue, order, order.filled,
                                                   datetime.fromtimestamp(order.created_ms / 1000, tz=UTC))

    def follow(self) -> frozenset[tuple[str, str]]:
        """(venue, symbol) where a fill landed or an order of ours left the book since the last cycle."""
        if not self.live:
            return NOTHING_TOUCHED
        touched: set[tuple[str, str]] = set()
        for cid, f in list(self.live.items()):
            o = f.order
            if not o.is_open:
                del self.live[cid]
                touched.add((f.venue, o.instrument.symbol))
            elif o.filled != f.filled:
                f.filled = o.filled
                touched.add((f.venue, o.instrument.symbol))
        return frozenset(touched)

    def context(self, touched: frozenset[tuple[str, str]]) -> KeeperContext:
        """What `decide()` gets: our open orders with their status, the touched instruments, the counts."""
        if not self.live and not touched and not self.reprices:
            return NO_CONTEXT
        orders = tuple(
            OurOrder(f.venue, f.order.instrument.symbol, cid,
                     OrderStatus.PARTIALLY_FILLED if f.order.filled > 0 else OrderStatus.OPEN,
                     "buy" if f.order.side == "Buy" else "sell", f.order.qty, f.order.filled, f.created_at,
                     f.order.price)
            for cid, f in self.live.items())
        return KeeperContext(orders, touched, dict(self.reprices))

    def cancel(self, venues: dict[str, SimVenue], c: Cancel) -> bool:
        """A cancel the core decided; a re-price counts against `max_reprices`. False: not ours or not live."""
        f = self.live.get(c.client_id)
        if f is None or not f.order.is_open:
            return False
        venues[f.venue].cancel(f.order)
        del self.live[c.client_id]
        if c.reason.code is Code.REPRICE:
            key = (c.venue, c.symbol)
            self.reprices[key] = self.reprices.get(key, 0) + 1
        return True

    def settled(self, venue: str, symbol: str) -> None:
        """The episode is over (the core's `settled`): the next one starts with a fresh reprice budget."""
        self.reprices.pop((venue, symbol), None)
