"""Resilience: injected exchange faults over hundreds of cycles never duplicate an order or break a limit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from decimal import Decimal
from typing import Any

from .test_cycle import exchange_orders

MAX_ORDER_USD = 50_000


async def test_ten_percent_faults_over_300_cycles(harness_factory: Any) -> None:
    h = await harness_factory(limits={"max_order_usd": MAX_ORDER_USD}, keeper={"max_failures": 1000},
                              hedge=[{"asset": "BTC", "venue": "sim", "instrument": "BTC/USD:BTC"}])
    for v in h.venues.values():
        v.exchange.timeout = 500  # ms: a hang costs half a second, not ten
    faults = h.emu.faults
    faults.reseed(7)
    faults.add({"kind": "http_5xx", "rate": 0.03})
    faults.add({"kind": "http_429", "rate": 0.03})
    faults.add({"kind": "hang", "rate": 0.01, "hang_s": 0.8})
    faults.add({"kind": "drop_reply", "rate": 0.03})
    faults.add({"kind": "drop_reply", "endpoint": "/v5/order/create", "rate": 0.3})
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

    # back inside the band within 3 cycles (plus fill time) once faults stop; cycles 3 s apart here,
    # long enough for a sent-but-unseen order to pass the lost_after window (timeout + recv window)
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
        assert Decimal(str(o["qty"])) <= MAX_ORDER_USD  # 1-USD inverse contracts: qty is the USD notional
        assert abs(Decimal(str(o["price"])) - 65000) / 65000 * 10000 <= 50
    print(f"cycles=300 failed_cycles={failed} faults_fired={fired} orders={len(orders)}")
