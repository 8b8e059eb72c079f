"""Price paths that drive each coin's index: fixed, scripted steps, GBM with jumps (seeded), CSV replay.

A path is asked for the price at `t` seconds of exchange time since start; `None` means "no change", so a
price set by hand (admin API) stays until the path says otherwise.
"""

from __future__ import annotations

import csv
import math
import random
from bisect import bisect_right
from decimal import Decimal
from pathlib import Path
from typing import Protocol

SECONDS_PER_YEAR = 365.0 * 24 * 3600


class PricePath(Protocol):
    def price_at(self, t: float, current: Decimal) -> Decimal | None:
        """The price at `t` seconds since start, given the current price; None to leave it."""
        ...


class FixedPath:
    """Moves only when told (admin API / engine.set_price)."""

    def price_at(self, t: float, current: Decimal) -> Decimal | None:
        return None


class StepPath:
    """Scripted steps: at each `(t, price)` the price jumps to `price`; optionally repeats."""

    def __init__(self, steps: list[tuple[float, Decimal]], repeat: bool = False) -> None:
        self.steps = sorted(steps, key=lambda s: s[0])
        self.times = [s[0] for s in self.steps]
        self.repeat = repeat
        self.last_index = -1

    def price_at(self, t: float, current: Decimal) -> Decimal | None:
        if not self.steps:
            return None
        if self.repeat and self.times[-1] > 0:
            t = t % (self.times[-1] + (self.times[1] - self.times[0] if len(self.times) > 1 else 1.0))
        i = bisect_right(self.times, t) - 1
        if i < 0 or i == self.last_index:
            return None
        self.last_index = i
        return self.steps[i][1]


class GbmPath:
    """Geometric Brownian motion with Poisson jumps; deterministic for a given seed and tick sequence."""

    def __init__(
        self,
        volatility: float,
        drift: float = 0.0,
        jumps_per_day: float = 0.0,
        jump_mean: float = 0.0,
        jump_stdev: float = 0.05,
        seed: int = 0,
    ) -> None:
        self.volatility = volatility
        self.drift = drift
        self.jump_rate = jumps_per_day / 86400.0
        self.jump_mean = jump_mean
        self.jump_stdev = jump_stdev
        self.rng = random.Random(seed)
        self.last_t: float | None = None

    def price_at(self, t: float, current: Decimal) -> Decimal | None:
        if self.last_t is None:
            self.last_t = t
            return None
        dt = t - self.last_t
        if dt <= 0:
            return None
        self.last_t = t
        years = dt / SECONDS_PER_YEAR
        log_ret = (self.drift - 0.5 * self.volatility**2) * years + self.volatility * math.sqrt(
            years
        ) * self.rng.gauss(0.0, 1.0)
        if self.jump_rate > 0 and self.rng.random() < 1 - math.exp(-self.jump_rate * dt):
            log_ret += self.rng.gauss(self.jump_mean, self.jump_stdev)
        return current * Decimal(repr(math.exp(log_ret)))


class CsvPath:
    """Replays `seconds,price` rows (header optional); times are relative to the first row."""

    def __init__(self, file: Path, repeat: bool = False) -> None:
        rows: list[tuple[float, Decimal]] = []
        with file.open(newline="") as fh:
            for row in csv.reader(fh):
                if len(row) < 2:
                    continue
                try:
                    rows.append((float(row[0]), Decimal(row[1].strip())))
                except (ValueError, ArithmeticError):
                    continue  # header or comment line
        if not rows:
            raise ValueError(f"{file}: no `seconds,price` rows")
        t0 = rows[0][0]
        self.steps = StepPath([(t - t0, p) for t, p in rows], repeat=repeat)

    def price_at(self, t: float, current: Decimal) -> Decimal | None:
        return self.steps.price_at(t, current)
