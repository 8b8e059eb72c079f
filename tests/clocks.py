"""Deterministic exchange clocks for tests.

A manual clock started at wall time would settle funding (every 8 hours, on UTC boundaries) at whatever point
of a scenario the time of day puts the boundary: a test started a minute before 00:00, 08:00 or 16:00 UTC sees
a payment it did not ask for, which moves wallets and drift. Every test exchange on a manual clock starts
just after a settlement instead, with the next one 8 hours of exchange time away.
"""

from __future__ import annotations

import time

from hedged.sim.clock import Clock

FUNDING_MS = 8 * 3600 * 1000  # the local exchange settles funding on 8-hour UTC boundaries


AFTER_MS = 90_250  # after the settlement: mid-minute and off the second, as a wall-clock start nearly always is
# (a start on a candle's first millisecond would make a price set at once that candle's open)


def funding_free_start() -> int:
    """Exchange milliseconds 90.25 s after the last funding settlement (at most 8 hours before now, so the
    venue's wall-clock checks such as the receive window still pass)."""
    now = int(time.time() * 1000)
    return now - now % FUNDING_MS + AFTER_MS


def manual_clock() -> Clock:
    """A manual exchange clock (moves only when stepped) starting just after a funding settlement."""
    return Clock(manual=True, start_ms=funding_free_start())
