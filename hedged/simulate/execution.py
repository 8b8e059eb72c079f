"""MIRROR of the keeper's order-following rules, for the simulator.

Today these rules live in the shell (`hedged.executor.Executor.follow`, `escalation_due`, `settled` and
`hedged.keeper.Keeper._escalated`), interleaved with ccxt and audit I/O, so the simulator cannot call them.
This module restates them as plain code over the exchange model; it must move into the core (one pure
function the keeper and the simulator both call) — then this mirror goes away:

- an order of ours older than `order_timeout` is cancelled, while the instrument has used fewer than
  `max_reprices` reprices; the next plan re-posts what is still missing at the new touch;
- the reprice budget resets when the instrument holds inside its band;
- once the budget is spent and `escalate` is on, the order goes out as a marketable limit capped at
  `max_slippage_bps` from mark (not post-only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from hedged import decide
from hedged.config import ExecutionConfig
from hedged.model import OrderIntent
from hedged.sim.orders import Order as SimOrder
from hedged.simulate.exchange import SimVenue


@dataclass
class ExecutorMirror:
    config: ExecutionConfig
    reprices: dict[tuple[str, str], int] = field(default_factory=dict)
    live: dict[str, tuple[str, SimOrder]] = field(default_factory=dict)  # client id -> (venue, order)

    def track(self, venue: str, order: SimOrder) -> None:
        if order.is_open:
            self.live[order.client_id] = (venue, order)

    def follow(self, venues: dict[str, SimVenue], now: datetime) -> None:
        """Forget orders that left the book; cancel the timed-out ones within the reprice budget."""
        timeout = timedelta(seconds=self.config.order_timeout)
        for cid, (vname, o) in list(self.live.items()):
            if not o.is_open:
                del self.live[cid]
                continue
            key = (vname, o.instrument.symbol)
            age = now - datetime.fromtimestamp(o.created_ms / 1000, tz=now.tzinfo)
            if age > timeout and self.reprices.get(key, 0) < self.config.max_reprices:
                venues[vname].cancel(o)
                self.reprices[key] = self.reprices.get(key, 0) + 1
                del self.live[cid]

    def escalation_due(self, venue: str, symbol: str) -> bool:
        return self.config.escalate and self.reprices.get((venue, symbol), 0) >= self.config.max_reprices

    def settled(self, venue: str, symbol: str) -> None:
        self.reprices.pop((venue, symbol), None)

    def escalated(self, order: OrderIntent, mark: Decimal, tick: Decimal) -> OrderIntent:
        """The core's escalation price (hedged.decide.escalated), not a copy of it."""
        return decide.escalated(order, mark, tick, self.config.max_slippage_bps)
