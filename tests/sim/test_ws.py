"""Unmodified ccxt.pro.bybit over loopback: tickers, orders, trades, positions, balance, auth, ping."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

import ccxt.pro as ccxtpro
import pytest

from hedged.sim import Emulator, make_client

INV = "BTC/USD:BTC"


async def test_watch_ticker_follows_the_price(pro: Any, emu: Emulator) -> None:
    t = await asyncio.wait_for(pro.watch_ticker(INV), 5)
    assert t["symbol"] == INV and t["bid"] == 64999.5 and t["markPrice"] == 65000
    emu.engine.set_price(D(66000), asset="BTC")
    t = await asyncio.wait_for(pro.watch_ticker(INV), 5)
    assert t["last"] == 66000
    spot = await asyncio.wait_for(pro.watch_ticker("ETH/USDT"), 5)
    assert spot["symbol"] == "ETH/USDT" and spot["last"] == 3000


async def test_watch_orders_and_my_trades(pro: Any, emu: Emulator) -> None:
    orders_task = asyncio.ensure_future(pro.watch_orders(INV))
    trades_task = asyncio.ensure_future(pro.watch_my_trades(INV))
    await asyncio.sleep(0.2)  # let both subscriptions land
    await pro.create_order(INV, "limit", "sell", 1000, 65000, {"clientOrderId": "w1"})
    orders = await asyncio.wait_for(orders_task, 5)
    assert orders[-1]["clientOrderId"] == "w1" and orders[-1]["status"] == "open"
    orders_task = asyncio.ensure_future(pro.watch_orders(INV))
    await asyncio.sleep(0)
    emu.engine.step(1)
    trades = await asyncio.wait_for(trades_task, 5)
    assert trades[-1]["symbol"] == INV and trades[-1]["side"] == "sell" and trades[-1]["takerOrMaker"] == "maker"
    orders = await asyncio.wait_for(orders_task, 5)
    assert orders[-1]["status"] == "closed" and orders[-1]["filled"] == 1000


async def test_watch_positions_and_balance(pro: Any, emu: Emulator) -> None:
    snapshot = await asyncio.wait_for(pro.watch_positions(), 5)
    assert snapshot == []
    bal_task = asyncio.ensure_future(pro.watch_balance())
    pos_task = asyncio.ensure_future(pro.watch_positions())
    await asyncio.sleep(0.2)
    await pro.create_order(INV, "limit", "sell", 65000, 65000)
    emu.engine.step(1)
    positions = await asyncio.wait_for(pos_task, 5)
    assert positions[-1]["symbol"] == INV and positions[-1]["side"] == "short"
    assert positions[-1]["contracts"] == 65000
    bal = await asyncio.wait_for(bal_task, 5)
    assert bal["BTC"]["total"] == pytest.approx(10 - 0.0002, abs=1e-9)


async def test_ws_auth_failure(emu: Emulator) -> None:
    c = make_client(emu.url, "demo-key", "bad-secret", pro=True)
    try:
        await c.load_markets()
        with pytest.raises(ccxtpro.AuthenticationError):
            await asyncio.wait_for(c.watch_orders(), 5)
    finally:
        await c.close()


async def test_ping_pong(emu: Emulator) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{emu.ws_url}/v5/public/linear") as ws:
            await ws.send_json({"op": "ping", "req_id": "7"})
            msg = await asyncio.wait_for(ws.receive_json(), 5)
            assert msg["ret_msg"] == "pong" and msg["req_id"] == "7"
        async with s.ws_connect(f"{emu.ws_url}/v5/private") as ws:
            await ws.send_json({"op": "ping", "req_id": "8"})
            msg = await asyncio.wait_for(ws.receive_json(), 5)
            assert msg["op"] == "pong"
