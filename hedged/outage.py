"""Reading several venues when some may be down: one failing venue must not fail the whole cycle.

`read_venues` reads every venue in parallel and sorts the answers into states and outages (venue → one
human line). The planner then blocks exactly the instruments that depend on a venue in the outage list
(`planner.unavailable_for`), with a `venue_unavailable` reason, and plans the others as usual: a spot
venue that cannot be read blocks the perp hedge that counts its coins instead of unwinding it. When every
venue fails there is nothing to plan on, and the first error propagates as before (the breaker counts it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ccxt.base import errors as cx

from hedged.errors import AuthFailed, VenueError, describe
from hedged.venue import CcxtVenue

# What an unreachable or refusing exchange raises (CcxtVenue raises VenueError; ccxt and the network
# directly where a caller uses the client itself); anything else is a bug and fails the cycle.
OUTAGE: tuple[type[BaseException], ...] = (VenueError, cx.BaseError, OSError, asyncio.TimeoutError)


def describe_outage(exc: BaseException) -> str:
    """One line a person can act on, without secrets (hedged.errors.describe for ccxt/network errors)."""
    text = str(exc) if isinstance(exc, VenueError) else describe(exc)
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


async def read_venues(venues: Mapping[str, CcxtVenue], with_orders: Mapping[str, bool]
                      ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(raw state per readable venue, reason per unreadable one); raises when no venue could be read."""
    names = list(venues)
    results = await asyncio.gather(*(venues[n].fetch_state(with_orders=with_orders[n]) for n in names),
                                   return_exceptions=True)
    states: dict[str, dict[str, Any]] = {}
    down: dict[str, str] = {}
    for n, r in zip(names, results, strict=True):
        if isinstance(r, BaseException):
            # a single venue, bad keys (a human must act: the breaker's business) or a bug: as before
            if not isinstance(r, OUTAGE) or isinstance(r, AuthFailed) or len(names) == 1:
                raise r
            down[n] = describe_outage(r)
        else:
            states[n] = r
    if not states:
        first = next(r for r in results if isinstance(r, BaseException))
        raise first
    return states, down
