"""Remote commands over MQTT: signed, fresh, used once — or refused.

Why so strict: a broker is shared infrastructure, and `resume` on a halted keeper places orders. So a
command must prove it knows the shared secret (HMAC-SHA256), be recent (30 s) and never have been seen
before; anything else is refused, and both outcomes are audited by the caller.

Wire format (one MQTT message on `{prefix}/{name}/cmd`)::

    {"body": "<JSON text>", "sig": "<hex HMAC-SHA256(secret, body text as UTF-8)>"}

where the body text is a JSON object ``{"command": "halt", "ts": 1763712000.25, "nonce": "…",
"reason": "…"}`` (`ts` in Unix seconds, a finite number, or an RFC 3339 time with an offset). Signing the
body *text*, not a re-serialisation of it, means any language can produce a valid message without agreeing
on a canonical JSON form.

Hostile input: a message is bounded in size and nesting before it is parsed, and nothing raised while
checking one escapes `check` — the intake must survive whatever is published on `cmd`. Replay protection
survives a restart: each verdict carries `replay_id` (SHA-256 of the signature) and `ts` as audited, which
the bridge reads back at start. Refusals are rate-limited in the audit (`RefusalBudget`); accepted commands
are always recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets as _secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from hedged import boundedjson
from hedged.model import TradingState

WINDOW = 30.0  # seconds a signed command stays valid (either side of our clock)
MAX_BYTES = 4096  # a command is a few hundred bytes
MAX_DEPTH = 4  # the outer object, and the body object; nothing in a command nests further
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
COMMANDS: dict[str, TradingState] = {
    "pause": TradingState.PAUSED,
    "resume": TradingState.RUNNING,
    "halt": TradingState.HALTED,
    "reduce-only": TradingState.REDUCING,
}


def sign(secret: str, body: str) -> str:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


def signed_command(secret: str, command: str, *, ts: float, nonce: str | None = None, reason: str = "") -> bytes:
    """The MQTT payload an operator sends (see `hedged command`)."""
    body = json.dumps({"command": command, "ts": ts, "nonce": nonce or _secrets.token_hex(8), "reason": reason},
                      separators=(",", ":"))
    return json.dumps({"body": body, "sig": sign(secret, body)}).encode()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What became of one command message; `as_json` is both the audit payload and the result message."""

    accepted: bool
    reason: str  # why refused, or the operator's reason when accepted
    command: str | None = None
    state: TradingState | None = None
    nonce: str | None = None
    ts: float | None = None
    sig: str = ""  # the message's signature if it is well-formed hex (not secret): remembered against replays
    suppressed: int = 0  # refusals not audited one by one (rate limit) since the last audited refusal

    @property
    def replay_id(self) -> str:
        """What replay protection remembers (and the audit keeps): SHA-256 of the signature."""
        return replay_id(self.sig) if self.sig else ""

    def as_json(self) -> dict[str, Any]:
        out = {"accepted": self.accepted, "command": self.command, "nonce": self.nonce, "ts": self.ts,
               "state": self.state.value if self.state is not None else None, "reason": self.reason,
               "sig": self.sig, "replay_id": self.replay_id}
        if self.suppressed:
            out["suppressed"] = self.suppressed
        return out


def replay_id(sig: str) -> str:
    return hashlib.sha256(sig.lower().encode()).hexdigest()


def parse_ts(value: Any) -> float:
    """A command's `ts`: a finite number of Unix seconds, or an RFC 3339 time with an offset; else ValueError.

    Why strict: NaN compares false with everything, so `"ts": NaN` once passed the freshness check."""
    if isinstance(value, bool):
        raise ValueError("ts: expected Unix seconds or an RFC 3339 time, got a boolean")
    if isinstance(value, int | float):
        ts = float(value)
        if not math.isfinite(ts):
            raise ValueError(f"ts: expected a finite number, got {value}")
        return ts
    if isinstance(value, str) and RFC3339.match(value):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise ValueError("ts: expected Unix seconds or an RFC 3339 time with an offset")


@dataclass
class RefusalBudget:
    """How many refused commands are audited one by one: `burst` per `window` seconds, then only counted.

    Why: anyone who may publish on `cmd` could otherwise grow the audit store without bound. The count rides
    on the next audited refusal (`Verdict.suppressed`); accepted commands never pass through here."""

    burst: int = 20
    window: float = 60.0
    _start: float = field(default=-math.inf, repr=False)
    _used: int = field(default=0, repr=False)
    _suppressed: int = field(default=0, repr=False)

    def admit(self, verdict: Verdict, now: float) -> Verdict | None:
        """The verdict to audit (with the suppressed count), or None to only count it."""
        if now - self._start >= self.window:
            self._start, self._used = now, 0
        if self._used >= self.burst:
            self._suppressed += 1
            return None
        self._used += 1
        out, self._suppressed = replace(verdict, suppressed=self._suppressed), 0
        return out


@dataclass
class CommandVerifier:
    """Checks signature, freshness and novelty. Remembers signatures for twice the window."""

    secret: str
    clock: Callable[[], float]
    window: float = WINDOW
    _seen: dict[str, float] = field(default_factory=dict, repr=False)

    def remember(self, sig: str, ts: float) -> None:
        """Mark a signature as used."""
        self.remember_id(replay_id(sig), ts)

    def remember_id(self, rid: str, ts: float) -> None:
        """Mark a replay id as used (called at start-up with the recently audited ones)."""
        if math.isfinite(ts):
            self._seen[rid] = ts

    def check(self, payload: bytes) -> Verdict:
        """The verdict on one message; never raises, whatever the message holds."""
        try:
            return self._check(payload)
        except Exception as exc:  # a bug here must not take the intake down: refuse, and say what broke
            return Verdict(False, f"malformed: could not be checked ({type(exc).__name__})")

    def _check(self, payload: bytes) -> Verdict:
        now = self.clock()
        for rid, ts in list(self._seen.items()):
            if now - ts > 2 * self.window:
                del self._seen[rid]
        shape = 'malformed: expected {"body": "<JSON text>", "sig": "<hex HMAC-SHA256>"}'
        try:
            outer = boundedjson.loads(payload, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH)
        except boundedjson.JsonInputError as exc:
            return Verdict(False, f"{shape}: {exc}")
        if not isinstance(outer, dict) or not isinstance(outer.get("body"), str) or not isinstance(
                outer.get("sig"), str):
            return Verdict(False, shape)
        body_text, sig = outer["body"], outer["sig"]
        sig = sig.lower() if re.fullmatch(r"[0-9a-fA-F]{64}", sig) else ""
        if not sig or not hmac.compare_digest(sign(self.secret, body_text), sig):
            return Verdict(False, "bad signature", sig=sig)
        try:
            body = boundedjson.loads(body_text, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH)
            if not isinstance(body, dict):
                raise ValueError("body: expected a JSON object")
            command, ts = str(body["command"]), parse_ts(body["ts"])
            nonce, reason = str(body.get("nonce") or "")[:100], str(body.get("reason") or "")[:500]
        except (ValueError, TypeError, KeyError) as exc:
            why = str(exc) if isinstance(exc, ValueError) else "expected command and ts (Unix seconds)"
            return Verdict(False, f"malformed body: {why}", sig=sig)

        def refuse(why: str) -> Verdict:
            return Verdict(False, why, command=command, nonce=nonce, ts=ts, sig=sig)

        if abs(now - ts) > self.window:
            return refuse(f"stale: ts is {now - ts:.0f}s from now (window {self.window:.0f}s)")
        if replay_id(sig) in self._seen:
            return refuse("replayed: this signed command was seen before")
        self.remember(sig, ts)
        if command not in COMMANDS:
            return refuse(f"unknown command {command!r}: expected one of {', '.join(COMMANDS)}")
        return Verdict(True, reason, command=command, state=COMMANDS[command], nonce=nonce, ts=ts, sig=sig)
