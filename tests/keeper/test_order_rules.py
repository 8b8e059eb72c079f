"""The order rules end to end: re-pricing, escalation and band hysteresis, through real ccxt against the local
exchange on a manual clock (nothing fills unless a test says so), with the keeper's clock moved alongside."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore
from hedged.service import secrets_of
from hedged.sim.server import Emulator
from hedged.sim.settings import default_settings
from tests.clocks import manual_clock

from .conftest import Harness, keeper_config

BTC = "BTC/USD:BTC"
# the venue stamps data with the wall clock, the keeper runs on the exchange's (pinned, stepped) clock
LIMITS = {"max_data_age": 86_400, "max_price_jump_bps": 10_000}


class Clocked:
    """A harness whose keeper and audit store read the exchange's manual clock: one clock, moved by `step`."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.h: Harness

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.emu.engine.now_ms() / 1000, UTC)

    def step(self, seconds: float) -> None:
        self.emu.engine.step(seconds)

    def ours(self) -> list[dict[str, Any]]:
        prefix = f"{self.h.config.keeper.name}_"
        return [o for o in self.h.emu.engine.orders_list() if o["client_order_id"].startswith(prefix)]


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[Any]:
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = "demo-key", "demo-secret"
    made: list[Harness] = []

    async def make(emu_settings: dict[str, Any], **sections: Any) -> Clocked:
        emu = Emulator(default_settings(clock="manual", **emu_settings),
                       clock=manual_clock())
        await emu.__aenter__()
        cfg = keeper_config(emu.url, tmp_path / f"k{len(made)}.db",
                            hedge=[{"asset": "BTC", "venue": "sim", "instrument": BTC}], **sections)
        await upgrade(cfg.audit_url)
        c = Clocked(emu)
        store = await AuditStore.open(cfg.audit_url, cfg.keeper.name, secrets=secrets_of(cfg), clock=c.now)
        c.h = h = Harness(emu, cfg, store)
        h.keeper.clock = c.now
        await h.keeper.start()
        made.append(h)
        return c

    yield make
    for h in made:
        await h.close()
        await h.emu.__aexit__(None, None, None)


async def test_max_reprices_2_with_escalate_reaches_a_marketable_limit_on_the_third_attempt(clocked: Any) -> None:
    c = await clocked({"taker_flow_usd_per_s": 0}, limits=LIMITS,  # nothing passive ever fills
                      execution={"order_timeout": 30, "max_reprices": 2, "escalate": True, "max_slippage_bps": 20})
    for _ in range(12):  # each round: cycles while the order rests, then it times out on the exchange's clock
        for _ in range(4):  # (a re-price cancel, the re-post, then holds: the resting order covers the drift)
            await c.h.keeper.cycle()
        if any(Decimal(str(o["filled"])) > 0 for o in c.ours()):
            break
        c.step(31)
    orders = c.ours()
    assert len(orders) == 3, orders
    first, second, third = orders
    for o in (first, second):  # passive, at the touch, cancelled unfilled for a re-post
        assert o["time_in_force"] == "PostOnly" and o["status"] == "Cancelled" and Decimal(str(o["filled"])) == 0
    assert third["time_in_force"] != "PostOnly" and Decimal(str(third["filled"])) > 0  # took the book
    price = Decimal(str(third["price"]))
    assert price < Decimal("64999.5")  # through the best bid: marketable
    assert (65000 - price) / 65000 * 10000 <= 20  # within max_slippage_bps of the mark


async def test_price_oscillating_around_the_band_edge_for_an_hour_never_cancels_and_replaces(clocked: Any) -> None:
    """Hedged 10 BTC on inverse contracts, plus 0.1 BTC of drift (funding-made, say). The band is 1 % of |T|,
    and T in coins shrinks as the price rises: at 66,000 the 0.1 is beyond the band, at 65,000 inside it.
    The price swings between the two every 5 minutes for an hour. An order placed at 66,000 must not be
    cancelled unfilled at 65,000 (nothing would be re-posted) only to be placed again at 66,000."""
    path = {"kind": "steps", "steps": [[0, 65000], [300, 66000]], "repeat": True}  # 5 minutes each, repeated
    assets = {"BTC": {"price": Decimal(65000), "path": path}, "ETH": {"price": 3000}, "SOL": {"price": 150}}
    c = await clocked({"assets": assets}, limits=LIMITS,
                      execution={"order_timeout": 90})
    eng = c.h.emu.engine
    # start from a settled hedge at 65,000 (anonymous takers fill it), then nothing passive fills any more
    for _ in range(60):
        res = await c.h.keeper.cycle()
        if not await c.h.store.unsettled_orders() and all(d.action == "hold" for d in res.decisions):
            break
        c.step(1)  # anonymous takers hit our order; the path stays at 65,000 for its first 300 s
    else:
        raise AssertionError("the opening hedge did not settle")
    eng.taker_flow_usd_per_s = Decimal(0)
    # D = balance − N/P0 does not move with the price; the band (1 % of |T| = 1 % of E) does: 0.101 BTC at
    # 65,000, 0.0995 at 66,000. Put D between the two.
    d0 = res.decisions[0].plan.drift
    eng.credit("demo-key", "BTC", (Decimal("0.1003") - d0).quantize(Decimal("0.00000001")))
    placed = len(c.ours())

    cancelled_inside: list[str] = []
    seen: dict[str, str] = {}
    for _ in range(60):  # an hour in minute steps
        c.step(60)
        res = await c.h.keeper.cycle()
        inside = all(abs(d.plan.hedge - d.plan.target) <= d.plan.band for d in res.decisions)
        for o in c.ours():
            if o["status"] == "Cancelled" and seen.get(o["client_order_id"]) != "Cancelled" \
                    and Decimal(str(o["filled"])) == 0 and inside:
                cancelled_inside.append(o["client_order_id"])
            seen[o["client_order_id"]] = o["status"]
    assert not eng.funding_events, "funding settled: the path is not price-only (see funding_free_start)"
    new = c.ours()[placed:]
    assert new, "the drift beyond the band at 66,000 was never traded"
    assert cancelled_inside == [], (cancelled_inside, new)
    # the touch at 66,000 is the same each time: the one order rests (and keeps its place in the queue)
    assert len(new) == 1, new


async def test_stop_with_a_create_in_flight_leaves_no_order_on_the_book(harness_factory: Any) -> None:
    """The create is held at the exchange past the client's timeout (the reply is lost, the order is made later).
    The keeper is told to stop meanwhile: its shutdown must find the order by client id and cancel it."""
    import asyncio

    h = await harness_factory(hedge=[{"asset": "BTC", "venue": "sim", "instrument": BTC}])
    # latency past the client timeout (2 s): the request is done at the exchange even though the client left
    h.emu.faults.add({"endpoint": "/v5/order/create", "kind": "latency", "latency_ms": 3500, "count": 1})
    stop = asyncio.Event()
    task = asyncio.create_task(h.keeper.run(stop))
    for _ in range(400):  # wait (generously) until the create is out and unanswered
        if any(r.status == "sent" for r in await h.store.unsettled_orders()):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("no create went out")
    stop.set()
    await asyncio.wait_for(task, 120)
    assert h.emu.faults.describe()[0]["fired"] == 1
    ours: list[dict[str, Any]] = []
    for _ in range(600):  # the held request reaches the matching engine 3.5 s after it was sent
        ours = [o for o in h.emu.engine.orders_list() if o["client_order_id"].startswith("t1_")]
        if ours:
            break
        await asyncio.sleep(0.05)
    assert ours, "the held create never reached the matching engine"
    assert all(o["status"] not in ("New", "PartiallyFilled") for o in ours), ours
    assert not await h.store.unsettled_orders()
