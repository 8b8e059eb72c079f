"""Fault injection per endpoint, by seeded rate or by script (which calls), for resilience tests.

A rule is JSON like `{"endpoint": "/v5/order/create", "kind": "drop_reply", "rate": 0.3}` or
`{"endpoint": "/v5/order/create", "kind": "http_5xx", "calls": [1, 3]}` (1-based calls counted from when the
rule was added; an endpoint may name the method too, "POST /dapi/v1/order": Binance creates, queries and
cancels on one path) or `{"kind": "latency", "latency_ms": 300, "count": 5}` (the next five calls). Kinds:

- latency:          read the request, wait `latency_ms`, then do it and answer (done even if the client left)
- hang:             do nothing for `hang_s` (past the client's timeout), then answer normally
- http_5xx:         answer HTTP `status` (default 503) with a plain-text body
- http_429:         answer HTTP 429
- drop_reply:       perform the request, then close the connection without an answer
- post_only_reject: a post-only order is cancelled as if it would take liquidity
- partial_fill:     an order fills `fill_ratio` of its quantity at once, the rest rests
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any

from hedged.sim.settings import FaultSettings


@dataclass
class FaultRule:
    settings: FaultSettings
    seen: int = 0
    fired: int = 0

    def matches(self, endpoint: str, method: str | None = None) -> bool:
        """`endpoint` is a path pattern; "POST /dapi/v1/order" also names the method (one path, several
        methods on Binance: create POST, query GET, cancel DELETE)."""
        pattern = self.settings.endpoint
        if fnmatchcase(endpoint, pattern):
            return True
        return method is not None and fnmatchcase(f"{method} {endpoint}", pattern)

    def describe(self) -> dict[str, Any]:
        d = self.settings.model_dump(mode="json", exclude_defaults=True)
        d["kind"] = self.settings.kind
        d["endpoint"] = self.settings.endpoint
        d["seen"] = self.seen
        d["fired"] = self.fired
        return d


@dataclass
class Faults:
    """The faults one request must suffer, decided when it arrives."""

    latency_ms: int = 0
    hang_s: float = 0.0
    http_status: int | None = None
    drop_reply: bool = False
    post_only_reject: bool = False
    partial_fill_ratio: Decimal | None = None
    kinds: list[str] = field(default_factory=list)


class FaultInjector:
    """Holds the rules and a seeded RNG so rate-based faults are reproducible."""

    def __init__(self, seed: int = 0) -> None:
        self.rules: list[FaultRule] = []
        self.rng = random.Random(seed)

    def reseed(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def add(self, rule: FaultSettings | dict[str, Any]) -> FaultRule:
        fs = rule if isinstance(rule, FaultSettings) else FaultSettings.model_validate(rule)
        r = FaultRule(fs)
        self.rules.append(r)
        return r

    def clear(self) -> None:
        self.rules.clear()

    def decide(self, endpoint: str, method: str | None = None) -> Faults:
        out = Faults()
        for r in self.rules:
            if not r.matches(endpoint, method):
                continue
            r.seen += 1
            s = r.settings
            if s.calls:
                fire = r.seen in s.calls
            elif s.count is not None:
                fire = r.fired < s.count
            else:
                fire = s.rate > 0 and self.rng.random() < s.rate
            if not fire:
                continue
            r.fired += 1
            out.kinds.append(s.kind)
            if s.kind == "latency":
                out.latency_ms += s.latency_ms
            elif s.kind == "hang":
                out.hang_s = max(out.hang_s, s.hang_s)
            elif s.kind == "http_5xx":
                out.http_status = s.status
            elif s.kind == "http_429":
                out.http_status = 429
            elif s.kind == "drop_reply":
                out.drop_reply = True
            elif s.kind == "post_only_reject":
                out.post_only_reject = True
            elif s.kind == "partial_fill":
                out.partial_fill_ratio = s.fill_ratio
        return out

    def describe(self) -> list[dict[str, Any]]:
        return [r.describe() for r in self.rules]
