"""What the executor does per error class, against the local exchange's injected faults on order create.

RateLimited → refused at the door: rejected, nothing on the book, the next cycle sends anew. Ambiguous (a 5xx,
a dropped reply, an answer later than the client waits) → looked up by client id, never sent again: found →
followed; not found → `sent`, counted in flight, until it shows up or can no longer arrive. A post-only order
the exchange cancels → cancelled, and the keeper re-plans at once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from hedged.order_state import OrderStatus

BTC = "BTC/USD:BTC"


async def one_order(h: Any) -> Any:
    rows = await h.store.recent_orders(since=datetime(2000, 1, 1, tzinfo=UTC))
    assert len(rows) == 1, rows
    return rows[0]


def on_exchange(h: Any) -> list[dict[str, Any]]:
    return [o for o in h.emu.engine.orders_list() if o["client_order_id"].startswith("t1_")]


@pytest.mark.parametrize(("fault", "status", "on_book"), [
    ({"kind": "http_429"}, OrderStatus.REJECTED, 0),  # RateLimited: definitive
    ({"kind": "http_5xx"}, OrderStatus.SENT, 0),  # Ambiguous, not found: in flight until it cannot arrive
    ({"kind": "drop_reply"}, OrderStatus.OPEN, 1),  # Ambiguous, found by client id
    ({"kind": "post_only_reject"}, OrderStatus.CANCELLED, 1),  # accepted, then cancelled by the exchange
])
async def test_create_fault_per_error_class(harness_factory: Any, fault: dict[str, Any], status: OrderStatus,
                                            on_book: int) -> None:
    h = await harness_factory(hedge=[{"asset": "BTC", "venue": "sim", "instrument": BTC}])
    h.emu.engine.taker_flow_usd_per_s = 0  # nothing fills: the order's fate is the fault's alone
    h.emu.faults.add({"endpoint": "/v5/order/create", "count": 1, **fault})
    h.keeper.wake.clear()
    res = await h.keeper.cycle()
    assert res.sent == 1 and h.emu.faults.describe()[0]["fired"] == 1
    rec = await one_order(h)
    assert rec.status == status, rec
    assert len(on_exchange(h)) == on_book
    if status is OrderStatus.CANCELLED:
        assert h.keeper.wake.is_set()  # post-only bounced: re-plan at once
    # the next cycle: never a second order for an order that may exist; a refused one is sent anew
    res = await h.keeper.cycle()
    if status in (OrderStatus.SENT, OrderStatus.OPEN):
        assert res.sent == 0 and res.decisions[0].plan.inflight == -10, res.decisions[0].reasons
    else:
        assert res.sent == 1
    ids = [o["client_order_id"] for o in on_exchange(h)]
    assert len(ids) == len(set(ids))


async def test_an_answer_later_than_the_client_waits_is_followed_not_resent(harness_factory: Any) -> None:
    h = await harness_factory(hedge=[{"asset": "BTC", "venue": "sim", "instrument": BTC}])
    h.emu.engine.taker_flow_usd_per_s = 0
    h.emu.faults.add({"endpoint": "/v5/order/create", "kind": "latency", "latency_ms": 3000, "count": 1})
    res = await h.keeper.cycle()  # the client gives up after 2 s: Ambiguous, not found yet
    assert res.sent == 1 and (await one_order(h)).status == OrderStatus.SENT
    for _ in range(200):  # then the exchange makes it; the keeper finds it by client id
        res = await h.keeper.cycle()
        assert res.sent == 0
        if (await one_order(h)).status == OrderStatus.OPEN:
            break
        await asyncio.sleep(0.1)
    assert (await one_order(h)).status == OrderStatus.OPEN
    assert len(on_exchange(h)) == 1
