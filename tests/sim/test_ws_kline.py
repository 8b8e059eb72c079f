"""The Bybit WS `kline.{interval}.{symbol}` topic through unmodified ccxt.pro watch_ohlcv (issue 12 item 5)."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

import pytest
from ccxt.test.exchange.base.test_ohlcv import test_ohlcv as check_ohlcv

from hedged.sim import Emulator

INV = "BTC/USD:BTC"
WAIT = 30.0  # a generous bound, not a deadline: each wait ends as soon as the candle arrives


async def _candle(pro: Any, symbol: str, start: int, until: Any) -> list[Any]:
    """Watch until the candle starting at `start` satisfies `until`."""
    while True:
        bars = await asyncio.wait_for(pro.watch_ohlcv(symbol, "1m"), WAIT)
        mine = [b for b in bars if b[0] == start]
        if mine and until(mine[-1]):
            return list(mine[-1])


async def test_watch_ohlcv_follows_price_and_trades(pro: Any, emu: Emulator) -> None:
    eng = emu.engine
    bucket = eng.now_ms() // 60_000 * 60_000
    first = await _candle(pro, INV, bucket, lambda b: True)
    assert first[1:5] == [65000, 65000, 65000, 65000] and first[5] == 0
    eng.set_price(D(66000), asset="BTC")
    bar = await _candle(pro, INV, bucket, lambda b: b[2] == 66000)
    assert bar[1] == 65000 and bar[4] == 66000
    await pro.create_order(INV, "limit", "sell", 500, 65000)  # takes at the bid: volume in this candle
    bar = await _candle(pro, INV, bucket, lambda b: b[5] > 0)
    assert bar[5] == pytest.approx(500 / 65999.5)  # inverse: ccxt reports the BTC turnover
    eng.step(60)  # the next minute: the first candle is confirmed, a new one opens at the last price
    eng.set_price(D(64000), asset="BTC")
    nxt = await _candle(pro, INV, bucket + 60_000, lambda b: b[3] == 64000)
    assert nxt[1] == 66000 and nxt[4] == 64000
    bars = pro.ohlcvs[INV]["1m"]  # every candle ccxt.pro has stored
    assert [b[0] for b in bars][-2:] == [bucket, bucket + 60_000]
    for b in bars:
        check_ohlcv(pro, {}, "watchOHLCV", list(b), INV, eng.now_ms())


async def test_kline_topic_errors(emu: Emulator) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.ws_connect(emu.ws_url + "/v5/public/inverse") as ws:
        for topic in ("kline.7.BTCUSD", "kline.1.NOPE"):
            await ws.send_json({"op": "subscribe", "req_id": "r", "args": [topic]})
            reply = await asyncio.wait_for(ws.receive_json(), WAIT)
            assert reply["success"] is False and topic in reply["ret_msg"]
        await ws.send_json({"op": "subscribe", "req_id": "ok", "args": ["kline.D.BTCUSD"]})
        ack = await asyncio.wait_for(ws.receive_json(), WAIT)
        snap = await asyncio.wait_for(ws.receive_json(), WAIT)
        assert ack["success"] is True
        assert snap["topic"] == "kline.D.BTCUSD" and snap["data"][0]["interval"] == "D"
        assert snap["data"][0]["confirm"] is False
