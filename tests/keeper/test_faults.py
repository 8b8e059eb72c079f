"""Resilience: injected exchange faults over hundreds of cycles never duplicate an order or break a limit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from decimal import Decimal
from typing import Any

from .test_cycle import exchange_orders, settle

MAX_ORDER_USD = 50_000
# per front of the local exchange: its order endpoint, and the USD one BTC/USD:BTC contract is worth
FRONTS = {"bybit": ("/v5/order/create", 1), "binance": ("POST /dapi/v1/order", 100)}


async def test_ten_percent_faults_over_300_cycles(front_harness_factory: tuple[str, Any]) -> None:
    front, harness_factory = front_harness_factory
    order_endpoint, contract_usd = FRONTS[front]
    h = await harness_factory(limits={"max_order_usd": MAX_ORDER_USD}, keeper={"max_failures": 1000},
                              hedge=[{"asset": "BTC", "venue": "sim", "instrument": "BTC/USD:BTC"}])
    # Start hedged. The account holds 10 BTC and orders are capped at 50,000 USD (0.77 BTC): opening the
    # hedge under faults would leave a backlog of up to 13 capped orders, one per cycle, and "back in band
    # within 3 cycles" would depend on how much of it the faults happened to leave.
    await settle(h)
    for v in h.venues.values():
        v.exchange.timeout = 500  # ms: a hang costs half a second, not ten
    faults = h.emu.faults
    faults.reseed(7)
    faults.add({"kind": "http_5xx", "rate": 0.03})
    faults.add({"kind": "http_429", "rate": 0.03})
    faults.add({"kind": "hang", "rate": 0.01, "hang_s": 0.8})
    faults.add({"kind": "drop_reply", "rate": 0.03})
    faults.add({"kind": "drop_reply", "endpoint": order_endpoint, "rate": 0.3})
    failed = 0
    for i in range(300):
        if i % 40 == 0:
            h.emu.engine.credit("demo-key", "BTC", Decimal("0.5"))  # something to hedge, again and again
        res = await h.keeper._guarded_cycle()
        failed += bool(res.error)
        await asyncio.sleep(0.01)
    fired = sum(r["fired"] for r in faults.describe())
    assert fired >= 100, faults.describe()
    faults.clear()

    # An order whose reply was dropped in the last faulty cycles may still be executed by the exchange
    # until lost_after (client timeout + receive window) has passed, and until then the keeper rightly
    # sends nothing more on that instrument. Counting cycles from inside that window made this test pass
    # or fail on where the last drop happened to fall; so wait it out, then: back inside the band within
    # 3 cycles (plus fill time, 3 s apart).
    await asyncio.sleep(h.keeper.executor.lost_after)
    for _ in range(3):
        res = await h.keeper.cycle()
        await asyncio.sleep(3.0)
    res = await h.keeper.cycle()
    assert all(abs(d.plan.drift) <= d.plan.band for d in res.decisions), [
        (str(d.plan.drift), str(d.plan.band), [str(r) for r in d.reasons]) for d in res.decisions]

    orders = exchange_orders(h.emu)
    ids = [o["client_order_id"] for o in orders]
    assert len(ids) > 5
    dupes = [cid for cid, n in Counter(ids).items() if n > 1]
    assert dupes == []
    db = sqlite3.connect(h.config.audit_url.removeprefix("sqlite:///"))
    intents = {row[0] for row in db.execute("select client_order_id from orders")}
    assert set(ids) <= intents, set(ids) - intents
    for o in orders:
        assert Decimal(str(o["qty"])) * contract_usd <= MAX_ORDER_USD  # inverse contracts are USD
        assert abs(Decimal(str(o["price"])) - 65000) / 65000 * 10000 <= 50
    print(f"front={front} cycles=300 failed_cycles={failed} faults_fired={fired} orders={len(orders)}")
