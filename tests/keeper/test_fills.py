"""Every trade of an order reaches the store, on both fronts of the local exchange (real ccxt, real SQLite store).

An order's trades are asked for by its own order id and paged until they add up to what the exchange says
filled, so an order filled in many small slices loses none to a page limit. The trades are recorded before
the order row moves to the exchange's state: a keeper that dies (or a trade fetch that fails) in between
leaves the order followed, and the next sync records the rest. A row already at the exchange's filled with
trades missing (what the old order of writes left behind) heals at the next sync, because the decision rests
on the fills the store holds, not on the row.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hedged.audit.store import OrderRecord
from hedged.model import OrderIntent

BTC = "BTC/USD:BTC"
HEDGE = [{"asset": "BTC", "venue": "sim", "instrument": BTC}]
# per front: USD per BTC/USD:BTC contract, the trades endpoint (for faults)
FRONTS = {"bybit": (1, "/v5/execution/list"), "binance": (100, "/dapi/v1/userTrades")}


def engine_order(h: Any, client_id: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [o for o in h.emu.engine.orders_list() if o["client_order_id"] == client_id]
    [o] = rows
    return o


def exchange_trades(h: Any, order_id: str) -> int:
    return sum(e.order_id == order_id and e.exec_type == "Trade" for e in h.emu.engine.executions)


async def resting_sell(h: Any, client_id: str, contracts: int) -> OrderRecord:
    """A sell at the ask, placed by the executor with the taker flow off: it rests, unfilled."""
    h.emu.engine.taker_flow_usd_per_s = 0
    ask = h.emu.engine.instrument(BTC).ask
    intent = OrderIntent("sim", BTC, "sell", Decimal(contracts), ask, False, False, client_id)
    out = await h.keeper.executor.place(intent, notional_usd=Decimal(0), reason="test")
    assert out.status == "open", out
    rec: OrderRecord | None = await h.store.get_order(client_id)
    assert rec is not None and rec.exchange_order_id
    return rec


async def fill_in_slices(h: Any, front: str, client_id: str, until: int) -> int:
    """Let anonymous takers fill the order about one contract per 200 ms of exchange time (the clock is
    stepped, not waited for) until `until` contracts are filled; the exchange's trade count for it."""
    contract_usd, _ = FRONTS[front]
    engine = h.emu.engine
    engine.taker_flow_usd_per_s = Decimal(contract_usd * 5)
    for _ in range(20 * until + 200):
        if Decimal(engine_order(h, client_id)["filled"]) >= until:
            break
        engine.step(0.2)
        await asyncio.sleep(0)
    engine.taker_flow_usd_per_s = 0
    o = engine_order(h, client_id)
    assert Decimal(o["filled"]) >= until, o
    return exchange_trades(h, o["order_id"])


async def follow(h: Any) -> None:
    venue = h.venues["sim"]
    await h.keeper.executor.follow("sim", await venue.open_orders(), datetime.now(UTC))


async def recorded(h: Any, client_id: str) -> tuple[int, Decimal]:
    fills = await h.store.fills_for(client_id)
    return len(fills), sum((f.amount for f in fills), Decimal(0))


async def test_an_order_with_more_trades_than_a_page_records_every_one(front_harness_factory: Any) -> None:
    front, make = front_harness_factory
    h = await make(hedge=HEDGE)
    # another order's trades in the same window first: on a symbol-wide read they take page slots too
    await resting_sell(h, "t1_other", 10)
    await fill_in_slices(h, front, "t1_other", 10)
    await follow(h)
    rec = await resting_sell(h, "t1_many", 150)
    trades = await fill_in_slices(h, front, "t1_many", 150)
    assert trades > 100  # more than one page of the old symbol-wide read
    await follow(h)
    row = await h.store.get_order("t1_many")
    assert row is not None and (row.status, row.filled) == ("filled", Decimal(150)), row
    assert await recorded(h, "t1_many") == (trades, Decimal(150))
    assert await recorded(h, "t1_other") == (exchange_trades(h, engine_order(h, "t1_other")["order_id"]),
                                             Decimal(10))

    # the pages themselves, smaller than the order's trades: bybit pages back by cursor; binance's first
    # page (the order's most recent trades) is full, so its trades are read on by time from the order's start
    venue = h.venues["sim"]
    venue.profile = dataclasses.replace(venue.profile, trades_page=40)
    since = int(rec.created_at.replace(tzinfo=UTC).timestamp() * 1000) - 60_000
    before = venue.requests
    got = await venue.fetch_order_trades(BTC, rec.exchange_order_id, since, Decimal(150))
    assert len({t.id for t in got}) == len(got) == trades
    assert {t.order_id for t in got} == {rec.exchange_order_id}
    assert sum((t.amount for t in got), Decimal(0)) == Decimal(150)
    assert venue.requests - before >= 4  # it did page


async def test_a_failed_trade_fetch_leaves_the_order_followed_until_its_fills_are_recorded(
        front_harness_factory: Any) -> None:
    front, make = front_harness_factory
    _, trades_endpoint = FRONTS[front]
    h = await make(hedge=HEDGE)
    await resting_sell(h, "t1_fault", 10)
    trades = await fill_in_slices(h, front, "t1_fault", 10)
    assert engine_order(h, "t1_fault")["status"] == "Filled"
    # every attempt of the next trade read fails (the venue retries it twice)
    rule = h.emu.faults.add({"endpoint": trades_endpoint, "kind": "http_5xx", "count": 3})
    await follow(h)
    assert h.emu.faults.describe()[0]["fired"] == 3, h.emu.faults.describe()
    row = await h.store.get_order("t1_fault")
    assert row is not None and row.status == "partially_filled", row  # not settled: still followed
    assert row in await h.store.unsettled_orders("sim")
    assert await recorded(h, "t1_fault") == (0, Decimal(0))
    h.emu.faults.rules.remove(rule)
    await follow(h)  # the next sync: the trades, then the exchange's state
    row = await h.store.get_order("t1_fault")
    assert row is not None and (row.status, row.filled) == ("filled", Decimal(10)), row
    assert await recorded(h, "t1_fault") == (trades, Decimal(10))


async def test_a_row_already_at_the_exchanges_filled_with_fills_missing_heals_at_the_next_sync(
        front_harness_factory: Any) -> None:
    front, make = front_harness_factory
    h = await make(hedge=HEDGE)
    venue, executor = h.venues["sim"], h.keeper.executor
    rec = await resting_sell(h, "t1_heal", 10)
    trades = await fill_in_slices(h, front, "t1_heal", 6)
    live = await venue.fetch_order(rec.exchange_order_id, BTC)
    assert live.status == "partially_filled" and live.filled >= 6
    # what the old order of writes left when the keeper died between the row and the trades: the row at the
    # exchange's filled, two of the order's trades recorded
    await h.store.update_order("t1_heal", status=live.status, filled=live.filled)
    ours = [t for t in await venue.fetch_my_trades(BTC) if t.order_id == rec.exchange_order_id]
    for t in ours[:2]:
        assert await executor.record_trade("sim", t, "t1_heal")
    assert await recorded(h, "t1_heal") == (2, sum((t.amount for t in ours[:2]), Decimal(0)))
    await executor.sync("sim", "t1_heal", live)
    assert await recorded(h, "t1_heal") == (trades, live.filled)
    # and it is followed on to the end
    trades = await fill_in_slices(h, front, "t1_heal", 10)
    await follow(h)
    row = await h.store.get_order("t1_heal")
    assert row is not None and (row.status, row.filled) == ("filled", Decimal(10)), row
    assert await recorded(h, "t1_heal") == (trades, Decimal(10))


async def test_trades_the_exchange_never_lists_are_asked_for_a_few_times_then_reported(
        front_harness_factory: Any) -> None:
    front, make = front_harness_factory
    h = await make(hedge=HEDGE)
    executor = h.keeper.executor
    await resting_sell(h, "t1_gone", 10)
    trades = await fill_in_slices(h, front, "t1_gone", 10)
    # the exchange says filled 10, but lists one trade fewer (an exchange that loses one, or lags for good)
    engine = h.emu.engine
    [lost] = [e for e in engine.executions if e.order_id == engine_order(h, "t1_gone")["order_id"]][:1]
    engine.executions.remove(lost)
    for _ in range(executor.fill_retries - 1):
        await follow(h)
        row = await h.store.get_order("t1_gone")
        assert row is not None and row.status == "partially_filled", row  # followed, asked for again
    assert await recorded(h, "t1_gone") == (trades - 1, Decimal(10) - lost.qty)
    await follow(h)  # the last try: settled as the exchange says, and the gap reported
    row = await h.store.get_order("t1_gone")
    assert row is not None and (row.status, row.filled) == ("filled", Decimal(10)), row
    error = await h.store.last_error()
    assert error is not None and error.payload["error_type"] == "FillsMissing", error
    assert error.payload["client_order_id"] == "t1_gone" and "listed trades" in error.payload["message"], error
    assert await recorded(h, "t1_gone") == (trades - 1, Decimal(10) - lost.qty)
