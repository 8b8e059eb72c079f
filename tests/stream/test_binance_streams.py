"""Binance COIN-M streams: real ccxt.pro (`binancecoinm`) → the local exchange's Binance WS front over loopback.

Each watch call against REST, field by field, in Decimal; the streamed venue's view against the REST view;
a streamed keeper woken by an admin deposit; a silent drop of the user data stream; listen key keepalive and
expiry on the exchange's clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hedged.sim.binance import BinanceFront
from hedged.sim.binance_ws import BinanceWsFront
from hedged.sim.server import Emulator
from hedged.sim.settings import binance_settings
from hedged.snapshot import parse_venue
from hedged.stream import StreamedVenue
from hedged.venue import wallet_totals
from tests.stream.conftest import INV, Start, position, streamed_keepers, until
from tests.stream.test_streamed_keeper import deposit_on_a_stalled_topic

D = Decimal


def dec(v: Any) -> Decimal:
    return D(str(v))


async def result(task: Awaitable[Any], what: str, bound: float = 30.0) -> Any:
    try:
        return await asyncio.wait_for(task, bound)
    except TimeoutError:
        raise AssertionError(f"no stream message within {bound} s: {what}") from None


def front(emu: Emulator) -> BinanceWsFront:
    assert emu.binance_ws is not None
    return emu.binance_ws


def keys_of(emu: Emulator) -> set[str]:
    return {lk.key for lk in front(emu).keys.by_api_key.values()}


def open_orders(emu: Emulator) -> list[dict[str, Any]]:
    return [o for o in emu.engine.orders_list() if o["status"] in ("New", "PartiallyFilled")]


# --- ccxt.pro watch calls, field by field against REST (manual clock) -------------------------------------
@pytest.fixture
async def manual() -> AsyncIterator[tuple[Emulator, Any, Any]]:
    async with Emulator(binance_settings(clock="manual", taker_flow_usd_per_s=0), exchange="binance") as emu:
        rest = emu.client()
        pro = emu.client(pro=True, options={"defaultType": "delivery"})
        try:
            await rest.load_markets()
            pro.set_markets(rest.markets, rest.currencies)
            yield emu, rest, pro
        finally:
            await pro.close()
            await rest.close()


async def test_each_watch_call_matches_rest_field_by_field(manual: tuple[Emulator, Any, Any]) -> None:
    emu, rest, pro = manual
    # public: mark price and touch, as REST's premium index and book ticker say
    mark = await result(pro.watch_mark_price(INV), "markPriceUpdate")
    funding = await rest.fetch_funding_rate(INV)
    assert dec(mark["markPrice"]) == dec(funding["markPrice"]) == D(65000)
    assert dec(mark["indexPrice"]) == dec(funding["indexPrice"])
    assert dec(mark["info"]["r"]) == dec(funding["fundingRate"])
    book = (await result(pro.watch_bids_asks([INV]), "bookTicker"))[INV]
    rest_book = (await rest.fetch_bids_asks([INV]))[INV]
    for k in ("bid", "ask", "bidVolume", "askVolume"):
        assert dec(book[k]) == dec(rest_book[k]), k
    ticker = await result(pro.watch_ticker(INV), "24hrTicker")
    rest_ticker = await rest.fetch_ticker(INV)
    for k in ("last", "open", "high", "low", "baseVolume"):
        assert dec(ticker[k]) == dec(rest_ticker[k]), k

    # private: the user data stream behind a listen key
    balance = asyncio.create_task(pro.watch_balance())
    positions = await result(pro.watch_positions(), "positions snapshot")  # the REST snapshot first
    assert positions == []
    assert front(emu).keys.calls["create"] == 1
    await until(lambda: any(c.private for c in front(emu).conns), "user data stream open")
    emu.engine.credit("demo-key", "BTC", D("0.5"))  # as the admin API does
    got = await result(balance, "ACCOUNT_UPDATE after a deposit")
    assert got["info"]["a"]["m"] == "DEPOSIT"
    rest_balance = wallet_totals(await rest.fetch_balance())
    assert dec(got["total"]["BTC"]) == dec(rest_balance["total"]["BTC"]) == D("10.5")

    orders = asyncio.create_task(pro.watch_orders())
    trades = asyncio.create_task(pro.watch_my_trades())
    positions_next = asyncio.create_task(pro.watch_positions())
    balance = asyncio.create_task(pro.watch_balance())
    await asyncio.sleep(0)
    placed = await rest.create_order(INV, "market", "sell", 300)
    streamed = [o for o in await result(orders, "ORDER_TRADE_UPDATE") if o["id"] == placed["id"]]
    fetched = await rest.fetch_order(placed["id"], INV)
    assert streamed and streamed[-1]["status"] == fetched["status"] == "closed"
    for k in ("clientOrderId", "side", "type"):
        assert streamed[-1][k] == fetched[k], k
    for k in ("amount", "filled", "average"):
        assert dec(streamed[-1][k]) == dec(fetched[k]), k
    [trade] = await result(trades, "TRADE")
    [rest_trade] = await rest.fetch_my_trades(INV)
    assert (trade["id"], trade["order"], trade["side"]) == (rest_trade["id"], rest_trade["order"], rest_trade["side"])
    for k in ("price", "amount"):
        assert dec(trade[k]) == dec(rest_trade[k]), k
    assert dec(trade["fee"]["cost"]) == dec(rest_trade["fee"]["cost"]) and trade["fee"]["currency"] == "BTC"
    got = await result(balance, "ACCOUNT_UPDATE after the fill")
    assert got["info"]["a"]["m"] == "ORDER"
    rest_balance = wallet_totals(await rest.fetch_balance())
    assert dec(got["total"]["BTC"]) == dec(rest_balance["total"]["BTC"]) < D("10.5")  # the taker fee
    [pos] = await result(positions_next, "positions after the fill")
    [rest_pos] = await rest.fetch_positions([INV])
    assert (pos["symbol"], pos["side"]) == (rest_pos["symbol"], rest_pos["side"]) == (INV, "short")
    assert dec(pos["contracts"]) == dec(rest_pos["contracts"]) == D(300)
    assert dec(pos["entryPrice"]) == dec(rest_pos["entryPrice"])

    # a resting order: NEW, then CANCELED
    orders = asyncio.create_task(pro.watch_orders())
    resting = await rest.create_order(INV, "limit", "buy", 10, 60000, {"timeInForce": "GTX"})
    [new] = [o for o in await result(orders, "NEW") if o["id"] == resting["id"]]
    [rest_open] = await rest.fetch_open_orders(INV)
    assert new["status"] == rest_open["status"] == "open" and new["postOnly"] and rest_open["postOnly"]
    assert dec(new["price"]) == dec(rest_open["price"]) == D(60000)
    orders = asyncio.create_task(pro.watch_orders())
    await rest.cancel_order(resting["id"], INV)
    [gone] = [o for o in await result(orders, "CANCELED") if o["id"] == resting["id"]]
    assert gone["status"] == "canceled"

    # funding: an ACCOUNT_UPDATE with reason FUNDING_FEE, the balance REST then shows
    balance = asyncio.create_task(pro.watch_balance())
    emu.engine.settle_funding(INV, D("0.001"))
    got = await result(balance, "ACCOUNT_UPDATE for funding")
    assert got["info"]["a"]["m"] == "FUNDING_FEE"
    assert dec(got["total"]["BTC"]) == dec(wallet_totals(await rest.fetch_balance())["total"]["BTC"])

    # a price move changes no wallet balance: nothing on the user data stream, the mark streams
    sent = front(emu).sent["ACCOUNT_UPDATE"]
    marks = asyncio.create_task(pro.watch_mark_price(INV))
    emu.engine.set_price(D(66000), asset="BTC")
    assert dec((await result(marks, "mark after a price move"))["markPrice"]) == D(66000)
    await asyncio.sleep(0.2)
    assert front(emu).sent["ACCOUNT_UPDATE"] == sent


async def test_diff_depth_rebuilds_the_rest_book(manual: tuple[Emulator, Any, Any]) -> None:
    emu, rest, pro = manual
    book = await result(pro.watch_order_book(INV), "order book")
    emu.engine.set_price(D(65100), asset="BTC")
    for _ in range(50):
        book = await result(pro.watch_order_book(INV), "order book after a move")
        if book["bids"] and D(str(book["bids"][0][0])) > D(65000):
            break
    snap = await rest.fetch_order_book(INV, 20)
    assert [[dec(p), dec(q)] for p, q in book["bids"][:10]] == [[dec(p), dec(q)] for p, q in snap["bids"][:10]]
    assert [[dec(p), dec(q)] for p, q in book["asks"][:10]] == [[dec(p), dec(q)] for p, q in snap["asks"][:10]]


# --- the streamed venue and keeper (the keeper's orders fill by taker flow: the exchange's real clock) --------
@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Start]:
    async with streamed_keepers(tmp_path, "binance") as start:
        yield start


async def settled(emu: Emulator, v: StreamedVenue, contracts: int = 6_500) -> None:
    # 10 BTC at $65,000 in 100 USD contracts: short 6,500 (1 % band)
    await until(lambda: abs(position(emu, INV) + contracts) <= contracts // 100 and not open_orders(emu),
                f"hedged at -{contracts}, settled")
    # and no streamed fill still waits for its REST confirmation (the next read would resync for it), nor is
    # one being confirmed: the flag clears as a resync starts, `resyncs` counts it once its reads have landed
    await until(lambda: v.alive() and not v.gap and not v.fills_pending and not v.resyncing,
                "streams alive and resynced")


async def test_streamed_view_matches_the_rest_view(running: Start) -> None:
    emu, _k, v = await running(interval=1000, resync=3600)
    await settled(emu, v)
    emu.engine.set_price(D(64000), asset="BTC")  # uPnL moves with the mark; no ACCOUNT_UPDATE says so
    await until(lambda: dec(v.tickers[INV].get("markPrice") or 0) == D(64000), "the mark streamed")
    resyncs = v.resyncs
    streamed = parse_venue(await v.fetch_state(), "streamed")
    assert v.resyncs == resyncs  # the view, not REST
    polled = parse_venue(await super(StreamedVenue, v).fetch_state(), "rest")
    assert streamed.balances == polled.balances and streamed.balances["BTC"] > D(9)
    assert streamed.positions.keys() == polled.positions.keys() == {INV}
    sp, rp = streamed.positions[INV], polled.positions[INV]
    assert (sp.contracts, sp.entry_price, sp.mark_price) == (rp.contracts, rp.entry_price, rp.mark_price)
    assert abs(sp.unrealized_pnl - rp.unrealized_pnl) <= D("1e-12")
    assert sp.unrealized_pnl != 0
    st, rt = streamed.tickers[INV], polled.tickers[INV]
    assert (st.bid, st.ask, st.mark, st.index, st.funding_rate) == (rt.bid, rt.ask, rt.mark, rt.index,
                                                                     rt.funding_rate)
    assert st.next_funding_time == rt.next_funding_time
    assert v.differences == 0


async def test_an_admin_deposit_wakes_the_keeper_and_it_hedges(running: Start) -> None:
    emu, k, v = await running(interval=1000, resync=3600)  # timer cycles 1000 s apart: only a stream wakes it
    await settled(emu, v)
    rest0, cycles0 = emu.rest.requests["demo-key"], k.cycles
    async with aiohttp.ClientSession() as http, \
            http.post(f"{emu.url}/_admin/balance", json={"api_key": "demo-key", "coin": "BTC", "delta": 1}) as r:
        assert r.status == 200
    await until(lambda: abs(position(emu, INV) + 7_150) <= 71 and not open_orders(emu), "the deposit hedged")
    assert k.cycles > cycles0
    assert emu.rest.requests["demo-key"] > rest0  # its orders, at least
    assert v.differences == 0


async def test_silent_drop_of_the_user_data_stream(running: Start) -> None:
    emu, _k, v = await running(heartbeat=1.0, interval=0.2, resync=3600)
    await settled(emu, v)
    creates, key = front(emu).keys.calls["create"], keys_of(emu)
    assert front(emu).drop_silently(channel="private") == 1
    await until(lambda: not v.alive(), "the dead stream noticed")
    rest0 = emu.rest.requests["demo-key"]
    emu.engine.credit("demo-key", "BTC", D(1))  # while the stream is down
    await until(lambda: abs(position(emu, INV) + 7_150) <= 71, "deposit hedged by polling")
    assert emu.rest.requests["demo-key"] > rest0  # it was REST that saw it
    dropped = {c for c in front(emu).conns if c.silent}
    await until(lambda: any(c.private and c not in dropped for c in front(emu).conns), "a new user data stream")
    resyncs = v.resyncs
    await until(lambda: v.resyncs > resyncs and v.alive() and not v.gap, "reconnected and resynced")
    assert front(emu).keys.calls["create"] > creates  # asked again: the same, still valid, key came back
    assert keys_of(emu) == key
    assert v.differences == 0
    assert abs(position(emu, INV) + 7_150) <= 71


async def test_listen_key_keepalive_and_expiry(running: Start) -> None:
    emu, k, v = await running(interval=1000, resync=3600)
    v.listen_key_keepalive = 3600.0  # the test sends the keepalives itself
    await settled(emu, v)
    keys = front(emu).keys
    [key] = [lk.key for lk in keys.by_api_key.values()]
    conns = {c for c in front(emu).conns if c.private}

    # kept alive: 100 minutes of exchange time with a keepalive after 50, the same key and connection
    emu.engine.step(50 * 60)
    assert await v.keep_listen_key_alive()
    emu.engine.step(50 * 60)
    front(emu).expire_keys()
    assert keys.calls["expired"] == 0 and keys.active(key) is not None
    messages, resyncs = v.messages["balance"], v.resyncs
    emu.engine.credit("demo-key", "BTC", D("0.01"))
    await until(lambda: v.messages["balance"] > messages, "the deposit streamed")
    assert dec(v.balance["total"]["BTC"]) == dec(wallet_totals(await v.exchange.fetch_balance())["total"]["BTC"])
    assert {c for c in front(emu).conns if c.private} == conns
    # no resync: nothing was lost (when this fails, the state says why a read went to REST)
    assert v.resyncs == resyncs, dict(gap=v.gap, fills_pending=v.fills_pending, reconnects=v.reconnects,
                                      healthy=v.healthy, alive=v.alive())

    # expired: 61 minutes without a keepalive; the stream is told and closed, a new key and a resync follow
    emu.engine.step(61 * 60)
    front(emu).expire_keys()
    assert keys.calls["expired"] == 1
    await until(lambda: v.gap, "the closed stream noticed")
    await until(lambda: any(lk.key != key for lk in keys.by_api_key.values()), "a new listen key")
    await until(lambda: any(c.private for c in front(emu).conns), "the user data stream reopened")
    await until(v.alive, "streams alive again")
    k.wake.set()
    await until(lambda: v.resyncs > resyncs and not v.gap and v.alive(), "resynced on the new stream")
    assert front(emu).sent["listenKeyExpired"] == 1
    assert v.differences == 0
    messages = v.messages["balance"]
    emu.engine.credit("demo-key", "BTC", D("0.01"))
    await until(lambda: v.messages["balance"] > messages, "deposits stream again")
    assert keys.calls["keepalive"] == 1


async def test_a_stalled_event_type_is_withheld_while_the_rest_flows(manual: tuple[Emulator, Any, Any]) -> None:
    emu, rest, pro = manual
    balance = asyncio.create_task(pro.watch_balance())
    await until(lambda: any(c.private for c in front(emu).conns), "user data stream open")
    front(emu).stall("ACCOUNT_UPDATE")
    orders = asyncio.create_task(pro.watch_orders())
    await asyncio.sleep(0.1)
    placed = await rest.create_order(INV, "market", "sell", 10)
    assert any(o["id"] == placed["id"] for o in await result(orders, "orders flow while balances stall"))
    await asyncio.sleep(0.2)
    assert not balance.done() and front(emu).sent["ACCOUNT_UPDATE"] == 0
    front(emu).unstall()
    emu.engine.credit("demo-key", "BTC", D(1))
    got = await result(balance, "balances flow again")
    assert got["info"]["a"]["m"] == "DEPOSIT"


async def test_quiet_market_costs_only_resyncs(running: Start) -> None:
    emu, k, v = await running(interval=0.05, resync=2.0)
    await settled(emu, v)
    for _ in range(1200):  # until the store has nothing in flight: no more follow-ups of the last order
        if not await k.store.unsettled_orders():
            break
        await asyncio.sleep(0.05)
    await until(lambda: v.resyncs >= 2, "a resync after the hedge")
    orders = len(emu.engine.orders_list())
    rest0, cycles0, resyncs0 = emu.rest.requests["demo-key"], k.cycles, v.resyncs
    assert isinstance(emu.rest, BinanceFront)
    paths0 = dict(emu.rest.endpoints)
    await until(lambda: v.resyncs >= resyncs0 + 3, "three more resyncs")
    paths = {p for p, n in emu.rest.endpoints.items() if n != paths0.get(p, 0)}
    rest, cycles, resyncs = emu.rest.requests["demo-key"] - rest0, k.cycles - cycles0, v.resyncs - resyncs0
    assert cycles >= 10  # the keeper kept cycling (every 50 ms) on the streamed view ...
    # ... and REST saw only resyncs: account and positionRisk (the leverage brackets are cached)
    assert rest <= 2 * (resyncs + 1), (rest, resyncs, cycles)
    assert paths <= {"GET /dapi/v1/account", "GET /dapi/v1/positionRisk"}, paths
    assert len(emu.engine.orders_list()) == orders  # zero orders
    assert v.differences == 0


async def test_a_deposit_on_a_stalled_account_update_is_hedged_at_the_next_resync(running: Start) -> None:
    # ACCOUNT_UPDATE carries the wallet and the positions: with it stalled, the deposit hedge's fills reach the
    # view only through the REST confirmation their order updates force (the hedge is sold once)
    emu, k, v = await running(interval=0.2)  # resync: the default
    await settled(emu, v)
    await deposit_on_a_stalled_topic(emu, k, v, front(emu), "ACCOUNT_UPDATE", lambda: position(emu, INV), 7_150)
