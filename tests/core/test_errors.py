"""classify(): every ccxt exception class maps to exactly one of ours, with the behaviour the keeper needs.

The table below is the contract; the walk over ccxt's whole exception tree makes sure a class added by a
ccxt upgrade still lands somewhere deliberate. Two checks go through real ccxt over loopback: a refused
connection and an HTTP 503, the start-up failures an operator actually meets.
"""

from __future__ import annotations

import inspect
import socket

import aiohttp
import ccxt.async_support as ccxt_async
import pytest
from aiohttp import web
from ccxt.base import errors as cx

from hedged.errors import Ambiguous, AuthFailed, RateLimited, Rejected, Transient, VenueError, classify, describe

OURS = (Ambiguous, RateLimited, Transient, Rejected, AuthFailed)

# ccxt class → (ours for a read, ours for a create/cancel, reason)
TABLE: list[tuple[type[Exception], type[VenueError], type[VenueError], str]] = [
    (cx.AuthenticationError, AuthFailed, AuthFailed, "authentication"),
    (cx.PermissionDenied, AuthFailed, AuthFailed, "permission"),
    (cx.AccountSuspended, AuthFailed, AuthFailed, "account_suspended"),
    (cx.AccountNotEnabled, AuthFailed, AuthFailed, "account_not_enabled"),
    (cx.InsufficientFunds, Rejected, Rejected, "insufficient_funds"),
    (cx.InvalidOrder, Rejected, Rejected, "invalid_order"),
    (cx.OrderNotFound, Rejected, Rejected, "not_found"),
    (cx.OrderImmediatelyFillable, Rejected, Rejected, "post_only"),
    (cx.DuplicateOrderId, Rejected, Rejected, "duplicate_id"),
    (cx.BadSymbol, Rejected, Rejected, "bad_symbol"),
    (cx.BadRequest, Rejected, Rejected, "bad_request"),
    (cx.NotSupported, Rejected, Rejected, "not_supported"),
    (cx.ExchangeError, Rejected, Rejected, "exchange_error"),
    (cx.RateLimitExceeded, RateLimited, RateLimited, "rate_limited"),
    (cx.DDoSProtection, RateLimited, RateLimited, "rate_limited"),
    (cx.InvalidNonce, Transient, Transient, "clock"),  # refused by the exchange's time check: nothing placed
    (cx.OnMaintenance, Transient, Transient, "maintenance"),
    (cx.RequestTimeout, Transient, Ambiguous, "timeout"),
    (cx.ExchangeNotAvailable, Transient, Ambiguous, "unavailable"),
    (cx.NetworkError, Transient, Ambiguous, "network"),
    (cx.BadResponse, Transient, Ambiguous, "bad_response"),
    (cx.NullResponse, Transient, Ambiguous, "bad_response"),
    (TimeoutError, Transient, Ambiguous, "timeout"),
    (ConnectionResetError, Transient, Ambiguous, "network"),
    (KeyError, Transient, Ambiguous, "unexpected"),
]


@pytest.mark.parametrize(("ccxt_cls", "read", "write", "reason"), TABLE, ids=[t[0].__name__ for t in TABLE])
def test_table(ccxt_cls: type[Exception], read: type[VenueError], write: type[VenueError], reason: str) -> None:
    exc = ccxt_cls("bybit GET https://api.bybit.com/v5/x?sign=abc something")
    for sent, want in ((False, read), (True, write)):
        got = classify(exc, venue="bybit", call="create_order", sent=sent)
        assert type(got) is want, (ccxt_cls, sent)
        assert got.reason == reason and got.venue == "bybit" and got.cause == ccxt_cls.__name__
        assert "sign=abc" not in str(got)  # signed query strings never reach a message
        assert "\n" not in str(got)


def test_every_ccxt_exception_maps_to_exactly_one_of_ours() -> None:
    base: type[Exception] = cx.BaseError  # ccxt is untyped: name the root so issubclass narrows
    classes = [c for _, c in inspect.getmembers(cx, inspect.isclass) if issubclass(c, base)]
    assert len(classes) > 30
    for c in classes:
        got = classify(c("x"))
        assert sum(type(got) is k for k in OURS) == 1, c
        # the retry rule follows the class: only what another try can fix is retried
        assert got.retryable == isinstance(got, Transient), c


def test_our_errors_pass_through_and_rate_limit_keeps_retry_after() -> None:
    mine = Rejected("no", reason="post_only")
    assert classify(mine) is mine
    limited = classify(cx.RateLimitExceeded("bybit 429"), retry_after=2.5)
    assert isinstance(limited, RateLimited) and limited.retry_after == 2.5


def test_a_connection_that_never_opened_is_not_ambiguous() -> None:
    """DNS failure or refused connection: the create never left us, so it cannot be in doubt."""
    for cause in (socket.gaierror(-2, "Name or service not known"), ConnectionRefusedError(111, "refused")):
        exc = cx.ExchangeNotAvailable("bybit POST https://api.bybit.com/v5/order/create")
        exc.__cause__ = cause
        got = classify(exc, sent=True)
        assert type(got) is Transient
    dns = cx.ExchangeNotAvailable("bybit GET https://api.bybit.com/v5/market/instruments-info?category=spot")
    dns.__cause__ = socket.gaierror(-2, "Name or service not known")
    assert describe(dns) == "cannot reach api.bybit.com: name resolution failed"


def test_describe_says_what_happened_in_words() -> None:
    down = cx.ExchangeNotAvailable('bybit GET https://api.bybit.com/v5/x 503 Service Unavailable {"a":1}')
    assert describe(down) == "api.bybit.com is unavailable: HTTP 503"
    auth = cx.AuthenticationError('bybit {"retCode":10004,"retMsg":"error sign!"}')
    assert describe(auth, venue="main") == "main refused our API key (authentication): error sign!"
    funds = cx.InsufficientFunds('bybit {"retCode":110007,"retMsg":"Insufficient available balance"}')
    assert describe(funds, venue="main", call="create_order") == (
        "main refused create_order (insufficient funds): Insufficient available balance")
    assert "clock" in describe(cx.InvalidNonce("bybit timestamp out of recv window"))


async def fetch_time_error(port: int) -> cx.BaseError:
    """What real ccxt's bybit raises for fetch_time against 127.0.0.1:`port`."""
    ex = ccxt_async.bybit({"timeout": 3000})
    ex.urls["api"] = {k: f"http://127.0.0.1:{port}" for k in ("spot", "futures", "v2", "public", "private")}
    try:
        with pytest.raises(cx.BaseError) as info:
            await ex.fetch_time()
    finally:
        await ex.close()
    return info.value


async def test_real_ccxt_refused_connection() -> None:
    """Through real ccxt: a closed loopback port is a Transient 'connection refused', never sent."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening, closed below: nothing answers there
    got = classify(await fetch_time_error(port), venue="sim", call="create_order", sent=True)
    assert type(got) is Transient
    assert str(got) == f"cannot reach 127.0.0.1:{port}: connection refused"


async def test_real_ccxt_http_503() -> None:
    async def unavailable(_: web.Request) -> web.Response:
        return web.Response(status=503, text="maintenance window")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", unavailable)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        err = await fetch_time_error(port)
    finally:
        await runner.cleanup()
    got = classify(err, venue="sim", call="fetch_time")
    assert type(got) is Transient and got.retryable
    assert str(got) == f"127.0.0.1:{port} is unavailable: HTTP 503"


def test_aiohttp_server_disconnect_is_in_doubt_for_a_create() -> None:
    exc = cx.NetworkError("bybit POST https://api.bybit.com/v5/order/create")
    exc.__cause__ = aiohttp.ServerDisconnectedError()
    assert type(classify(exc, sent=True)) is Ambiguous
    assert describe(exc) == "cannot reach api.bybit.com: connection dropped"
