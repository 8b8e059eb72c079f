"""Auth failures, the rate limit and every injected fault surface in ccxt as a real venue's would."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from hedged.sim import Emulator, make_client
from hedged.sim.faults import FaultInjector

INV = "BTC/USD:BTC"


async def admin(emu: Emulator, path: str, body: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as s, s.post(f"{emu.url}/_admin/{path}", json=body) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_bad_signature_is_authentication_error(emu: Emulator) -> None:
    c = make_client(emu.url, "demo-key", "wrong-secret")
    try:
        with pytest.raises(ccxt.AuthenticationError) as err:
            await c.fetch_balance()
        assert "wrong-secret" not in str(err.value) and "demo-secret" not in str(err.value)
    finally:
        await c.close()


async def test_unknown_key_is_authentication_error(emu: Emulator) -> None:
    c = make_client(emu.url, "nobody", "x")
    try:
        with pytest.raises(ccxt.AuthenticationError):
            await c.fetch_balance()
    finally:
        await c.close()


async def test_stale_timestamp_is_invalid_nonce(client: Any) -> None:
    client.options["timeDifference"] = 120_000  # our clock two minutes behind: outside recvWindow
    with pytest.raises(ccxt.InvalidNonce):
        await client.fetch_balance()


async def test_rate_limit_is_rate_limit_exceeded(client: Any, emu: Emulator) -> None:
    await admin(emu, "settings", {"rate_limit": {"requests": 3, "per_seconds": 60}})
    for _ in range(3):
        await client.fetch_balance()
    with pytest.raises(ccxt.RateLimitExceeded):
        await client.fetch_balance()


async def test_hang_past_timeout_is_request_timeout(client: Any, emu: Emulator) -> None:
    await admin(emu, "faults", {"endpoint": "/v5/order/create", "kind": "hang", "hang_s": 0.6, "count": 1})
    client.timeout = 300
    with pytest.raises(ccxt.RequestTimeout):
        await client.create_order(INV, "limit", "buy", 100, 60000, {"clientOrderId": "hung"})
    client.timeout = 5000
    await asyncio.sleep(0.6)
    assert await client.fetch_open_orders(INV) == []  # the client gave up before the work: nothing done


async def test_latency_past_timeout_still_places_the_order(client: Any, emu: Emulator) -> None:
    # the request reached the exchange in full: it is executed late even though the client gave up (or died)
    await admin(emu, "faults", {"endpoint": "/v5/order/create", "kind": "latency", "latency_ms": 600, "count": 1})
    client.timeout = 300
    with pytest.raises(ccxt.RequestTimeout):
        await client.create_order(INV, "limit", "buy", 100, 60000, {"clientOrderId": "late-1"})
    client.timeout = 5000
    assert await client.fetch_open_orders(INV) == []  # not yet
    await asyncio.sleep(0.6)
    late = await client.fetch_open_orders(INV)
    assert [o["clientOrderId"] for o in late] == ["late-1"]


async def test_5xx_is_exchange_not_available(client: Any, emu: Emulator) -> None:
    await admin(emu, "faults", {"endpoint": "/v5/position/list", "kind": "http_5xx", "calls": [1]})
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await client.fetch_positions([INV])
    assert await client.fetch_positions([INV])  # the script only hit the first call


async def test_429_is_rate_limit_exceeded(client: Any, emu: Emulator) -> None:
    await admin(emu, "faults", {"endpoint": "/v5/market/tickers", "kind": "http_429", "count": 1})
    with pytest.raises(ccxt.RateLimitExceeded):
        await client.fetch_ticker(INV)


async def test_drop_reply_accepts_the_order_but_the_client_never_hears(client: Any, emu: Emulator) -> None:
    await admin(emu, "faults", {"endpoint": "/v5/order/create", "kind": "drop_reply", "count": 1})
    with pytest.raises(ccxt.NetworkError):
        await client.create_order(INV, "limit", "buy", 100, 60000, {"clientOrderId": "lost-1"})
    found = await client.fetch_open_orders(INV, params={"orderLinkId": "lost-1"})
    assert len(found) == 1 and found[0]["clientOrderId"] == "lost-1"
    with pytest.raises(ccxt.InvalidOrder):  # sending it again would be a duplicate
        await client.create_order(INV, "limit", "buy", 100, 60000, {"clientOrderId": "lost-1"})


async def test_latency(client: Any, emu: Emulator) -> None:
    await admin(emu, "faults", {"endpoint": "/v5/market/tickers", "kind": "latency", "latency_ms": 300,
                                "count": 1})
    t0 = time.monotonic()
    await client.fetch_ticker(INV)
    assert time.monotonic() - t0 >= 0.3


async def test_post_only_reject_fault(client: Any, emu: Emulator) -> None:
    await admin(emu, "faults", {"endpoint": "/v5/order/create", "kind": "post_only_reject", "count": 1})
    o = await client.create_order(INV, "limit", "sell", 1000, 66000, {"postOnly": True})
    got = await client.fetch_order(o["id"], INV, {"acknowledged": True})
    assert got["status"] == "canceled" and got["filled"] == 0


async def test_partial_fill_fault(client: Any, emu: Emulator) -> None:
    await admin(emu, "faults", {"endpoint": "/v5/order/create", "kind": "partial_fill", "fill_ratio": 0.3,
                                "count": 1})
    o = await client.create_order(INV, "limit", "sell", 1000, 66000, {"postOnly": True})
    got = await client.fetch_order(o["id"], INV, {"acknowledged": True})
    assert got["status"] == "open" and got["filled"] == 300 and got["remaining"] == 700


def test_rate_faults_are_seeded() -> None:
    def run(seed: int) -> list[bool]:
        f = FaultInjector(seed)
        f.add({"endpoint": "/v5/order/*", "kind": "http_5xx", "rate": 0.5})
        return [f.decide("/v5/order/create").http_status is not None for _ in range(40)]

    assert run(7) == run(7)
    assert run(7) != run(8)
    assert 5 < sum(run(7)) < 35
    f = FaultInjector(0)
    f.add({"kind": "http_429", "rate": 1.0, "endpoint": "/v5/market/*"})
    assert f.decide("/v5/order/create").http_status is None
    assert f.decide("/v5/market/tickers").http_status == 429
