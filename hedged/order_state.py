"""One order lifecycle: the statuses an order of ours can be in, and the only moves between them.

Modelled on nautilus_trader's `_ORDER_STATE_TABLE`: every legal (from, to) pair is listed once; a read that
is merely older than what we know (an open-orders list fetched before a fill landed) is *stale* and
changes nothing; anything else raises `IllegalTransition`, because it means the exchange and our record
disagree about something final (filled vs cancelled) and someone must look. ccxt statuses are mapped here
and nowhere else.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum


class OrderStatus(StrEnum):
    INTENT = "intent"  # written before the request: may or may not have reached the exchange
    SENT = "sent"  # request issued, no reply yet
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    LOST = "lost"  # not on the exchange after a lookup by client id; may still be found again


S = OrderStatus
TERMINAL = frozenset({S.FILLED, S.CANCELLED, S.REJECTED})
UNRESOLVED = frozenset({S.INTENT, S.SENT})  # may exist on the exchange; look up by client id, never resend
LIVE = frozenset({S.OPEN, S.PARTIALLY_FILLED})  # known to rest on the book
UNSETTLED = UNRESOLVED | LIVE  # fate not final: followed every cycle, counted as in flight

_FOUND = (S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED)
# Legal moves. Everything the exchange can tell us about an order we sent, in the order it can happen.
TRANSITIONS: frozenset[tuple[OrderStatus, OrderStatus]] = frozenset({
    (S.INTENT, S.SENT), (S.INTENT, S.LOST), *((S.INTENT, s) for s in _FOUND),
    (S.SENT, S.LOST), *((S.SENT, s) for s in _FOUND),
    (S.OPEN, S.PARTIALLY_FILLED), (S.OPEN, S.FILLED), (S.OPEN, S.CANCELLED), (S.OPEN, S.REJECTED), (S.OPEN, S.LOST),
    (S.PARTIALLY_FILLED, S.FILLED), (S.PARTIALLY_FILLED, S.CANCELLED), (S.PARTIALLY_FILLED, S.LOST),
    *((S.LOST, s) for s in _FOUND),  # found again after all
})
# How far along the lifecycle a status is: a move backwards is a stale read, not news.
_RANK = {S.INTENT: 0, S.SENT: 1, S.LOST: 1, S.OPEN: 2, S.PARTIALLY_FILLED: 3,
         S.FILLED: 4, S.CANCELLED: 4, S.REJECTED: 4}


class IllegalTransition(ValueError):
    """Our record and the exchange disagree about an order's fate (e.g. filled, then cancelled)."""


def advance(current: OrderStatus | str, new: OrderStatus | str) -> OrderStatus:
    """The status after learning `new`: `new` when the move is legal, `current` when `new` is stale."""
    cur, nxt = OrderStatus(current), OrderStatus(new)
    if cur == nxt or (cur, nxt) in TRANSITIONS:
        return nxt
    if _RANK[nxt] < _RANK[cur] or (cur in TERMINAL and nxt is S.LOST):
        return cur  # an older view (or a late "not found" for an order already settled) changes nothing
    raise IllegalTransition(f"order status cannot move from {cur.value} to {nxt.value}")


_CCXT = {"canceled": S.CANCELLED, "cancelled": S.CANCELLED, "expired": S.CANCELLED, "rejected": S.REJECTED}


def from_ccxt(status: str | None, amount: Decimal | None, filled: Decimal | None) -> OrderStatus:
    """ccxt's unified order status → ours; an open order with fills is partially filled.

    ccxt calls bybit's PartiallyFilledCanceled "closed" (ccxt issue 18685), the word it uses for filled:
    a closed order with less filled than its amount was cancelled after a partial fill, not filled.
    """
    got = filled or Decimal(0)
    word = status or "open"
    if word == "closed":
        return S.CANCELLED if amount is not None and got < amount else S.FILLED
    if word in _CCXT:
        return _CCXT[word]
    return S.PARTIALLY_FILLED if got > 0 else S.OPEN
