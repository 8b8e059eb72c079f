"""Request signing (Bybit v5 HMAC-SHA256) and a per-key request-rate limit.

The check mirrors the venue: sign = hex HMAC(secret, timestamp + api_key + recvWindow + payload), where
payload is the raw query string (GET) or the raw JSON body (POST). A timestamp outside the receive window
answers 10002, a bad signature 10004, an unknown key 10003, too many requests 10006.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque

from hedged.sim.engine import EngineError


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def verify_request(
    secrets: dict[str, str],
    api_key: str | None,
    timestamp: str | None,
    recv_window: str | None,
    signature: str | None,
    payload: str,
    max_recv_window_ms: int,
    now_ms: int | None = None,
) -> str:
    """Return the API key when the request is authentic; raise EngineError(retCode) otherwise."""
    if not api_key or not timestamp or not signature:
        raise EngineError(10003, "API key is invalid.")
    secret = secrets.get(api_key)
    if secret is None:
        raise EngineError(10003, "API key is invalid.")
    try:
        ts = int(timestamp)
        window = int(recv_window) if recv_window else 5000
    except ValueError:
        raise EngineError(10001, "params error: timestamp or recv_window invalid") from None
    window = min(window, max_recv_window_ms)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if ts > now + 1000 or now - ts > window:
        raise EngineError(
            10002,
            f"invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{ts}],server_timestamp[{now}],recv_window[{window}]",
        )
    expected = sign(secret, timestamp + api_key + (recv_window or "") + payload)
    if not hmac.compare_digest(expected, signature.lower()):
        raise EngineError(10004, "error sign! origin_string[redacted]")
    return api_key


class RateLimiter:
    """Sliding window: at most `requests` per `per_seconds` per key; 0 requests disables it."""

    def __init__(self, requests: int, per_seconds: float) -> None:
        self.requests = requests
        self.per_seconds = per_seconds
        self.hits: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        if self.requests <= 0:
            return True
        t = time.monotonic() if now is None else now
        q = self.hits.setdefault(key, deque())
        while q and t - q[0] >= self.per_seconds:
            q.popleft()
        if len(q) >= self.requests:
            return False
        q.append(t)
        return True
