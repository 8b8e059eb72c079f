"""The Binance front (spot /api/v3, COIN-M /dapi) driven by unmodified ccxt `binance` and `binancecoinm`:
markets with Binance's contract sizes, orders, positions, trades, signing, error codes, weight headers,
429/418 rate limits, fault injection and the admin API, exactly as against the venue."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from hedged.sim import Emulator
from hedged.sim.client import make_binance_client
from hedged.sim.settings import binance_settings
from tests.clocks import manual_clock
from tests.sim.conftest import loaded

INV = "BTC/USD:BTC"
HEDGED = str(Path(sys.executable).with_name("hedged"))


@pytest.fixture
async def bn() -> AsyncIterator[Emulator]:
    async with Emulator(binance_settings(clock="manual", taker_flow_usd_per_s=0), exchange="binance",
                        clock=manual_clock()) as e:
        yield e


@pytest.fixture
async def coinm(bn: Emulator) -> AsyncIterator[Any]:
    async with loaded(bn.client(kind="coinm")) as c:
        yield c


@pytest.fixture
async def spot(bn: Emulator) -> AsyncIterator[Any]:
    async with loaded(bn.client(kind="spot")) as c:
        yield c


async def admin(emu: Emulator, path: str, body: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as s, s.post(f"{emu.url}/_admin/{path}", json=body) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_markets_carry_binance_contract_sizes(coinm: Any, spot: Any) -> None:
    assert set(coinm.markets) == {"BTC/USD:BTC", "ETH/USD:ETH"}
    btc, eth = coinm.market("BTC/USD:BTC"), coinm.market("ETH/USD:ETH")
    assert btc["id"] == "BTCUSD_PERP" and btc["inverse"] and btc["swap"] and btc["contractSize"] == 100
    assert eth["id"] == "ETHUSD_PERP" and eth["contractSize"] == 10
    assert btc["precision"]["price"] == 0.1 and btc["precision"]["amount"] == 1
    assert "BTC/USDT" in spot.markets and spot.market("BTC/USDT")["spot"]


async def test_quotes_mark_and_funding(coinm: Any, spot: Any, bn: Emulator) -> None:
    bn.engine.set_price(Decimal(70000), asset="BTC")
    book = (await coinm.fetch_bids_asks([INV]))[INV]
    assert book["bid"] == 69999.9 and book["ask"] == 70000.1
    fr = await coinm.fetch_funding_rate(INV)
    assert fr["markPrice"] == 70000 and fr["indexPrice"] == 70000 and fr["fundingRate"] == 0.0001
    assert fr["fundingTimestamp"] > time.time() * 1000 - 60_000
    t = await spot.fetch_ticker("BTC/USDT")
    assert t["bid"] == 69999.99 and t["last"] == 70000
    ob = await coinm.fetch_order_book(INV, 5)
    assert len(ob["bids"]) == 5 and ob["asks"][0][0] == 70000.1


async def test_coinm_order_lifecycle_position_and_trades(coinm: Any, bn: Emulator) -> None:
    o = await coinm.create_order(INV, "limit", "sell", 10, 65000, {"clientOrderId": "k-1", "postOnly": True})
    assert o["status"] == "open" and o["clientOrderId"] == "k-1" and o["timeInForce"] == "PO"
    assert [x["id"] for x in await coinm.fetch_open_orders(INV)] == [o["id"]]
    assert (await coinm.fetch_order(None, INV, {"clientOrderId": "k-1"}))["id"] == o["id"]
    bn.engine.set_price(Decimal(65010), asset="BTC")  # the book trades through: our sell fills as maker
    done = await coinm.fetch_order(o["id"], INV)
    assert done["status"] == "closed" and done["filled"] == 10 and done["average"] == 65000
    pos = (await coinm.fetch_positions([INV]))[0]
    assert pos["side"] == "short" and pos["contracts"] == 10 and pos["contractSize"] == 100
    assert pos["entryPrice"] == 65000 and pos["marginMode"] == "cross"
    trades = await coinm.fetch_my_trades(INV)
    assert len(trades) == 1 and trades[0]["order"] == o["id"] and trades[0]["fee"]["currency"] == "BTC"
    assert trades[0]["takerOrMaker"] == "maker"
    close = await coinm.create_order(INV, "limit", "buy", 50, 66000, {"reduceOnly": True})
    assert close["status"] == "closed" and close["filled"] == 10 and close["reduceOnly"]  # capped at the position
    assert await coinm.fetch_positions([INV]) == []  # flat: ccxt drops it
    bal = await coinm.fetch_balance()
    assert 9.99 < bal["total"]["BTC"] < 10.01


async def test_coinm_error_codes(coinm: Any) -> None:
    with pytest.raises(ccxt.ExchangeError, match="-5022"):  # post-only that would take: nothing placed
        await coinm.create_order(INV, "limit", "sell", 10, 64000, {"clientOrderId": "po-1", "postOnly": True})
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        await coinm.fetch_order(None, INV, {"clientOrderId": "po-1"})
    with pytest.raises(ccxt.InsufficientFunds, match="-2019"):
        await coinm.create_order(INV, "limit", "sell", 10_000_000, 65000)
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        await coinm.cancel_order("12345", INV)
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):  # reduce-only with nothing to reduce
        await coinm.create_order(INV, "limit", "buy", 1, 60000, {"reduceOnly": True})
    await coinm.create_order(INV, "limit", "sell", 1, 66000, {"clientOrderId": "dup"})
    with pytest.raises(ccxt.ExchangeError, match="-4116"):
        await coinm.create_order(INV, "limit", "sell", 1, 66000, {"clientOrderId": "dup"})


async def test_spot_orders_wallet_and_errors(spot: Any, bn: Emulator) -> None:
    before = (await spot.fetch_balance())["total"]
    o = await spot.create_order("BTC/USDT", "limit", "buy", 0.1, 66000, {"clientOrderId": "s-1"})
    assert o["status"] == "closed" and o["filled"] == 0.1 and o["trades"]
    after = (await spot.fetch_balance())["total"]
    assert after["BTC"] > before["BTC"] and after["USDT"] < before["USDT"]
    assert (await spot.fetch_my_trades("BTC/USDT"))[0]["order"] == o["id"]
    with pytest.raises(ccxt.OrderImmediatelyFillable):  # LIMIT_MAKER that would take: -2010
        await spot.create_order("BTC/USDT", "limit", "buy", 0.1, 66000, {"postOnly": True})
    with pytest.raises(ccxt.InsufficientFunds):
        await spot.create_order("BTC/USDT", "limit", "sell", 1000, 64000)
    # spot and COIN-M are separate wallets: a spot deposit is not COIN-M collateral
    await admin(bn, "balance", {"api_key": "demo-key", "coin": "BTC", "delta": 2, "wallet": "spot"})
    assert (await spot.fetch_balance())["total"]["BTC"] == pytest.approx(after["BTC"] + 2)
    assert bn.engine.accounts["demo-key"].wallet["BTC"] == 10


async def test_signing_failures(bn: Emulator) -> None:
    for key, secret, exc, code in (("demo-key", "wrong", ccxt.AuthenticationError, "-1022"),
                                   ("nobody", "x", ccxt.AuthenticationError, "-2015")):
        c = make_binance_client(bn.url, key, secret)
        try:
            with pytest.raises(exc, match=code) as err:
                await c.fetch_balance()
            assert "wrong" not in str(err.value) and "demo-secret" not in str(err.value)
        finally:
            await c.close()


async def test_stale_timestamp_is_invalid_nonce(coinm: Any) -> None:
    coinm.options["timeDifference"] = 120_000
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        await coinm.fetch_balance()


async def test_raw_signature_is_hmac_sha256_of_the_query(bn: Emulator) -> None:
    q = f"timestamp={int(time.time() * 1000)}&recvWindow=5000"
    sig = hmac.new(b"demo-secret", q.encode(), hashlib.sha256).hexdigest()
    async with aiohttp.ClientSession(headers={"X-MBX-APIKEY": "demo-key"}) as s:
        async with s.get(f"{bn.url}/dapi/v1/balance?{q}&signature={sig}") as r:
            assert r.status == 200 and int(r.headers["X-MBX-USED-WEIGHT-1M"]) >= 1
            assert {a["asset"] for a in await r.json()} == {"BTC", "ETH"}
        async with s.get(f"{bn.url}/dapi/v1/balance?{q}&signature={'0' * 64}") as r:
            assert r.status == 400 and (await r.json())["code"] == -1022
        async with s.get(f"{bn.url}/dapi/v1/balance?{q}") as r:
            assert r.status == 400 and (await r.json())["code"] == -1102


async def test_weight_headers_then_429_then_418(bn: Emulator, coinm: Any) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{bn.url}/dapi/v1/exchangeInfo") as r:
            first = int(r.headers["X-MBX-USED-WEIGHT-1M"])
        async with s.get(f"{bn.url}/dapi/v1/exchangeInfo") as r:
            assert int(r.headers["X-MBX-USED-WEIGHT-1M"]) == first + 20
    bn.rest.weights.limit = first + 20  # type: ignore[union-attr]  # the next request goes over
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        await coinm.fetch_bids_asks([INV])
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        await coinm.fetch_bids_asks([INV])
    async with aiohttp.ClientSession() as s, s.get(f"{bn.url}/dapi/v1/ping") as r:
        assert r.status == 418 and int(r.headers["Retry-After"]) > 0 and (await r.json())["code"] == -1003


async def test_request_rate_limit_is_429_with_retry_after(bn: Emulator, coinm: Any) -> None:
    await admin(bn, "settings", {"rate_limit": {"requests": 2, "per_seconds": 60}})
    for _ in range(2):
        await coinm.fetch_balance()
    with pytest.raises(ccxt.DDoSProtection, match="-1003"):
        await coinm.fetch_balance()


async def test_faults_apply_per_endpoint(bn: Emulator, coinm: Any) -> None:
    await admin(bn, "faults", {"endpoint": "/dapi/v1/order", "kind": "http_5xx", "count": 1})
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await coinm.create_order(INV, "limit", "sell", 1, 66000, {"clientOrderId": "f-1"})
    assert bn.engine.orders == []  # refused before the engine saw it
    await admin(bn, "faults", {"clear": True, "endpoint": "/dapi/v1/order", "kind": "drop_reply", "count": 1})
    with pytest.raises(ccxt.NetworkError):
        await coinm.create_order(INV, "limit", "sell", 1, 66000, {"clientOrderId": "f-2"})
    assert (await coinm.fetch_order(None, INV, {"clientOrderId": "f-2"}))["status"] == "open"  # it was placed
    await admin(bn, "faults", {"clear": True, "endpoint": "/dapi/v1/order", "kind": "partial_fill", "count": 1,
                               "fill_ratio": 0.5})
    o = await coinm.create_order(INV, "limit", "sell", 10, 66000)
    assert o["filled"] == 5 and o["status"] == "open"
    await admin(bn, "faults", {"clear": True, "endpoint": "/dapi/v1/order", "kind": "post_only_reject", "count": 1})
    with pytest.raises(ccxt.ExchangeError, match="-5022"):
        await coinm.create_order(INV, "limit", "sell", 1, 66000, {"postOnly": True})
    await admin(bn, "faults", {"clear": True, "endpoint": "/dapi/v1/account", "kind": "http_429", "count": 1})
    with pytest.raises(ccxt.DDoSProtection):
        await coinm.fetch_balance()


async def test_leverage_margin_type_and_position_mode(coinm: Any, bn: Emulator) -> None:
    await coinm.set_leverage(1, INV)
    await coinm.set_margin_mode("isolated", INV)
    with pytest.raises(ccxt.MarginModeAlreadySet):
        await coinm.set_margin_mode("isolated", INV)
    assert (await coinm.fetch_position_mode(INV))["hedged"] is False
    with pytest.raises(ccxt.ExchangeError, match="-4059"):
        await coinm.set_position_mode(False)
    await coinm.create_order(INV, "limit", "sell", 6000, 64000)
    pos = (await coinm.fetch_positions([INV]))[0]
    assert pos["leverage"] == 1 and pos["marginMode"] == "isolated"
    assert pos["info"]["liquidationPrice"] == "0"  # a 1x isolated inverse short cannot be liquidated
    with pytest.raises(ccxt.OperationRejected, match="-4048"):  # not with a position open
        await coinm.set_margin_mode("cross", INV)
    acct = bn.engine.accounts["demo-key"]
    await coinm.set_leverage(10, INV)
    liq = bn.engine.liquidation_price(acct, acct.positions[bn.engine.instrument(INV).key])
    assert liq is not None and Decimal(65000) < liq < Decimal(75000)  # 10x isolated: about +10 %


async def test_admin_api_and_state(bn: Emulator, coinm: Any) -> None:
    await admin(bn, "price", {"asset": "BTC", "price": 71500})
    assert (await coinm.fetch_bids_asks([INV]))[INV]["bid"] == 71499.9
    await admin(bn, "account", {"api_key": "k2", "secret": "s2", "balances": {"BTC": 1},
                                "spot_balances": {"USDT": 5}})
    c = make_binance_client(bn.url, "k2", "s2", exchange_id="binance")
    try:
        assert (await c.fetch_balance())["total"]["USDT"] == 5
    finally:
        await c.close()
    async with aiohttp.ClientSession() as s, s.get(f"{bn.url}/_admin/state") as r:
        state = await r.json()
    assert state["accounts"]["k2"]["wallet"]["BTC"] == "1"


async def test_cli_serves_both_exchanges_one_line_each_in_order() -> None:
    proc = await asyncio.create_subprocess_exec(
        HEDGED, "emulator", "--exchange", "binance,bybit", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split() for _ in range(2)]
        assert [ln[0:2] for ln in lines] == [["listening", "on"]] * 2
        assert [ln[3] for ln in lines] == ["(binance)", "(bybit)"]
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{lines[0][2]}/dapi/v1/time") as r:
                assert "serverTime" in await r.json()
            async with s.get(f"{lines[1][2]}/v5/market/time") as r:
                assert (await r.json())["retCode"] == 0
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_cli_refuses_an_unknown_exchange() -> None:
    proc = await asyncio.create_subprocess_exec(HEDGED, "emulator", "--exchange", "kraken",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and out == b""
    assert err.decode().strip().splitlines() == [
        "error: --exchange: unknown exchange 'kraken'; expected a comma-separated list of bybit, binance"]
