"""WS faults of the local exchange, seen through unmodified ccxt.pro: a topic stall, a silent drop; and the
per-client REST request counter."""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt.pro as ccxtpro
import pytest

from hedged.sim import Emulator, make_client
from hedged.sim.rest import RestFront

INV = "BTC/USD:BTC"


async def pro_client(emu: Emulator, **kw: Any) -> Any:
    c = make_client(emu.url, "demo-key", "demo-secret", pro=True, timeout_ms=5000, **kw)
    await c.load_markets()
    return c


async def test_a_stalled_topic_is_withheld_while_others_flow(emu: Emulator) -> None:
    c = await pro_client(emu)
    try:
        orders = asyncio.ensure_future(c.watch_orders())
        balance = asyncio.ensure_future(c.watch_balance())
        await asyncio.sleep(0.3)  # subscriptions land
        emu.ws.stall("wallet")
        wallets = emu.ws.sent["wallet"]
        placed = await c.create_order(INV, "limit", "sell", 1000, 70000, {"clientOrderId": "s1"})
        got = await asyncio.wait_for(orders, 30)
        assert got[-1]["clientOrderId"] == "s1"
        orders = asyncio.ensure_future(c.watch_orders())
        await asyncio.sleep(0.1)
        await c.cancel_order(placed["id"], INV)
        got = await asyncio.wait_for(orders, 30)  # a later order message came through ...
        assert got[-1]["status"] == "canceled"
        assert emu.ws.sent["wallet"] == wallets and not balance.done()  # ... the wallet ones did not
        emu.ws.unstall()
        await c.create_order(INV, "limit", "sell", 1000, 70000, {"clientOrderId": "s2"})
        bal = await asyncio.wait_for(balance, 30)
        assert bal["BTC"]["total"] > 0
    finally:
        await c.close()


async def test_a_silent_drop_is_only_noticed_by_the_missing_pong(emu: Emulator) -> None:
    c = await pro_client(emu, streaming={"keepAlive": 300})
    try:
        orders = asyncio.ensure_future(c.watch_orders())
        await asyncio.sleep(0.3)
        assert emu.ws.drop_silently(channel="private") == 1
        with pytest.raises(ccxtpro.RequestTimeout):  # no close frame: ccxt learns it from the pings
            await asyncio.wait_for(orders, 30)
        orders = asyncio.ensure_future(c.watch_orders())  # a fresh connection works
        await asyncio.sleep(0.3)
        await c.create_order(INV, "limit", "sell", 1000, 70000, {"clientOrderId": "d1"})
        got = await asyncio.wait_for(orders, 30)
        assert got[-1]["clientOrderId"] == "d1"
    finally:
        await c.close()


async def test_rest_requests_are_counted_per_client(emu: Emulator, client: Any) -> None:
    assert isinstance(emu.rest, RestFront)  # the default emulator is Bybit's: only its front counts requests
    before = emu.rest.requests["demo-key"]
    await client.fetch_balance()
    await client.fetch_positions(None, {"subType": "inverse"})
    assert emu.rest.requests["demo-key"] == before + 2
    public = emu.rest.requests["public"]
    await client.fetch_ticker(INV)
    assert emu.rest.requests["public"] == public + 1


async def test_orderbook_and_public_trades(emu: Emulator) -> None:
    from decimal import Decimal

    c = await pro_client(emu)
    try:
        book = await asyncio.wait_for(c.watch_order_book(INV, 50), 30)
        assert book["bids"][0][0] == 64999.5 and book["asks"][0][0] == 65000.5 and len(book["asks"]) >= 5
        emu.engine.set_price(Decimal(66000), asset="BTC")
        book = await asyncio.wait_for(c.watch_order_book(INV, 50), 30)
        assert book["bids"][0][0] < 66000 < book["asks"][0][0]
        trades = asyncio.ensure_future(c.watch_trades(INV))
        await asyncio.sleep(0.3)
        await c.create_order(INV, "limit", "sell", 1000, 66000.5, {"clientOrderId": "p1"})
        emu.engine.step(1)  # the synthetic taker flow lifts our offer
        got = await asyncio.wait_for(trades, 30)
        assert got[-1]["symbol"] == INV and got[-1]["side"] == "buy" and got[-1]["price"] == 66000.5
    finally:
        await c.close()
