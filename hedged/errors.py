"""The project's own exchange errors: what a failed exchange call means for the keeper, decided once.

ccxt's exception tree answers "what went wrong"; the keeper needs "what do I do now", and the two do not line
up (`RateLimitExceeded` and `InvalidNonce` are `NetworkError`s, yet neither leaves an order in doubt). Every
ccxt or network exception that leaves `CcxtVenue` is turned into exactly one of these by `classify`, with a
one-line message a person can act on ("cannot reach api.bybit.com: name resolution failed"), never a dump.

    VenueError
      Transient     retry later; a breaker tripped by these resumes by itself
        RateLimited   refused at the door (HTTP 429, 418, DDoS protection): definitive, back off
        Ambiguous     a state-changing request may have reached the exchange: look the client id up,
                      never send it again
      Rejected      this request is refused and another try is refused again (reason says why)
      AuthFailed    keys wrong, expired, without permission, or the account is blocked: halt for a human
"""

from __future__ import annotations

import asyncio
import re
import socket
from typing import ClassVar

import aiohttp
from ccxt.base import errors as cx


class VenueError(Exception):
    """An exchange call failed. `str()` is one line for people; `reason` a short code for machines."""

    kind: ClassVar[str] = "error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, reason: str = "", venue: str = "", call: str = "", cause: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.kind
        self.venue = venue
        self.call = call
        self.cause = cause  # the ccxt (or Python) class it came from, for logs and metrics


class Transient(VenueError):
    """Network down, timeout, 5xx, maintenance, clock skew: nothing is wrong with the request; try later."""

    kind = "transient"
    retryable = True


class RateLimited(Transient):
    """Refused before any matching: the request did nothing. Back off for `retry_after` seconds if known."""

    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: str) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Ambiguous(Transient):
    """A create or cancel may have reached the exchange: resolve it by client id, never by resending."""

    kind = "ambiguous"


class Rejected(VenueError):
    """The exchange refused this request (insufficient funds, post-only would take, unknown order, …)."""

    kind = "rejected"


class AuthFailed(VenueError):
    """Authentication or permission failed: every request will fail the same way until a human acts."""

    kind = "auth_failed"


# ccxt class → (our class, reason). Looked up along the exception's MRO, most specific class first, so a
# subclass listed here wins over its parent and an unlisted subclass falls back to its nearest listed parent.
_TABLE: dict[type[BaseException], tuple[type[VenueError], str]] = {
    cx.OrderImmediatelyFillable: (Rejected, "post_only"),
    cx.OrderNotFound: (Rejected, "not_found"),
    cx.OrderNotCached: (Rejected, "not_found"),
    cx.DuplicateOrderId: (Rejected, "duplicate_id"),
    cx.OrderNotFillable: (Rejected, "not_fillable"),
    cx.ContractUnavailable: (Rejected, "bad_symbol"),
    cx.InvalidOrder: (Rejected, "invalid_order"),
    cx.InsufficientFunds: (Rejected, "insufficient_funds"),
    cx.BadSymbol: (Rejected, "bad_symbol"),
    cx.BadRequest: (Rejected, "bad_request"),
    cx.ArgumentsRequired: (Rejected, "bad_request"),
    cx.NotSupported: (Rejected, "not_supported"),
    cx.MarketClosed: (Rejected, "market_closed"),
    cx.NoChange: (Rejected, "no_change"),
    cx.InvalidAddress: (Rejected, "invalid_address"),
    cx.InvalidProxySettings: (Rejected, "config"),
    cx.ExchangeClosedByUser: (Rejected, "closed"),
    cx.OperationRejected: (Rejected, "rejected"),
    cx.RestrictedLocation: (AuthFailed, "restricted_location"),
    cx.ManualInteractionNeeded: (AuthFailed, "manual_interaction"),
    cx.AccountSuspended: (AuthFailed, "account_suspended"),
    cx.AccountNotEnabled: (AuthFailed, "account_not_enabled"),
    cx.PermissionDenied: (AuthFailed, "permission"),
    cx.AuthenticationError: (AuthFailed, "authentication"),
    cx.ExchangeError: (Rejected, "exchange_error"),
    cx.RateLimitExceeded: (RateLimited, "rate_limited"),
    cx.DDoSProtection: (RateLimited, "rate_limited"),
    cx.InvalidNonce: (Transient, "clock"),
    cx.OnMaintenance: (Transient, "maintenance"),
    cx.CancelPending: (Transient, "cancel_pending"),
    cx.RequestTimeout: (Transient, "timeout"),
    cx.ExchangeNotAvailable: (Transient, "unavailable"),
    cx.NetworkError: (Transient, "network"),
    cx.BadResponse: (Transient, "bad_response"),
    cx.OperationFailed: (Transient, "failed"),
    cx.BaseError: (Transient, "error"),
    TimeoutError: (Transient, "timeout"),
    aiohttp.ClientError: (Transient, "network"),
    OSError: (Transient, "network"),
}
# Reasons after which a state-changing request may have been executed although we never saw the reply.
_IN_DOUBT = frozenset({"timeout", "unavailable", "network", "bad_response", "failed", "error", "unexpected"})


def _lookup(exc: BaseException) -> tuple[type[VenueError], str]:
    for cls in type(exc).__mro__:
        if cls in _TABLE:
            return _TABLE[cls]
    return Transient, "unexpected"


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 10:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def never_sent(exc: BaseException) -> bool:
    """True when the connection itself failed (DNS, refused, unreachable): the request never left us."""
    for e in _chain(exc):
        if isinstance(e, socket.gaierror | ConnectionRefusedError | aiohttp.ClientConnectorError):
            return True
    return False


def classify(exc: BaseException, *, venue: str = "", call: str = "", sent: bool = False,
             retry_after: float | None = None) -> VenueError:
    """The one mapping from a ccxt/network exception to ours.

    `sent` says the call changes state at the exchange (create, cancel): then a failure after the request
    may have left us is `Ambiguous`. A connection that failed before sending is plain `Transient`.
    """
    if isinstance(exc, VenueError):
        return exc
    cls, reason = _lookup(exc)
    if cls is Transient and sent and reason in _IN_DOUBT and not never_sent(exc):
        cls = Ambiguous
    message = describe(exc, venue=venue, call=call)
    kw = {"reason": reason, "venue": venue, "call": call, "cause": type(exc).__name__}
    if cls is RateLimited:
        return RateLimited(message, retry_after=retry_after, **kw)
    return cls(message, **kw)


_URL = re.compile(r"https?://([^/\s?#]+)[^\s]*")
_STATUS = re.compile(r"\s([1-5]\d\d)(?:\s|$)")
_MSG = re.compile(r'"(?:retMsg|msg|message|error_message)"\s*:\s*"([^"]{1,200})"')


def _host(text: str) -> str:
    m = _URL.search(text)
    return m.group(1) if m else ""


def _why_unreachable(exc: BaseException) -> str:
    for e in _chain(exc):
        if isinstance(e, socket.gaierror):
            return "name resolution failed"
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, TimeoutError | asyncio.TimeoutError | cx.RequestTimeout):
            return "no answer in time"
        if isinstance(e, aiohttp.ServerDisconnectedError):
            return "connection dropped"
        if isinstance(e, aiohttp.ClientConnectorError):
            os_err = e.os_error
            if isinstance(os_err, socket.gaierror):
                return "name resolution failed"
            if isinstance(os_err, ConnectionRefusedError):
                return "connection refused"
            return (os_err.strerror or "connection failed").lower() if os_err is not None else "connection failed"
    return ""


def _exchange_words(text: str) -> str:
    """What the exchange said, without URLs' query strings (they carry signatures) and without the JSON."""
    m = _MSG.search(text)
    if m:
        return m.group(1)
    text = _URL.sub(lambda u: u.group(0).split("?", 1)[0], text)
    return " ".join(text.split())[:200]


def describe(exc: BaseException, *, venue: str = "", call: str = "") -> str:
    """One line a person can act on; never a traceback, never a signed URL."""
    text = str(exc)
    host = _host(text) or venue or "the exchange"
    who = venue or host
    cls, reason = _lookup(exc)
    if cls is Transient and reason in {"timeout", "unavailable", "network", "error", "failed", "unexpected"}:
        why = _why_unreachable(exc)
        if why:
            return f"cannot reach {host}: {why}"
        status = _STATUS.search(_URL.sub("", text))
        if status and status.group(1).startswith("5"):
            return f"{host} is unavailable: HTTP {status.group(1)}"
        if reason == "timeout":
            return f"cannot reach {host}: no answer in time"
        if reason == "unexpected":
            return f"{who}: unexpected {type(exc).__name__} during {call or 'a call'}: {_exchange_words(text)}"
        return f"cannot reach {host}: {_exchange_words(text) or type(exc).__name__}"
    if reason == "maintenance":
        return f"{host} is under maintenance"
    if reason == "bad_response":
        return f"{who} sent a reply we cannot read ({type(exc).__name__})"
    if reason == "clock":
        return f"{who} refused the request time: this machine's clock is off (check NTP): {_exchange_words(text)}"
    if cls is RateLimited:
        return f"{who} rate limit hit: {_exchange_words(text)}"
    if cls is AuthFailed:
        return f"{who} refused our API key ({reason.replace('_', ' ')}): {_exchange_words(text)}"
    action = f" {call}" if call else ""
    return f"{who} refused{action} ({reason.replace('_', ' ')}): {_exchange_words(text)}"
