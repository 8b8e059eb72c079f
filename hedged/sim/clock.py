"""Exchange time: real, accelerated by a factor, or manual (moves only when stepped).

Integration tests use the manual clock so that funding, taker flow and price paths advance without sleeps.
"""

from __future__ import annotations

import time


class Clock:
    """Milliseconds of exchange time. `speed` > 1 accelerates; `manual=True` freezes it between steps."""

    def __init__(self, manual: bool = False, speed: float = 1.0, start_ms: int | None = None) -> None:
        self.manual = manual
        self.speed = speed
        self._wall0 = time.monotonic()
        self._start = start_ms if start_ms is not None else int(time.time() * 1000)
        self._offset_ms = 0.0

    def now_ms(self) -> int:
        elapsed = 0.0 if self.manual else (time.monotonic() - self._wall0) * 1000.0 * self.speed
        return self._start + int(elapsed + self._offset_ms)

    @property
    def start_ms(self) -> int:
        return self._start

    def step(self, seconds: float) -> int:
        """Move exchange time forward by `seconds` (any mode); returns the new time."""
        self._offset_ms += seconds * 1000.0
        return self.now_ms()
