"""Which cycle rows are worth writing: the rule that keeps the audit store from growing without bound.

Why: a quiet instrument at the default 10 s interval would otherwise cost a full row 8,640 times a day
(about 14 MB a day). A row is written when it says something new — an order (the "why before the what":
every decision that leads to an order is durable before the order), a different action, different reason
codes, or an input that moved beyond a small tolerance — and otherwise once every `quiet_every` seconds as a
heartbeat carrying `quiet`: how many cycles (itself included) it stands for. Pure: the store keeps the state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

Key = tuple[str, str]  # (venue, symbol)
REL_TOLERANCE = Decimal("0.005")  # mark, exposure, band: a 0.5 % move is news
BAND_TOLERANCE = Decimal("0.1")  # hedge, target, inflight, drift: a tenth of the band is news
FUNDING_TOLERANCE = Decimal("0.0001")  # 1 bp of funding rate per interval
BASIS_TOLERANCE = Decimal(5)  # bps
_IN_BAND_UNITS = ("hedge", "target", "inflight", "drift")
_RELATIVE = ("mark", "exposure", "band")


@dataclass(frozen=True, slots=True)
class Row:
    """What the rule looks at in one instrument's cycle row."""

    action: str
    reasons: tuple[str, ...]
    values: Mapping[str, Decimal | None]
    ts: datetime


@dataclass(frozen=True, slots=True)
class Written:
    row: Row  # the last row written for this instrument
    skipped: int = 0  # cycles since, not written


@dataclass(frozen=True, slots=True)
class QuietState:
    last: Mapping[Key, Written] = field(default_factory=dict)


def codes(reasons: tuple[str, ...]) -> tuple[str, ...]:
    """Reason codes ('hold', 'stale_data', ...) without their details, which carry ever-changing numbers."""
    return tuple(r.split(":", 1)[0].strip() for r in reasons)


def moved(old: Mapping[str, Decimal | None], new: Mapping[str, Decimal | None]) -> str:
    """The first input that moved beyond its tolerance ('' if none did)."""
    band = abs(new.get("band") or old.get("band") or Decimal(0))
    for name in (*_IN_BAND_UNITS, *_RELATIVE, "funding_rate", "basis"):
        a, b = old.get(name), new.get(name)
        if a is None or b is None:
            if (a is None) != (b is None):
                return name
            continue
        delta = abs(b - a)
        if name in _IN_BAND_UNITS:
            limit = band * BAND_TOLERANCE
        elif name in _RELATIVE:
            limit = max(abs(a), abs(b)) * REL_TOLERANCE
        elif name == "funding_rate":
            limit = FUNDING_TOLERANCE
        else:
            limit = BASIS_TOLERANCE
        if delta > limit:
            return name
    return ""


def decide_row(prev: Written | None, row: Row, quiet_every: float) -> tuple[bool, int]:
    """(write it?, the `quiet` count it stands for). quiet_every = 0 writes every row."""
    if prev is None or quiet_every <= 0 or row.action == "trade":
        return True, (prev.skipped + 1) if prev else 1
    last = prev.row
    news = (row.action != last.action or codes(row.reasons) != codes(last.reasons)
            or bool(moved(last.values, row.values)))
    due = row.ts - last.ts >= timedelta(seconds=quiet_every)
    return news or due, prev.skipped + 1


def select(state: QuietState, rows: Mapping[Key, Row], quiet_every: float
           ) -> tuple[QuietState, dict[Key, int]]:
    """The rows to write (key → its `quiet` count) and the state after this cycle."""
    last = dict(state.last)
    out: dict[Key, int] = {}
    for key, row in rows.items():
        write, count = decide_row(last.get(key), row, quiet_every)
        if write:
            out[key] = count
            last[key] = Written(row)
        else:
            prev = last[key]
            last[key] = Written(prev.row, prev.skipped + 1)
    return QuietState(last), out
