"""Another keeper trading as us, seen from the exchange: an order or trade carrying our client-id prefix
that our audit store never wrote.

Why: the account lock only excludes keepers that share a machine (lock directory) or a Postgres database.
Every order we send is an intent in our store before it leaves, so a prefixed order we have no intent for
was placed by someone else using our name — a second keeper, a restored old database, a copied config.
Two keepers on one account trade against each other; the only safe answer is no order, HALTED, and a
critical alert. Pure: the shell supplies what the exchange shows and which ids the store knows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, replace
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Foreign:
    """Client ids with our prefix that our store never wrote, as seen in open orders and in trades."""

    orders: tuple[str, ...] = ()
    trades: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.orders or self.trades)

    @property
    def message(self) -> str:
        ids = sorted({*self.orders, *self.trades})
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        return (f"foreign keeper: another keeper trades as us: {len(ids)} client id(s) with our prefix that this "
                f"audit store never wrote ({shown}); trading halted")


def candidates(prefix: str, order_ids: Iterable[str], trade_ids: Iterable[str]) -> set[str]:
    """The client ids with our prefix the shell must look up in the store."""
    return {i for i in (*order_ids, *trade_ids) if i.startswith(prefix)}


def foreign(prefix: str, order_ids: Iterable[str], trade_ids: Iterable[str], known: Set[str]) -> Foreign:
    """What on the exchange (open orders' and trades' client ids) carries `prefix` but is not in `known`."""
    orders = sorted({cid for cid in order_ids if cid.startswith(prefix) and cid not in known})
    trades = sorted({cid for cid in trade_ids if cid.startswith(prefix) and cid not in known})
    return Foreign(tuple(orders), tuple(trades))


# --- when to look ------------------------------------------------------------------------------------
# Open orders are read every cycle only on venues where ours are in flight, and trades never: a quiet
# cycle costs 3 requests per venue and must stay so. So the exchange is searched for another keeper on a
# schedule instead: every venue at least every `[keeper] foreign_check` seconds (keeper clock), open orders
# where the cycle did not read them anyway, and trades since the newest one the last search saw. The shell
# executes the checks this returns and feeds the answers back through `checked`. A streamed venue's order
# stream shows every order of the account as it changes, filled at once or not: its ids are checked each
# cycle, and while it has not broken since the last search, the search reads nothing over REST (a quiet
# streamed venue stays at its resyncs' cost).

OVERLAP_MS = 60_000  # trades are asked for from this long before the newest seen: late or same-ms trades


@dataclass(frozen=True, slots=True)
class Watch:
    """One venue's search history: when it was last searched (keeper clock) and the newest trade time the
    exchange reported (exchange milliseconds; the trade window follows the exchange's clock, not ours)."""

    checked_at: datetime | None = None
    newest_trade_ms: int | None = None
    since_ms: int = 0  # where the first search's trade window starts (start-up's reconciliation window)


@dataclass(frozen=True, slots=True)
class Check:
    """One search to run now: `orders` — read open orders (False when this cycle's read already has them);
    `trades` — read trades since `trades_since_ms` (exchange milliseconds; False when a live order stream,
    unbroken since the last search, has shown every order: no REST request at all)."""

    venue: str
    orders: bool
    trades_since_ms: int
    trades: bool = True


def due(watch: Watch, now: datetime, every: float) -> bool:
    return watch.checked_at is None or (now - watch.checked_at).total_seconds() >= every


def trades_since(watch: Watch) -> int:
    if watch.newest_trade_ms is None:
        return watch.since_ms
    return max(watch.since_ms, watch.newest_trade_ms - OVERLAP_MS)


def schedule(watches: Mapping[str, Watch], now: datetime, *, every: float, readable: Iterable[str],
             orders_read: Set[str], streamed: Set[str] = frozenset()) -> tuple[Check, ...]:
    """The searches due this cycle, on the venues that answered the cycle's read (a down venue is searched
    once it is back: it stays due). `orders_read`: venues whose open orders this cycle has already seen and
    checked (ours in flight there, or a live order stream). `streamed`: venues whose order stream has shown
    every order, unbroken, since their last search, each id checked as it came: their trades need no REST
    read (a venue's first search always reads them: the stream shows nothing from before it started)."""
    return tuple(Check(v, v not in orders_read, trades_since(w), trades=v not in streamed or w.checked_at is None)
                 for v in readable if due(w := watches.get(v, Watch()), now, every))


def checked(watch: Watch, now: datetime, trade_times_ms: Iterable[int | None]) -> Watch:
    """The watch after a search at `now` that saw trades at these exchange times."""
    times = [t for t in trade_times_ms if t is not None]
    newest = max([*times, *([watch.newest_trade_ms] if watch.newest_trade_ms is not None else [])], default=None)
    return replace(watch, checked_at=now, newest_trade_ms=newest)


def fresh(ids: Iterable[str], reported: Set[str]) -> frozenset[str]:
    """What has not been alerted on yet. An operator who resumed after the alert has seen those ids; the
    same resting order or old trade seen again does not halt again — a new id does."""
    return frozenset(ids) - reported
