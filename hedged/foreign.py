"""Another keeper trading as us, seen from the exchange: an order or trade carrying our client-id prefix
that our audit store never wrote.

Why: the account lock only excludes keepers that share a machine (lock directory) or a Postgres database.
Every order we send is an intent in our store before it leaves, so a prefixed order we have no intent for
was placed by someone else using our name — a second keeper, a restored old database, a copied config.
Two keepers on one account trade against each other; the only safe answer is no order, HALTED, and a
critical alert. Pure: the shell supplies what the exchange shows and which ids the store knows.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass


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
        return (f"another keeper trades as us: {len(ids)} client id(s) with our prefix that this audit store "
                f"never wrote ({shown}); trading halted")


def candidates(prefix: str, order_ids: Iterable[str], trade_ids: Iterable[str]) -> set[str]:
    """The client ids with our prefix the shell must look up in the store."""
    return {i for i in (*order_ids, *trade_ids) if i.startswith(prefix)}


def foreign(prefix: str, order_ids: Iterable[str], trade_ids: Iterable[str], known: Set[str]) -> Foreign:
    """What on the exchange (open orders' and trades' client ids) carries `prefix` but is not in `known`."""
    orders = sorted({cid for cid in order_ids if cid.startswith(prefix) and cid not in known})
    trades = sorted({cid for cid in trade_ids if cid.startswith(prefix) and cid not in known})
    return Foreign(tuple(orders), tuple(trades))
