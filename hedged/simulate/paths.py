"""Seeded price paths for `hedged simulate`: GBM (with jumps), a crash, flat, or CSV candles, plus an alt
basket drawn with a given beta and correlation to the primary coin (for proxy hedges).

A path is a list of candles per asset, one per decision step: the exchange model trades through each
step's high and low before it settles at the close, so a post-only order inside the candle's range fills.
Plain floats here (it is input data, like a CSV); the engine turns them into Decimal prices on its tick grid.
"""

from __future__ import annotations

import csv
import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SECONDS_PER_YEAR = 365.0 * 86400
KINDS = ("gbm", "jumps", "crash", "flat")


class PathError(ValueError):
    """An unusable path spec or CSV; one line naming the field."""


@dataclass(frozen=True)
class Candle:
    open: float
    high: float
    low: float
    close: float


@dataclass
class SimPath:
    """`candles[asset][i]` is step i (i = 0 is the start, a flat candle at the first price)."""

    kind: str
    step_s: int
    candles: dict[str, list[Candle]]
    funding: list[float] | None = None  # per-interval funding rate at each step (CSV column), else None
    start: datetime | None = None  # the CSV's first timestamp, when it has one
    notes: dict[str, float] = field(default_factory=dict)  # e.g. the alt basket's realised beta and r²

    @property
    def steps(self) -> int:
        return len(next(iter(self.candles.values()))) - 1

    def close(self, asset: str) -> list[float]:
        return [c.close for c in self.candles[asset]]


@dataclass(frozen=True)
class PathSpec:
    kind: str = "gbm"  # gbm | jumps | crash | flat | path to a CSV file
    days: float = 30.0
    step_s: int = 60
    vol: float = 0.6  # annual
    drift: float = 0.0  # annual
    seed: int = 1
    jumps_per_day: float = 2.0  # `jumps`
    jump_stdev: float = 0.05  # `jumps`: log size of one jump
    crash: float = 0.5  # `crash`: the fall, as a fraction
    crash_hours: float = 24.0  # `crash`: over how long
    alt_beta: float = 1.5  # alt basket vs the primary coin
    alt_corr: float = 0.8
    funding_mean: float = 0.0001  # a drawn funding rate (per 8 h interval) reverts to this...
    funding_vol: float = 0.0  # ...with this standard deviation per interval; 0: constant (no drawn path)


def _log_returns(spec: PathSpec, n: int, rng: random.Random) -> list[float]:
    if spec.kind == "flat":
        return [0.0] * n
    years = spec.step_s / SECONDS_PER_YEAR
    mu = (spec.drift - 0.5 * spec.vol**2) * years
    sd = spec.vol * math.sqrt(years)
    out = [mu + sd * rng.gauss(0.0, 1.0) for _ in range(n)]
    if spec.kind == "jumps":
        p = 1 - math.exp(-spec.jumps_per_day * spec.step_s / 86400)
        for i in range(n):
            if rng.random() < p:
                out[i] += rng.gauss(0.0, spec.jump_stdev)
    elif spec.kind == "crash":
        span = max(1, round(spec.crash_hours * 3600 / spec.step_s))
        start = max(0, n // 2 - span // 2)
        per = math.log(1 - spec.crash) / span
        for i in range(start, min(n, start + span)):
            out[i] += per
    return out


def _candles(price0: float, rets: list[float], intra_sd: float, rng: random.Random) -> list[Candle]:
    """Closes from log returns; high/low stretch past open/close by a half-normal of the step's volatility."""
    out = [Candle(price0, price0, price0, price0)]
    p = price0
    for r in rets:
        q = p * math.exp(r)
        hi = max(p, q) * math.exp(abs(rng.gauss(0.0, intra_sd)) * 0.5)
        lo = min(p, q) * math.exp(-abs(rng.gauss(0.0, intra_sd)) * 0.5)
        out.append(Candle(p, hi, lo, q))
        p = q
    return out


def generate(spec: PathSpec, start_prices: dict[str, float], primary: str) -> SimPath:
    """The primary coin follows `spec`; every other asset is an alt drawn against it (seeded, reproducible)."""
    if spec.kind not in KINDS:
        return from_csv(Path(spec.kind), spec, start_prices, primary)
    if spec.days <= 0 or spec.step_s <= 0:
        raise PathError("--days and --step: expected numbers > 0")
    if not 0 < spec.crash < 1:
        raise PathError(f"crash: expected a fall between 0 and 1, got {spec.crash}")
    n = max(1, round(spec.days * 86400 / spec.step_s))
    rng = random.Random(spec.seed)
    rets = _log_returns(spec, n, rng)
    intra = spec.vol * math.sqrt(spec.step_s / SECONDS_PER_YEAR) if spec.kind != "flat" else 0.0
    candles = {primary: _candles(start_prices[primary], rets, intra, rng)}
    path = SimPath(spec.kind, spec.step_s, candles)
    _add_alts(path, rets, spec, start_prices, primary, rng)
    if spec.funding_vol > 0:
        path.funding = drawn_funding(spec, n)
    return path


def drawn_funding(spec: PathSpec, n: int) -> list[float]:
    """A mean-reverting funding rate (half-life about three days), seeded apart from the price."""
    rng = random.Random(spec.seed * 7919 + 1)
    dt = spec.step_s / (8 * 3600)  # in funding intervals
    theta = math.log(2) / 9  # 9 intervals = 3 days
    r = spec.funding_mean
    out = [r]
    for _ in range(n):
        r += theta * (spec.funding_mean - r) * dt + spec.funding_vol * math.sqrt(dt) * rng.gauss(0.0, 1.0)
        out.append(r)
    return out


def _add_alts(path: SimPath, rets: list[float], spec: PathSpec, start_prices: dict[str, float], primary: str,
              rng: random.Random) -> None:
    """r_alt = beta · r + e, with Var(e) chosen so that corr(r_alt, r) = alt_corr."""
    others = [a for a in sorted(start_prices) if a != primary]
    if not others:
        return
    if not 0 < spec.alt_corr <= 1:
        raise PathError(f"alt_corr: expected a correlation in (0, 1], got {spec.alt_corr}")
    var = _var(rets)
    idio = abs(spec.alt_beta) * math.sqrt(var) * math.sqrt(1 / spec.alt_corr**2 - 1) if var > 0 else 0.0
    for asset in others:
        alt = [spec.alt_beta * r + (rng.gauss(0.0, idio) if idio > 0 else 0.0) for r in rets]
        path.candles[asset] = _candles(start_prices[asset], alt, math.sqrt(_var(alt)), rng)


def _var(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = sum(xs) / len(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def _time(value: str, row: int) -> float:
    """Seconds since the epoch from seconds, milliseconds or an RFC 3339 time."""
    v = value.strip()
    try:
        x = float(v)
    except ValueError:
        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise PathError(
                f"row {row} timestamp: expected seconds, milliseconds or RFC 3339, got {v[:30]!r}") from None
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    return x / 1000 if x > 1e11 else x


def from_csv(file: Path, spec: PathSpec, start_prices: dict[str, float], primary: str) -> SimPath:
    """Candles `timestamp,open,high,low,close[,mark,index,funding]` (header row required) for the primary coin."""
    try:
        fh = file.open(newline="")
    except OSError as exc:
        raise PathError(f"--path {file}: expected one of {', '.join(KINDS)} or a CSV file; cannot read it: "
                        f"{exc.strerror}") from None
    with fh:
        reader = csv.DictReader(fh)
        cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
        missing = [c for c in ("timestamp", "open", "high", "low", "close") if c not in cols]
        if missing:
            raise PathError(f"--path {file}: missing column {missing[0]!r} "
                            "(expected timestamp,open,high,low,close[,mark,index,funding])")
        times: list[float] = []
        candles: list[Candle] = []
        funding: list[float] = []
        for i, row in enumerate(reader, start=2):
            try:
                o, h, lo, c = (float(row[cols[k]]) for k in ("open", "high", "low", "close"))
                f = float(row[cols["funding"]]) if "funding" in cols and row[cols["funding"]] else math.nan
            except (TypeError, ValueError):
                raise PathError(f"--path {file}: row {i}: expected numbers in open, high, low, close") from None
            if min(o, h, lo, c) <= 0 or not lo <= min(o, c) <= max(o, c) <= h:
                raise PathError(f"--path {file}: row {i}: expected 0 < low <= open, close <= high")
            times.append(_time(row[cols["timestamp"]], i))
            candles.append(Candle(o, h, lo, c))
            funding.append(f)
    if len(candles) < 2:
        raise PathError(f"--path {file}: expected at least two candles")
    step = round(times[1] - times[0])
    if step <= 0 or any(round(b - a) != step for a, b in itertools.pairwise(times)):
        raise PathError(f"--path {file}: timestamps must be evenly spaced and increasing")
    first = candles[0].open
    all_candles = [Candle(first, first, first, first), *candles]
    rets = [math.log(b.close / a.close) for a, b in itertools.pairwise(all_candles)]
    path = SimPath(str(file), step, {primary: all_candles},
                   funding=[funding[0], *funding] if not all(math.isnan(x) for x in funding) else None,
                   start=datetime.fromtimestamp(times[0] - step, tz=UTC))
    alts = {a: p for a, p in start_prices.items() if a != primary}
    _add_alts(path, rets, PathSpec(step_s=step, seed=spec.seed, alt_beta=spec.alt_beta, alt_corr=spec.alt_corr),
              {primary: first, **alts}, primary, random.Random(spec.seed))
    return path
