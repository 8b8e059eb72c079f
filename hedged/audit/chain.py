"""Canonical JSON and the hash chain over audit events.

Why: months later the log must prove it was not edited. Each event's hash covers its content and the
previous event's hash, so changing, deleting, inserting or reordering a row breaks the chain at that row.
The JSON form is canonical (sorted keys, no whitespace, Decimals as strings, RFC 3339 UTC times) so that
the same content always hashes the same on SQLite and Postgres, today and after a round trip.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

GENESIS = "0" * 64
CHAIN_VERSION = 1

JsonValue = None | bool | int | str | list["JsonValue"] | dict[str, "JsonValue"]


def rfc3339(ts: datetime) -> str:
    """UTC, always six fractional digits: one spelling per instant."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime: audit times must carry a timezone")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decimal_str(d: Decimal) -> str:
    """Plain notation (no exponent) so '1E+1' and '10' are stored the same way."""
    if not d.is_finite():
        return str(d)
    return format(d, "f")


def to_json(value: Any) -> JsonValue:
    """Turn a payload into plain JSON values; Decimals/floats become strings so nothing is rounded."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Enum):
        return to_json(value.value)
    if isinstance(value, Decimal):
        return decimal_str(value)
    if isinstance(value, float):
        # Floats are not exact; keep the shortest repr that round-trips, as a string.
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [to_json(v) for v in value]
        if isinstance(value, set | frozenset):
            items.sort(key=canonical_json)
        return items
    if hasattr(value, "model_dump"):  # pydantic models
        return to_json(value.model_dump())
    if hasattr(value, "__dataclass_fields__"):
        return to_json({k: getattr(value, k) for k in value.__dataclass_fields__})
    raise TypeError(f"cannot store {type(value).__name__} in the audit log")


def canonical_json(value: Any) -> str:
    return json.dumps(
        to_json(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def event_content(
    *,
    ts: datetime,
    keeper: str,
    cycle: int | None,
    kind: str,
    venue: str | None,
    symbol: str | None,
    asset: str | None,
    payload: Any,
    prev_hash: str,
) -> dict[str, Any]:
    """Everything an event's hash covers (the id is not covered: order is carried by prev_hash)."""
    return {
        "v": CHAIN_VERSION,
        "ts": rfc3339(ts),
        "keeper": keeper,
        "cycle": cycle,
        "kind": kind,
        "venue": venue,
        "symbol": symbol,
        "asset": asset,
        "payload": payload,
        "prev_hash": prev_hash,
    }


def event_hash(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainRow:
    """The stored columns of one event, as read back for verification."""

    id: int
    ts: datetime
    keeper: str
    cycle: int | None
    kind: str
    venue: str | None
    symbol: str | None
    asset: str | None
    payload: Any
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    problem: str = ""
    bad_id: int | None = None
    heads: Mapping[str, str] | None = None
    pruned: int = 0  # events pruned before the checkpoints the walk started from
    notes: tuple[str, ...] = ()  # what an anchor could not prove (its event was pruned)


@dataclass(frozen=True)
class ChainStart:
    """Where a pruned chain now starts, as its latest `checkpoint` event says (hedged audit prune)."""

    first_id: int  # the first event kept
    prev_hash: str  # the hash of the last event pruned: what the first kept event must follow
    pruned: int  # events pruned so far


CHECKPOINT = "checkpoint"


def chain_start(payload: Any) -> ChainStart | None:
    """The start a checkpoint event's payload declares (None if it is not a valid checkpoint payload)."""
    if not isinstance(payload, Mapping):
        return None
    try:
        return ChainStart(int(payload["first_id"]), str(payload["last_hash"]), int(payload["pruned"]))
    except (KeyError, TypeError, ValueError):
        return None


class ChainWalker:
    """Verify rows fed in id order (any number of keepers interleaved); stops at the first problem.

    `starts` names, per keeper, where a pruned chain begins: its first row must be that event and follow
    that hash. The checkpoint that says so is itself a chained event, so forging it breaks the chain after.
    An anchor is (keeper, hash, count) published outside the store: the keeper's COUNT-th event — counting
    the pruned ones, as the store's head does — must have HASH, and fewer events than COUNT is a truncated
    store. An anchor inside the pruned range is checked against the checkpoint's last pruned hash when it
    names exactly that event, and otherwise only by its count (its event is gone: `notes` says so).
    """

    def __init__(self, starts: Mapping[str, ChainStart] | None = None,
                 anchor: tuple[str, str, int] | None = None, *,
                 anchors: Iterable[tuple[str, str, int]] = ()) -> None:
        self.starts = dict(starts or {})
        self.heads: dict[str, tuple[int | None, str]] = {}
        self.counts: dict[str, int] = {}  # events of each keeper's chain so far, pruned ones included
        self.anchors = [*([anchor] if anchor is not None else []), *anchors]
        self.notes: list[str] = []
        self.count = 0
        self.problem = ""
        self.bad_id: int | None = None

    def feed(self, rows: Iterable[ChainRow]) -> bool:
        return all(self._check(row) for row in rows)

    def _check(self, row: ChainRow) -> bool:
        start = self.starts.get(row.keeper)
        prev_id, expected_prev = self.heads.get(row.keeper, (None, GENESIS))
        if prev_id is None and start is not None:
            if row.id != start.first_id:
                return self._fail(row, f"the chain was pruned to start at event {start.first_id}, but event "
                                       f"{row.id} comes first (a kept row was deleted or inserted)")
            expected_prev = start.prev_hash
        content = event_content(
            ts=row.ts, keeper=row.keeper, cycle=row.cycle, kind=row.kind, venue=row.venue,
            symbol=row.symbol, asset=row.asset, payload=row.payload, prev_hash=row.prev_hash,
        )
        if event_hash(content) != row.hash:
            return self._fail(row, "content does not match its hash (edited)")
        if row.prev_hash != expected_prev:
            after = (f"event {prev_id}" if prev_id is not None else
                     "the checkpoint's last pruned hash" if start is not None else "the start of the chain")
            return self._fail(
                row, f"does not follow {after} (a row was deleted, inserted or reordered before it)"
            )
        self.heads[row.keeper] = (row.id, row.hash)
        self.count += 1
        pruned = start.pruned if start is not None else 0
        n = self.counts[row.keeper] = self.counts.get(row.keeper, pruned) + 1
        for keeper, digest, count in self.anchors:
            if keeper == row.keeper and count == n and digest != row.hash:
                return self._fail(row, f"is event {n} of keeper {row.keeper} but its hash is not the published "
                                       f"head {digest[:16]}… (the chain was rewritten)")
        return True

    def _fail(self, row: ChainRow, why: str) -> bool:
        self.problem = f"event {row.id} (keeper {row.keeper}, {row.kind}): {why}"
        self.bad_id = row.id
        return False

    def result(self) -> VerifyResult:
        heads = {k: h for k, (_, h) in self.heads.items()}
        for keeper, digest, count in self.anchors if not self.problem else ():
            start = self.starts.get(keeper)
            have = self.counts.get(keeper, start.pruned if start is not None else 0)
            if have < count:
                self.problem = (f"keeper {keeper} has {have} events but the published head says {count}: the "
                                f"newest were deleted (truncated)")
                break
            if start is not None and count <= start.pruned:
                if count == start.pruned and digest != start.prev_hash:
                    self.problem = (f"keeper {keeper}: the published head {digest[:16]}… is event {count}, the "
                                    f"last pruned one, but the checkpoint says its hash is another (rewritten)")
                    break
                if count < start.pruned:
                    self.notes.append(f"the published head (event {count}) was pruned: only its count is checked")
        pruned = sum(s.pruned for s in self.starts.values())
        if self.problem:
            return VerifyResult(False, self.count, self.problem, self.bad_id, heads, pruned)
        return VerifyResult(True, self.count, heads=heads, pruned=pruned, notes=tuple(self.notes))
