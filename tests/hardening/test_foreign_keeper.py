"""Another keeper trading as us, found from the exchange itself on any venue (issue 17, item 3): an open order
or a trade with our client-id prefix that our store never wrote halts within `[keeper] foreign_check`
seconds (the keeper's clock), with a critical alert and no order placed, while a quiet cycle between the
searches still costs 3 requests per venue."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hedged.audit.store import EventKind
from hedged.foreign import OVERLAP_MS, Watch, checked, fresh, schedule
from hedged.model import TradingState
from hedged.sim.client import make_client
from hedged.sim.server import Emulator
from hedged.stream import StreamedVenue

INV = "BTC/USD:BTC"
# Polled: the request budgets below are a polling venue's; a streamed venue's open orders come with every
# cycle at no request cost (test_a_live_order_stream_shows_a_foreign_order_at_the_next_cycle).
QUIET = {"keeper": {"foreign_check": 30}, "venue": {"stream": False},
         "hedge": [{"asset": "BTC", "venue": "sim", "instrument": INV, "ratio": 0}]}


@pytest.fixture
async def hand(emulator: Emulator) -> AsyncIterator[Any]:
    """A person (or another keeper) on the same account, through real ccxt."""
    client = make_client(emulator.url, "demo-key", "demo-secret")
    await client.load_markets()
    yield client
    await client.close()


async def critical_alerts(h: Any) -> list[dict[str, Any]]:
    alerts = [e.payload for e in await h.store.events_after(0, 1000, kinds=(EventKind.ALERT,))]
    return [a for a in alerts if isinstance(a, dict) and a.get("code") == "foreign_keeper"]


async def streamed(harness_factory: Any, emulator: Emulator, **keeper: Any) -> tuple[Any, StreamedVenue]:
    """A keeper on a streamed Bybit venue `sim` hedging nothing (QUIET's hedge), its streams alive."""
    venues = {"sim": {"exchange": "bybit", "url": emulator.url, "api_key_env": "SIM_KEY", "secret_env": "SIM_SECRET",
                      "timeout": 2, "stream": True}}
    h = await harness_factory(keeper=keeper, venues=venues, hedge=QUIET["hedge"])
    v = h.venues["sim"]
    assert isinstance(v, StreamedVenue)
    for _ in range(600):  # the streams subscribe in the background: wait, generously
        if v.alive() and not v.gap:
            break
        await h.keeper.cycle()
        await asyncio.sleep(0.05)
    assert v.alive()
    return h, v


def ours_on_book(emu: Emulator) -> list[str]:
    return [o["client_order_id"] for o in emu.engine.orders_list()
            if o["client_order_id"].startswith("t1_") and o["status"] in ("New", "PartiallyFilled")]


async def test_a_foreign_open_order_where_nothing_of_ours_is_in_flight_halts(harness_factory: Any, hand: Any,
                                                                             emulator: Emulator) -> None:
    h = await harness_factory(**QUIET)
    venue = h.venues["sim"]
    first = await h.keeper.cycle()
    assert first.state is TradingState.RUNNING and first.sent == 0 and not await h.store.unsettled_orders()
    await hand.create_order(INV, "limit", "sell", 100, 90000, {"clientOrderId": "t1_elsewhere02-0"})
    before = venue.requests
    quiet = await h.keeper.cycle()  # the search is not due yet: the quiet cycle's budget holds
    assert venue.requests - before == 3 and quiet.state is TradingState.RUNNING
    h.clock.advance(timedelta(seconds=31))  # [keeper] foreign_check = 30 s on the keeper's clock
    before = venue.requests
    caught = await h.keeper.cycle()
    assert venue.requests - before == 3 + 2  # the search: open orders (one category), trades (one symbol)
    assert caught.state is TradingState.HALTED and caught.sent == 0
    assert all(d.order is None for d in caught.decisions)
    assert await h.store.requested_state() is TradingState.HALTED  # durable
    alerts = await critical_alerts(h)
    assert len(alerts) == 1 and alerts[0]["level"] == "critical" and "t1_elsewhere02-0" in alerts[0]["message"]
    assert await h.store.get_order("t1_elsewhere02-0") is None  # never adopted
    assert ours_on_book(emulator) == ["t1_elsewhere02-0"]  # not ours to cancel; nothing of ours added
    again = await h.keeper.cycle()
    assert again.state is TradingState.HALTED and again.sent == 0 and len(await critical_alerts(h)) == 1


async def test_a_foreign_trade_of_an_order_never_open_halts(harness_factory: Any, hand: Any,
                                                            emulator: Emulator) -> None:
    h = await harness_factory(**QUIET)
    assert (await h.keeper.cycle()).sent == 0
    # filled at once (a market order): it is never open, only its trade tells
    placed = await hand.create_order(INV, "market", "sell", 100, None, {"clientOrderId": "t1_handfill01-0"})
    got = await hand.fetch_order(placed["id"], INV, {"acknowledged": True})
    assert got["status"] == "closed" and float(got["filled"]) == 100
    orders_before = len(emulator.engine.orders_list())
    h.clock.advance(timedelta(seconds=31))
    caught = await h.keeper.cycle()  # the position moved by 100 USD: the plan wants a buy, the halt wins
    assert caught.state is TradingState.HALTED and caught.sent == 0
    assert len(emulator.engine.orders_list()) == orders_before  # no order placed
    alerts = await critical_alerts(h)
    assert len(alerts) == 1 and "t1_handfill01-0" in alerts[0]["message"]
    assert alerts[0]["data"]["trades"] == ["t1_handfill01-0"] and alerts[0]["data"]["orders"] == []
    assert await h.store.requested_state() is TradingState.HALTED


def test_the_search_schedule_is_pure() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    w = checked(Watch(since_ms=1000), t0, [5_000_000, None, 4_000_000])
    assert w.checked_at == t0 and w.newest_trade_ms == 5_000_000
    at = t0 + timedelta(seconds=59)
    assert schedule({"a": w}, at, every=60, readable=["a"], orders_read=set()) == ()
    due = schedule({"a": w}, t0 + timedelta(seconds=60), every=60, readable=["a", "b"], orders_read={"a"})
    # a: open orders already read this cycle, trades from a little before the newest seen; b: never searched
    assert [(c.venue, c.orders, c.trades_since_ms) for c in due] == [("a", False, 5_000_000 - OVERLAP_MS),
                                                                    ("b", True, 0)]
    assert schedule({"a": w}, t0 + timedelta(hours=1), every=60, readable=[], orders_read=set()) == ()  # down
    assert checked(w, at, []).newest_trade_ms == 5_000_000  # no trades: the window does not move back
    assert fresh(["x", "y"], {"x"}) == {"y"}
    # an unbroken order stream since the last search stands in for its trade read: nothing over REST; a venue
    # never searched still reads its trades (the stream shows nothing from before it started)
    covered = schedule({"a": w}, t0 + timedelta(seconds=60), every=60, readable=["a", "b"], orders_read={"a", "b"},
                       streamed={"a", "b"})
    assert [(c.venue, c.orders, c.trades) for c in covered] == [("a", False, False), ("b", False, True)]


async def test_a_live_order_stream_shows_a_foreign_order_at_the_next_cycle(harness_factory: Any, hand: Any,
                                                                           emulator: Emulator) -> None:
    """With streams, open orders come free in every cycle: no need to wait for the scheduled search."""
    h, v = await streamed(harness_factory, emulator, foreign_check=3600)
    assert (await h.keeper.cycle()).state is TradingState.RUNNING
    await hand.create_order(INV, "limit", "sell", 100, 90000, {"clientOrderId": "t1_streamed03-0"})
    for _ in range(600):  # the order reaches the view over the socket
        if any(o.get("clientOrderId") == "t1_streamed03-0" for o in v.orders.values()):
            break
        await asyncio.sleep(0.05)
    before = v.requests
    caught = await h.keeper.cycle()
    assert caught.state is TradingState.HALTED and caught.sent == 0
    assert v.requests - before <= 2  # no search was due: the view told (a resync may fall due meanwhile)
    alerts = await critical_alerts(h)
    assert len(alerts) == 1 and "t1_streamed03-0" in alerts[0]["message"]


async def test_a_streamed_venue_catches_a_foreign_order_filled_at_once_without_a_rest_search(
        harness_factory: Any, hand: Any, emulator: Emulator) -> None:
    """The order stream shows every order of the account, filled at once or not: while it has not broken since
    the last search, its ids stand in for the search's REST trade read. A quiet streamed venue costs only its
    resyncs; another keeper's market order that never rests still halts at the next cycle."""
    h, v = await streamed(harness_factory, emulator, foreign_check=30, resync=3600)
    # the first search ran before the streams were up (REST); the next one, streams up, reads REST once more:
    # the order stream covers from there on
    h.clock.advance(timedelta(seconds=31))
    assert (await h.keeper.cycle()).state is TradingState.RUNNING
    assert not v.order_stream_broken
    calls: Counter[str] = Counter()  # REST calls by ccxt method, as the metrics hook sees them
    v.on_request = lambda venue, call, seconds, error: calls.update([call])
    for _ in range(3):  # searches fall due; the unbroken stream answers them
        h.clock.advance(timedelta(seconds=31))
        before = v.requests
        quiet = await h.keeper.cycle()
        assert quiet.state is TradingState.RUNNING and v.requests == before  # not one REST request
    assert calls["fetch_my_trades"] == 0
    placed = await hand.create_order(INV, "market", "sell", 100, None, {"clientOrderId": "t1_streamfill04-0"})
    got = await hand.fetch_order(placed["id"], INV, {"acknowledged": True})
    assert got["status"] == "closed"  # never open: only the order stream (or a trade) shows it
    for _ in range(600):  # it reaches ccxt.pro's order cache over the socket
        if "t1_streamfill04-0" in v.streamed_order_ids()[0]:
            break
        await asyncio.sleep(0.05)
    # offered until a check has run on it (a failed check misses nothing): looking does not consume it
    assert "t1_streamfill04-0" in v.streamed_order_ids()[0]
    for _ in range(600):
        caught = await h.keeper.cycle()
        if caught.state is TradingState.HALTED:
            break
        await asyncio.sleep(0.05)
    assert caught.state is TradingState.HALTED and caught.sent == 0
    assert calls["fetch_my_trades"] == 0  # no REST search needed (its fill asked for a resync: balance, positions)
    assert "t1_streamfill04-0" not in v.streamed_order_ids()[0]  # checked
    alerts = await critical_alerts(h)
    assert len(alerts) == 1 and "t1_streamfill04-0" in alerts[0]["message"]
