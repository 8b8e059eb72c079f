"""Remote commands over MQTT: signed, fresh, used once — or refused.

Why so strict: a broker is shared infrastructure, and `resume` on a halted keeper places orders. So a
command must prove it knows the shared secret (HMAC-SHA256), be recent (30 s) and never have been seen
before; anything else is refused, and both outcomes are audited by the caller.

Wire format (one MQTT message on `{prefix}/{name}/cmd`)::

    {"body": "<JSON text>", "sig": "<hex HMAC-SHA256(secret, body text as UTF-8)>"}

where the body text is a JSON object ``{"command": "halt", "ts": 1763712000.25, "nonce": "…",
"reason": "…"}`` (`ts` in Unix seconds). Signing the body *text*, not a re-serialisation of it, means any
language can produce a valid message without agreeing on a canonical JSON form.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets as _secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hedged.model import TradingState

WINDOW = 30.0  # seconds a signed command stays valid (either side of our clock)
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

    def as_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "command": self.command, "nonce": self.nonce, "ts": self.ts,
                "state": self.state.value if self.state is not None else None, "reason": self.reason,
                "sig": self.sig}


@dataclass
class CommandVerifier:
    """Checks signature, freshness and novelty. Remembers signatures for twice the window."""

    secret: str
    clock: Callable[[], float]
    window: float = WINDOW
    _seen: dict[str, float] = field(default_factory=dict, repr=False)

    def remember(self, sig: str, ts: float) -> None:
        """Mark a signature as used (also called at start-up with the recently audited ones)."""
        self._seen[sig] = ts

    def check(self, payload: bytes) -> Verdict:
        now = self.clock()
        for sig, ts in list(self._seen.items()):
            if now - ts > 2 * self.window:
                del self._seen[sig]
        try:
            outer = json.loads(payload)
            body_text, sig = outer["body"], outer["sig"]
            if not isinstance(body_text, str) or not isinstance(sig, str):
                raise TypeError
        except (ValueError, TypeError, KeyError):
            return Verdict(False, 'malformed: expected {"body": "<JSON text>", "sig": "<hex HMAC-SHA256>"}')
        sig = sig.lower() if re.fullmatch(r"[0-9a-fA-F]{64}", sig) else ""
        if not sig or not hmac.compare_digest(sign(self.secret, body_text), sig):
            return Verdict(False, "bad signature", sig=sig)
        try:
            body = json.loads(body_text)
            command, ts = str(body["command"]), float(body["ts"])
            nonce, reason = str(body.get("nonce") or ""), str(body.get("reason") or "")
        except (ValueError, TypeError, KeyError):
            return Verdict(False, "malformed body: expected command and ts (Unix seconds)", sig=sig)

        def refuse(why: str) -> Verdict:
            return Verdict(False, why, command=command, nonce=nonce, ts=ts, sig=sig)

        if abs(now - ts) > self.window:
            return refuse(f"stale: ts is {now - ts:.0f}s from now (window {self.window:.0f}s)")
        if sig in self._seen:
            return refuse("replayed: this signed command was seen before")
        self.remember(sig, ts)
        if command not in COMMANDS:
            return refuse(f"unknown command {command!r}: expected one of {', '.join(COMMANDS)}")
        return Verdict(True, reason, command=command, state=COMMANDS[command], nonce=nonce, ts=ts, sig=sig)
