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

from hedged.venue import CcxtVenue

# What an unreachable or refusing exchange raises through ccxt and aiohttp; anything else is a bug.
OUTAGE: tuple[type[BaseException], ...] = (cx.BaseError, OSError, asyncio.TimeoutError)


def describe_outage(exc: BaseException) -> str:
    """One line without secrets: the error type and its first 200 characters."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


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
            if not isinstance(r, OUTAGE) or len(names) == 1:
                raise r
            down[n] = describe_outage(r)
        else:
            states[n] = r
    if not states:
        first = next(r for r in results if isinstance(r, BaseException))
        raise first
    return states, down
