"""De-duplication of continuous alert conditions: fire once, re-fire when worse or after a cooldown, resolve once.

A *condition* is something a monitor sees this cycle under a stable `key` (for example
`liquidation:bybit:BTC/USD:BTC`), with a level and optionally a measured `value`. This module remembers,
per key, what was last *sent*, and decides what to send now. It is a pure state machine: the memory goes
in and comes out as a value, the time comes from the caller, and nothing here has an id or a clock.

Rules, per key, each cycle:

- **new**: the key is firing and was not active → send it (`reason` "new"); it becomes active.
- **worse**: the key was active, and either its level is above the level last sent (info < warning <
  critical), or its value is *materially worse* than the value last sent: at least `worsen_factor` times
  it when higher is worse (funding cost, basis, leverage, drift), at most 1/`worsen_factor` of it when
  lower is worse (liquidation distance). Values of 0 or below are never "materially worse" than anything
  (the ratio is meaningless there; the level still escalates). → send (`reason` "worse").
- **cooldown**: the key was active, is not worse, and the last send was `cooldown` seconds ago or more →
  send again (`reason` "cooldown"). A cooldown of 0 repeats every cycle.
- otherwise: quiet. The memory keeps what was last *sent* (not what is seen now), so a condition that
  eases (critical → warning) and comes back (→ critical) is not news, and a slow creep of the value is
  measured against what the operator was last told.
- **resolved**: the key was active, was *checked* this cycle (the monitor could evaluate it), and is
  not firing → send one `resolved` notice (level info) and forget the key; firing again later is "new".
  A key that could not be checked this cycle (no data: the exchange could not be read, a funding rate
  was missing) stays active and silent: missing data never clears an alert.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

Level = Literal["info", "warning", "critical"]
NoticeKind = Literal["new", "worse", "cooldown", "resolved"]
LEVEL_RANK: Mapping[str, int] = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition firing this cycle. `data` and `labels` hold JSON-able values only."""

    key: str  # stable identity, e.g. "liquidation:bybit:BTC/USD:BTC"
    code: str  # the alert code, e.g. "liquidation"
    level: Level
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, Any] = field(default_factory=dict)  # identity fields (venue, symbol) kept for `resolved`
    value: Decimal | None = None  # the measure the "materially worse" rule compares
    higher_is_worse: bool = True


@dataclass(frozen=True, slots=True)
class Firing:
    """An active key: what was last sent for it, and since when it has been firing."""

    key: str
    code: str
    level: Level  # last sent
    value: Decimal | None  # last sent
    message: str  # last sent
    labels: Mapping[str, Any]
    since: datetime  # first fired, this episode
    last_sent: datetime
    sent: int  # notices sent this episode


@dataclass(frozen=True, slots=True)
class DedupeState:
    active: Mapping[str, Firing] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notice:
    """What to send: an alert without its id, time and keeper (the caller adds those)."""

    kind: NoticeKind
    key: str
    code: str
    level: Level
    message: str
    data: Mapping[str, Any]


def iso(ts: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z: 2026-11-21T12:00:00.000Z (naive times are taken as UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def is_worse(c: Condition, last: Firing, worsen_factor: Decimal) -> bool:
    """The level went up, or the value is materially worse than the one last sent (see the module doc)."""
    if LEVEL_RANK[c.level] > LEVEL_RANK[last.level]:
        return True
    if c.value is None or last.value is None or last.value <= 0 or c.value <= 0:
        return False
    if c.higher_is_worse:
        return c.value >= last.value * worsen_factor
    return c.value * worsen_factor <= last.value


def step(
    memory: DedupeState,
    firing: Sequence[Condition],
    checked: Collection[str],
    *,
    now: datetime,
    cooldown: float,
    worsen_factor: Decimal,
) -> tuple[DedupeState, tuple[Notice, ...]]:
    """One cycle: `firing` are this cycle's conditions (unique keys); `checked` the keys evaluated this
    cycle, firing or not (a firing key counts as checked). Returns the new memory and what to send:
    firing notices in the order given, then `resolved` ones in the order the keys became active."""
    active = dict(memory.active)
    notices: list[Notice] = []
    seen: set[str] = set()
    for c in firing:
        if c.key in seen:
            raise ValueError(f"condition key {c.key!r} given twice in one cycle")
        seen.add(c.key)
        last = active.get(c.key)
        kind: NoticeKind
        if last is None:
            kind = "new"
        elif is_worse(c, last, worsen_factor):
            kind = "worse"
        elif (now - last.last_sent).total_seconds() >= cooldown:
            kind = "cooldown"
        else:
            continue
        since = now if last is None else last.since
        sent = 1 if last is None else last.sent + 1
        active[c.key] = Firing(key=c.key, code=c.code, level=c.level, value=c.value, message=c.message,
                               labels=dict(c.labels), since=since, last_sent=now, sent=sent)
        data = {**c.labels, **c.data, "status": "firing", "key": c.key, "reason": kind, "since": iso(since)}
        notices.append(Notice(kind, c.key, c.code, c.level, c.message, data))
    for key, last in memory.active.items():
        if key in seen or key not in checked:
            continue
        del active[key]
        data = {**last.labels, "status": "resolved", "key": key, "was": last.level, "since": iso(last.since),
                "duration_s": int((now - last.since).total_seconds())}
        notices.append(Notice("resolved", key, last.code, "info", f"resolved: {last.message}", data))
    return DedupeState(active=active), tuple(notices)
