"""Streams through real ccxt.pro to the local exchange: quiet-market REST cost, silent drop, ticker burst,
the stream_down alert, a stalled ticker topic and max_data_age, wallet pushes on fees and funding."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hedged.keeper import Keeper
from hedged.model import Code, Decision
from hedged.service import make_venues
from hedged.sim.rest import RestFront
from hedged.sim.server import Emulator
from hedged.sim.settings import default_settings
from hedged.stream import StreamedVenue
from hedged.venue import now_ms
from tests.keeper.conftest import keeper_config
from tests.stream.conftest import INV, Start, position, streamed_keepers, until, venue_cfg


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Start]:
    async with streamed_keepers(tmp_path, "bybit") as start:
        yield start


def open_orders(emu: Emulator) -> list[dict[str, Any]]:
    return [o for o in emu.engine.orders_list() if o["status"] in ("New", "PartiallyFilled", "Untriggered")]


async def settled(emu: Emulator, k: Keeper, v: StreamedVenue) -> None:
    await until(lambda: abs(position(emu, INV) + 650_000) <= 6_500 and not open_orders(emu), "hedge opened, settled")
    await until(v.alive, "streams alive")
    for _ in range(1200):  # and the keeper has followed its last order to the end (no more lookups)
        if not await k.store.unsettled_orders():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the keeper's store still has orders in flight")


async def test_quiet_market_costs_only_resyncs(running: Any) -> None:
    emu, k, v = await running(interval=0.05, resync=2.0)
    await settled(emu, k, v)
    await until(lambda: v.resyncs >= 1 and not v.gap, "first resync")
    orders = len(emu.engine.orders_list())
    rest0, cycles0, resyncs0 = sum(emu.rest.requests.values()), k.cycles, v.resyncs
    await until(lambda: v.resyncs >= resyncs0 + 3, "three more resyncs")
    rest, cycles, resyncs = sum(emu.rest.requests.values()) - rest0, k.cycles - cycles0, v.resyncs - resyncs0
    assert cycles >= 10  # the keeper kept cycling (every 50 ms) ...
    # ... on the streamed view: 2 REST requests per resync (balance, positions), nothing per cycle
    assert rest <= 2 * (resyncs + 1), (rest, resyncs, cycles)
    assert len(emu.engine.orders_list()) == orders  # zero orders
    assert v.differences == 0


async def test_silent_drop_of_the_private_stream(running: Any) -> None:
    emu, k, v = await running(heartbeat=1.0, interval=0.2, resync=3600)
    await settled(emu, k, v)
    reconnects = v.reconnects
    assert emu.ws.drop_silently(channel="private") == 1
    await until(lambda: not v.alive(), "the dead stream noticed")
    rest0 = sum(emu.rest.requests.values())
    emu.engine.credit("demo-key", "BTC", Decimal(1))  # a deposit while the stream is down
    await until(lambda: abs(position(emu, INV) + 715_000) <= 7_150, "deposit hedged by polling")
    assert sum(emu.rest.requests.values()) > rest0  # it was REST that saw it
    await until(lambda: v.alive() and not v.gap, "reconnected and resynced")
    # a reconnect is counted at the first private message after it; with the hedge already done by polling
    # nothing else would send one, so the exchange is given a reason (a small wallet change, repeated until it
    # arrives: the new subscriptions may still be on their way when the socket is back)
    for _ in range(240):
        if v.reconnects > reconnects:
            break
        emu.engine.credit("demo-key", "USDT", Decimal("0.01"))
        await asyncio.sleep(0.5)
    assert v.reconnects > reconnects, "the private stream delivers again"
    assert v.differences == 0
    assert abs(position(emu, INV) + 715_000) <= 7_150


async def test_a_burst_of_tickers_causes_a_handful_of_cycles(running: Any) -> None:
    emu, k, v = await running(interval=1000)
    await settled(emu, k, v)
    await asyncio.sleep(0.5)
    cycles0, sent0 = k.cycles, emu.ws.sent["tickers"]
    for i in range(1000):
        emu.engine.set_price(Decimal(65000) + Decimal(i % 50), asset="BTC")
        await asyncio.sleep(0)  # the exchange pushes a ticker per loop turn (the latest state): one each
        if i % 100 == 99:
            await asyncio.sleep(0.1)
    await until(lambda: emu.ws.sent["tickers"] >= sent0 + 1000, "the burst went out over the socket")
    await until(lambda: v.tickers[INV]["last"] == 65049, "and reached the view")
    await asyncio.sleep(0.5)
    assert k.cycles - cycles0 <= 3, k.cycles - cycles0  # an own-coin inverse hedge: price never wakes it
    emu.engine.credit("demo-key", "BTC", Decimal(1))  # a balance change does, at once
    await until(lambda: k.cycles > cycles0 + 0, "a deposit wakes the keeper")


async def test_a_price_that_moves_a_cross_hedge_past_its_band_wakes_the_keeper(running: Any) -> None:
    # 100 ETH hedged with the BTC linear perp: target = −100 × P_ETH / P_BTC BTC, so the ETH price alone
    # moves drift; timer cycles are 1000 s apart, so only the stream can bring the next cycle
    lin = "BTC/USDT:USDT"
    emu, _, v = await running(interval=1000, hedge=[
        {"asset": "ETH", "venue": "sim", "instrument": lin, "price_symbol": "ETH/USDT", "include_collateral": False,
         "off_exchange": 100}])
    await until(lambda: abs(position(emu, lin) + Decimal("4.615")) <= Decimal("0.05") and not open_orders(emu),
                "cross hedge opened")
    assert lin in v.sensitive
    await until(v.alive, "streams alive")
    orders = len(emu.engine.orders_list())
    emu.engine.set_price(Decimal(3300), asset="ETH")  # +10 %: target −5.077 BTC, far beyond the 1 % band
    await until(lambda: len(emu.engine.orders_list()) > orders, "the price move woke a cycle that traded")
    await until(lambda: abs(position(emu, lin) + Decimal("5.077")) <= Decimal("0.06"), "back in band")


async def test_a_wake_set_during_a_cycle_brings_the_next_one(running: Any) -> None:
    # The run loop used to clear `wake` after the cycle, dropping any set during it (a stream event, a
    # post-only bounce) until the next timer tick; the timer here is 1000 s away.
    emu, k, v = await running(interval=1000)
    await settled(emu, k, v)
    for _ in range(1200):  # until the store has nothing in flight: no more 1 s follow-up cycles
        if not await k.store.unsettled_orders():
            break
        await asyncio.sleep(0.05)
    n = k.cycles
    k.wake.set()
    await until(lambda: k.cycles > n, "one more cycle, after which the keeper sleeps for the interval")
    await asyncio.sleep(0.5)
    previous = k.on_cycle
    woke: list[int] = []

    def on_cycle(result: Any, snap: Any) -> None:
        if previous is not None:
            previous(result, snap)
        if not woke:
            woke.append(k.cycles)
            k.wake.set()  # as if an event landed while this cycle ran

    k.on_cycle = on_cycle
    k.wake.set()
    await until(lambda: bool(woke), "a woken cycle")
    await until(lambda: k.cycles > woke[0], "the wake set during it was not lost")


async def alerts(k: Keeper, code: str) -> list[dict[str, Any]]:
    return [ev.payload async for ev in k.store.iter_events()
            if ev.kind == "alert" and isinstance(ev.payload, dict) and ev.payload.get("code") == code]


async def test_a_stream_down_past_the_threshold_alerts_and_its_return_resolves(running: Any) -> None:
    emu, k, v = await running(heartbeat=1.0, interval=0.2, resync=3600)
    await settled(emu, k, v)
    offset = [0.0]
    v.clock = lambda: time.monotonic() + offset[0]  # the venue's clock: the threshold is crossed by a step
    v.alert_after = 30.0
    emu.ws.refuse("private")  # the gateway is down: the private stream cannot come back until accepted
    assert emu.ws.drop_silently(channel="private") == 1
    await until(lambda: not v.alive() and v.down_since is not None, "the dead stream noticed")
    n, rest0 = k.cycles, sum(emu.rest.requests.values())
    await until(lambda: k.cycles >= n + 5, "cycles go on while the stream is down")
    assert sum(emu.rest.requests.values()) > rest0  # polling REST meanwhile
    assert await alerts(k, "stream_down") == []  # down, but not yet for the threshold
    emu.engine.credit("demo-key", "BTC", Decimal(1))  # and the hedge is kept, by polling
    await until(lambda: abs(position(emu, INV) + 715_000) <= 7_150 and not open_orders(emu), "deposit hedged")
    assert await alerts(k, "stream_down") == []
    offset[0] += 31.0
    for _ in range(1200):
        if await alerts(k, "stream_down"):
            break
        await asyncio.sleep(0.05)
    down = await alerts(k, "stream_down")
    assert len(down) == 1 and down[0]["level"] == "warning" and down[0]["data"]["venue"] == "sim", down
    assert await alerts(k, "stream_up") == []
    emu.ws.accept()
    await until(lambda: v.alive() and not v.gap and v.down_since is None, "streams back and resynced", 120)
    for _ in range(1200):
        if await alerts(k, "stream_up"):
            break
        await asyncio.sleep(0.05)
    up = await alerts(k, "stream_up")
    assert len(up) == 1 and up[0]["level"] == "info", up
    assert len(await alerts(k, "stream_down")) == 1  # one alert per outage, not one per cycle


async def test_no_order_is_placed_on_a_ticker_older_than_max_data_age(running: Any) -> None:
    # The ticker topic stalls while its connection still answers pings: the stamp is the last ticker that
    # arrived, not the last pong, so the guard sees its age; once silent for a heartbeat, the venue polls.
    emu, k, v = await running(heartbeat=60.0, interval=0.2, resync=3600, limits={"max_data_age": 3})
    await settled(emu, k, v)
    for c in v.pro.clients.values():
        c.keepAlive = 300  # pongs every 0.3 s keep the private parts' stamps fresh
    seen: list[Decision] = []
    previous = k.on_cycle

    def on_cycle(result: Any, snap: Any) -> None:
        if previous is not None:
            previous(result, snap)
        seen.extend(result.decisions)

    k.on_cycle = on_cycle
    emu.ws.stall("tickers.")
    emu.engine.set_price(Decimal(66000), asset="BTC")  # withheld from the stream
    await until(lambda: now_ms() - v.ticker_at[INV] > 3_500, "the streamed ticker is older than max_data_age")
    orders = len(emu.engine.orders_list())
    seen.clear()
    emu.engine.credit("demo-key", "BTC", Decimal(1))  # streamed at once: the keeper wants to sell more
    await until(lambda: any(any(r.code is Code.STALE_DATA for r in d.reasons) for d in seen),
                "a cycle refused to trade on the stale ticker")
    assert v.alive()  # the heartbeat (60 s) has not given up on the topic yet ...
    assert len(emu.engine.orders_list()) == orders  # ... and nothing was sent at the old price
    v.heartbeat = 1.0  # now the silent topic is dead: the venue polls REST and trades on the real price
    await until(lambda: len(emu.engine.orders_list()) > orders and not open_orders(emu) and bool(seen)
                and all(abs(d.plan.drift) <= d.plan.band for d in seen[-1:]), "deposit hedged, by polling")
    new = emu.engine.orders_list()[orders:]
    assert new and all(Decimal(str(o["price"])) >= 65_900 for o in new), new
    emu.ws.unstall()
    v.heartbeat = 60.0
    await until(lambda: v.alive() and not v.gap, "the topic flows again")


async def test_wallet_pushes_on_a_fee_and_a_funding_payment_reach_the_view(tmp_path: Path) -> None:
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = "demo-key", "demo-secret"
    async with Emulator(default_settings(clock="manual", taker_flow_usd_per_s=0)) as emu:
        cfg = keeper_config(emu.url, tmp_path / "k.db", venues=venue_cfg("bybit", emu.url),
                            hedge=[{"asset": "BTC", "venue": "sim", "instrument": INV}])
        v = make_venues(cfg)["sim"]
        assert isinstance(v, StreamedVenue)
        try:
            await v.load_markets()  # starts the streams
            await until(v.alive, "streams alive")
            await v.fetch_state()  # the first REST resync: the view starts from the truth
            eng = emu.engine

            async def view_matches_rest(what: str) -> Decimal:
                rest = await v.exchange.fetch_balance()
                want = Decimal(str(rest["total"]["BTC"]))
                await until(lambda: Decimal(str(v.balance["total"]["BTC"])) == want, what)
                return want

            btc0 = Decimal(str(v.balance["total"]["BTC"]))
            pushes = emu.ws.sent["wallet"]
            # a fee: a market sell takes the book at once and pays the taker fee in BTC
            eng.place_order("demo-key", eng.instrument(INV), "Sell", "Market", Decimal(65_000), None)
            btc1 = await view_matches_rest("the fee reached the view")
            assert btc1 < btc0 and emu.ws.sent["wallet"] > pushes
            # funding: step the manual clock past the next funding time; the short receives (rate > 0)
            pushes, paid = emu.ws.sent["wallet"], len(eng.funding_events)
            eng.step(8 * 3600)
            assert len(eng.funding_events) > paid
            btc2 = await view_matches_rest("the funding payment reached the view")
            assert btc2 != btc1 and emu.ws.sent["wallet"] > pushes
            await until(lambda: not v.gap, "no stream gap")
            assert isinstance(emu.rest, RestFront)
            rest_before = sum(emu.rest.requests.values())
            v.synced_at = 0.0  # force the next read to resync: the view must agree with REST
            await v.fetch_state()
            assert v.differences == 0 and sum(emu.rest.requests.values()) > rest_before
        finally:
            await v.close()



async def test_a_deposit_on_a_stalled_wallet_topic_is_hedged_at_the_next_resync(running: Any) -> None:
    emu, k, v = await running(interval=0.2)  # resync: the default
    await settled(emu, k, v)
    await deposit_on_a_stalled_topic(emu, k, v, emu.ws, "wallet", lambda: position(emu, INV), 715_000)


async def deposit_on_a_stalled_topic(emu: Emulator, k: Keeper, v: StreamedVenue, front: Any, topic: str,
                                     hedge: Callable[[], Decimal], contracts: int) -> None:
    """A deposit while the topic carrying wallet balances stalls and every other topic (and the pings) flows:
    the venue stays alive, so only the periodic REST resync ([keeper] resync, default 60 s) finds it. The
    venue's clock is shifted to reach that resync instead of waiting a minute of real time."""
    assert v.resync == 60.0
    shift = [0.0]
    v.clock = lambda: time.monotonic() + shift[0]
    resyncs = v.resyncs
    shift[0] += v.resync  # one resync now, so that the next one is a minute of real time away
    await until(lambda: v.resyncs > resyncs and not v.resyncing and not v.gap and not v.fills_pending, "a resync")
    cycles: list[tuple[int, int, int]] = []  # per cycle after the deposit: resyncs, differences, orders so far
    previous = k.on_cycle

    def on_cycle(result: Any, snap: Any) -> None:
        if previous is not None:
            previous(result, snap)
        cycles.append((v.resyncs, v.differences, len(emu.engine.orders_list())))

    front.stall(topic)
    resyncs, differences, orders = v.resyncs, v.differences, len(emu.engine.orders_list())
    btc = Decimal(str(v.balance["total"]["BTC"]))
    sent = front.sent[topic]
    emu.engine.credit("demo-key", "BTC", Decimal(1))  # a deposit: its message is withheld
    k.on_cycle = on_cycle
    try:
        await until(lambda: len(cycles) >= 10, "ten cycles after the deposit")
        assert front.sent[topic] == sent
        assert v.alive() and Decimal(str(v.balance["total"]["BTC"])) == btc  # the view lacks the deposit ...
        assert v.resyncs == resyncs  # ... until the next resync, not due yet ...
        assert len(emu.engine.orders_list()) == orders  # ... and no order on that view
        shift[0] += v.resync  # a minute later: the resync is due
        await until(lambda: abs(hedge() + contracts) <= contracts // 100 and not open_orders(emu),
                    "the deposit hedged after the resync")
    finally:
        front.unstall()
    first = next(c for c in cycles if c[0] > resyncs)  # the cycle whose read was that resync
    # no cycle before it placed an order; it counted the lost message as one difference and sold the deposit
    assert all(c[2] == orders for c in cycles[:cycles.index(first)])
    assert first[1] == differences + 1, (first, differences)
    assert first[2] > orders
