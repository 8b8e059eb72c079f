"""Unmodified ccxt.async_support.bybit against the emulator over loopback: every call the keeper uses."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import ccxt.async_support as ccxt
import pytest

from hedged.sim import Emulator

INV = "BTC/USD:BTC"


async def test_load_markets_types_and_sizes(client: Any) -> None:
    m = client.markets
    assert set(m) == {"BTC/USD:BTC", "ETH/USD:ETH", "BTC/USDT:USDT", "ETH/USDT:USDT", "BTC/USDT", "ETH/USDT",
                      "SOL/USDT"}
    inv = m[INV]
    assert inv["inverse"] and inv["swap"] and inv["contractSize"] == 1 and inv["settle"] == "BTC"
    assert inv["precision"]["price"] == 0.5 and inv["precision"]["amount"] == 1
    assert m["ETH/USD:ETH"]["precision"]["price"] == 0.05
    lin = m["BTC/USDT:USDT"]
    assert lin["linear"] and lin["contractSize"] == 1 and lin["settle"] == "USDT"
    assert m["BTC/USDT"]["spot"]


async def test_time_tickers_and_funding(client: Any) -> None:
    assert abs(await client.fetch_time() - client.milliseconds()) < 5000
    t = await client.fetch_ticker(INV)
    assert (t["bid"], t["ask"], t["markPrice"], t["indexPrice"]) == (64999.5, 65000.5, 65000, 65000)
    spot = await client.fetch_ticker("SOL/USDT")
    assert spot["symbol"] == "SOL/USDT" and spot["last"] == 150
    ts = await client.fetch_tickers(["BTC/USDT:USDT", "ETH/USDT:USDT"])
    assert set(ts) == {"BTC/USDT:USDT", "ETH/USDT:USDT"}
    fr = await client.fetch_funding_rate(INV)
    assert fr["fundingRate"] == 0.0001 and fr["interval"] == "8h" and fr["fundingTimestamp"] > 0
    ob = await client.fetch_order_book(INV, 5)
    assert ob["bids"][0][0] == 64999.5 and ob["asks"][0][0] == 65000.5


async def test_balance(client: Any) -> None:
    b = await client.fetch_balance()
    assert b["total"]["BTC"] == 10 and b["total"]["ETH"] == 100 and b["total"]["SOL"] == 1000
    assert b["total"]["USDT"] == 1_000_000 and b["free"]["BTC"] == 10


async def test_create_fetch_cancel_by_id_and_client_id(client: Any, emu: Emulator) -> None:
    o = await client.create_order(INV, "limit", "sell", 1000, 66000, {"postOnly": True, "clientOrderId": "k-1"})
    assert o["id"] and o["clientOrderId"] == "k-1" and o["status"] is None  # Bybit replies with ids only
    got = await client.fetch_order(o["id"], INV, {"acknowledged": True})
    assert (got["status"], got["amount"], got["price"], got["side"]) == ("open", 1000, 66000, "sell")
    assert got["timeInForce"] == "PO" and got["clientOrderId"] == "k-1"
    by_cid = await client.fetch_order("", INV, {"acknowledged": True, "orderLinkId": "k-1"})
    assert by_cid["id"] == o["id"]
    opened = await client.fetch_open_orders(INV, params={"orderLinkId": "k-1"})
    assert [x["id"] for x in opened] == [o["id"]]
    assert [x["id"] for x in await client.fetch_open_orders(INV)] == [o["id"]]
    await client.cancel_order(o["id"], INV)
    assert await client.fetch_open_orders(INV) == []
    canceled = await client.fetch_canceled_orders(INV, params={"orderLinkId": "k-1"})
    assert [(x["id"], x["status"]) for x in canceled] == [(o["id"], "canceled")]
    assert (await client.fetch_order(o["id"], INV, {"acknowledged": True}))["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        await client.cancel_order(o["id"], INV)
    with pytest.raises(ccxt.OrderNotFound):
        await client.fetch_order("no-such-order", INV, {"acknowledged": True})


async def test_cancel_by_client_id_and_duplicate_client_id(client: Any) -> None:
    await client.create_order(INV, "limit", "buy", 100, 60000, {"clientOrderId": "dup"})
    with pytest.raises(ccxt.InvalidOrder):
        await client.create_order(INV, "limit", "buy", 100, 60000, {"clientOrderId": "dup"})
    await client.cancel_order(None, INV, {"orderLinkId": "dup"})
    assert await client.fetch_open_orders(INV) == []


async def test_inverse_short_economics_through_ccxt(client: Any, emu: Emulator) -> None:
    o = await client.create_order(INV, "limit", "sell", 650000, 65000, {"postOnly": True, "clientOrderId": "h1"})
    emu.engine.step(2)
    part = await client.fetch_order(o["id"], INV, {"acknowledged": True})
    assert part["status"] == "open" and 0 < part["filled"] < 650000  # partial fills from taker flow
    emu.engine.step(5)
    done = await client.fetch_closed_orders(INV, params={"orderLinkId": "h1"})
    assert done[0]["status"] == "closed" and done[0]["filled"] == 650000 and done[0]["average"] == 65000
    emu.engine.set_price(D(71500), asset="BTC")
    (pos,) = await client.fetch_positions([INV])
    assert pos["side"] == "short" and pos["contracts"] == 650000 and pos["entryPrice"] == 65000
    assert pos["markPrice"] == 71500
    assert pos["unrealizedPnl"] == pytest.approx(650000 * (1 / 71500 - 1 / 65000), abs=1e-9)
    assert pos["notional"] == pytest.approx(650000 / 71500)
    bal = await client.fetch_balance()
    wallet_before = bal["total"]["BTC"]
    await client.create_order(INV, "limit", "buy", 650000, 71500, {"reduceOnly": True, "clientOrderId": "h2"})
    emu.engine.step(10)
    flat = await client.fetch_positions([INV])
    assert flat[0]["contracts"] == 0
    trades = await client.fetch_my_trades(INV, limit=100)
    fees = sum(t["fee"]["cost"] for t in trades if t["order"] != o["id"])
    assert all(t["fee"]["currency"] == "BTC" for t in trades)
    bal = await client.fetch_balance()
    assert bal["total"]["BTC"] == pytest.approx(wallet_before + 650000 * (1 / 71500 - 1 / 65000) - fees, abs=1e-9)
    assert bal["total"]["BTC"] == pytest.approx(10 - 0.909090909 - 0.0002 * (10 + 650000 / 71500), abs=1e-8)


async def test_funding_pays_and_charges_with_the_right_sign(client: Any, emu: Emulator) -> None:
    await client.create_order(INV, "limit", "sell", 65000, 65000)
    emu.engine.step(2)
    before = (await client.fetch_balance())["total"]["BTC"]
    emu.engine.settle_funding(INV, D("0.0005"))  # positive: longs pay shorts
    after = (await client.fetch_balance())["total"]["BTC"]
    assert after - before == pytest.approx(0.0005)
    emu.engine.settle_funding(INV, D("-0.0005"))
    assert (await client.fetch_balance())["total"]["BTC"] == pytest.approx(before)


async def test_post_only_that_would_cross_is_rejected_and_never_fills(client: Any, emu: Emulator) -> None:
    o = await client.create_order(INV, "limit", "buy", 1000, 65000.5, {"postOnly": True})
    emu.engine.step(30)
    got = await client.fetch_order(o["id"], INV, {"acknowledged": True})
    assert got["status"] == "canceled" and got["filled"] == 0
    assert got["info"]["rejectReason"] == "EC_PostOnlyWillTakeLiquidity"
    assert await client.fetch_my_trades(INV) == []


async def test_reduce_only_cannot_grow_a_position(client: Any, emu: Emulator) -> None:
    with pytest.raises(ccxt.InvalidOrder):
        await client.create_order(INV, "limit", "sell", 100, 65000, {"reduceOnly": True})
    await client.create_order(INV, "limit", "sell", 100, 65000)
    emu.engine.step(2)
    with pytest.raises(ccxt.InvalidOrder):
        await client.create_order(INV, "limit", "sell", 100, 65000, {"reduceOnly": True})
    o = await client.create_order(INV, "limit", "buy", 1000, 65000, {"reduceOnly": True})
    emu.engine.step(2)
    got = await client.fetch_order(o["id"], INV, {"acknowledged": True})
    assert got["amount"] == 100 and got["reduceOnly"] is True
    assert (await client.fetch_positions([INV]))[0]["contracts"] == 0


async def test_insufficient_balance(client: Any) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        await client.create_order(INV, "limit", "sell", 10_000_000, 65000)
    with pytest.raises(ccxt.InsufficientFunds):
        await client.create_order("BTC/USDT", "limit", "sell", 11, 65000)


async def test_linear_and_spot_trades(client: Any, emu: Emulator) -> None:
    await client.create_order("ETH/USDT:USDT", "limit", "sell", 10, 2999)  # marketable: takes the bid
    (pos,) = await client.fetch_positions(["ETH/USDT:USDT"])
    assert pos["side"] == "short" and pos["contracts"] == 10 and pos["entryPrice"] == 2999.99
    assert pos["notional"] == pytest.approx(30000)
    all_linear = await client.fetch_positions()
    assert [p["symbol"] for p in all_linear] == ["ETH/USDT:USDT"]
    await client.create_order("SOL/USDT", "limit", "buy", 10, 151)
    bal = await client.fetch_balance()
    assert bal["total"]["SOL"] == pytest.approx(1000 + 10 * 0.999)
    trades = await client.fetch_my_trades("SOL/USDT")
    assert trades[0]["fee"]["currency"] == "SOL" and trades[0]["takerOrMaker"] == "taker"


async def test_market_order(client: Any) -> None:
    o = await client.create_order("BTC/USDT:USDT", "market", "buy", 0.5)
    got = await client.fetch_order(o["id"], "BTC/USDT:USDT", {"acknowledged": True})
    assert got["status"] == "closed" and got["average"] == 65000.1


async def test_order_history_and_trades_filter_by_client_id(client: Any, emu: Emulator) -> None:
    for i in range(3):
        await client.create_order(INV, "limit", "sell", 100, 65000, {"clientOrderId": f"c{i}"})
    emu.engine.step(2)
    closed = await client.fetch_closed_orders(INV)
    assert sorted(o["clientOrderId"] for o in closed) == ["c0", "c1", "c2"]
    one = await client.fetch_canceled_and_closed_orders(INV, params={"orderLinkId": "c1"})
    assert [o["clientOrderId"] for o in one] == ["c1"]
    tr = await client.fetch_my_trades(INV, params={"orderLinkId": "c2"})
    assert len(tr) == 1 and tr[0]["amount"] == 100
