"""Left alone on a VPS: an outage pauses and resumes by itself, a bad key stays halted, a lost lock stops orders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hedged.model import TradingState
from hedged.stream import StreamedVenue

from .test_cycle import exchange_orders, position, settle


async def alerts(h: Any, code: str) -> list[dict[str, Any]]:
    return [e.payload for e in await h.store.tail(500) if e.kind == "alert" and e.payload.get("code") == code]


async def states(h: Any) -> list[tuple[str, str]]:
    return [(e.payload["state"], e.payload["reason"]) for e in await h.store.tail(500) if e.kind == "state"
            and e.payload["state"] != "reconciled"]


async def test_outage_trips_the_transient_breaker_which_resumes_by_itself(harness_factory: Any) -> None:
    h = await harness_factory(keeper={"max_failures": 3, "resume_after": 3})
    await settle(h)
    sent_before = len(exchange_orders(h.emu))
    await h.emu.stop()
    for _ in range(6):
        res = await h.keeper.step()
        assert res.error and res.sent == 0
    assert h.keeper.state is TradingState.PAUSED and h.keeper.breaker.tripped == "transient"
    (state, reason), = await states(h)
    assert state == "PAUSED" and reason.startswith("breaker (transient): 3 consecutive failed cycles: cannot reach")
    fired = await alerts(h, "circuit_breaker")
    assert [a["data"]["status"] for a in fired] == ["firing"] and fired[0]["level"] == "critical"
    assert await h.store.requested_state() is TradingState.RUNNING  # no HALTED command: no human needed

    await h.emu.start()  # the exchange is back, same port, same book
    h.emu.engine.credit("demo-key", "BTC", Decimal(2))  # and there is drift to hedge once we resume
    for i in range(3):
        res = await h.keeper.step()
        assert not res.error and res.sent == 0, (i, res.error)  # paused while healthy cycles are counted
    # mypy keeps the PAUSED narrowing from before the awaited steps (calls do not invalidate it)
    assert h.keeper.state is TradingState.RUNNING and h.keeper.breaker.tripped is None  # type: ignore[comparison-overlap]
    assert [s for s, _ in await states(h)] == ["PAUSED", "RUNNING"]
    assert [a["data"]["status"] for a in await alerts(h, "circuit_breaker")] == ["firing", "resolved"]
    assert len(exchange_orders(h.emu)) == sent_before  # nothing was sent while down or paused
    await settle(h)
    assert abs(position(h.emu, "BTC/USD:BTC") + 780_000) <= Decimal("0.01") * 780_000


async def test_authentication_failure_stays_halted_until_a_human_resumes(harness_factory: Any) -> None:
    h = await harness_factory(keeper={"max_failures": 3, "resume_after": 2})
    await settle(h)
    h.emu.engine.accounts["demo-key"].secret = "rotated-by-someone"  # our API secret is now wrong
    for v in h.venues.values():
        if isinstance(v, StreamedVenue):  # an open stream outlives the rotation: the next REST read tells
            v.gap = True  # (the resync, at most `resync` seconds away): here, this cycle's
    res = await h.keeper.step()
    assert "refused our API key" in res.error and res.sent == 0
    assert h.keeper.state is TradingState.HALTED and h.keeper.breaker.tripped == "permanent"
    assert await h.store.requested_state() is TradingState.HALTED
    cmd = await h.store.last_event("command")
    assert cmd is not None and cmd.payload["via"] == "circuit-breaker"
    (state, reason), = await states(h)
    assert state == "HALTED" and reason.startswith("breaker (permanent): 1 consecutive failed cycles: ")
    h.emu.engine.accounts["demo-key"].secret = "demo-secret"  # fixed, but only a human may resume
    for _ in range(5):
        res = await h.keeper.step()
        assert not res.error and res.sent == 0 and res.state is TradingState.HALTED
    await h.store.command(TradingState.RUNNING, via="test", reason="key fixed")
    res = await h.keeper.step()
    assert res.state is TradingState.RUNNING and h.keeper.breaker.tripped is None


async def test_an_unreadable_store_fails_the_cycle_not_the_keeper(harness_factory: Any) -> None:
    """A read that fails (here: the orders table renamed under the keeper) is a failed cycle with one line —
    nothing sent, the breaker counts it — never an exception out of the run loop."""
    import sqlite3

    h = await harness_factory(keeper={"max_failures": 2, "resume_after": 1})
    await settle(h)
    db = h.config.audit_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as c:
        c.execute("ALTER TABLE orders RENAME TO orders_away")
    h.emu.engine.credit("demo-key", "BTC", Decimal(2))
    n = len(exchange_orders(h.emu))
    for _ in range(2):
        res = await h.keeper.step()
        assert res.error.startswith("audit store cannot be read: OperationalError") and res.sent == 0, res.error
    assert h.keeper.breaker.tripped == "transient" and len(exchange_orders(h.emu)) == n
    with sqlite3.connect(db) as c:
        c.execute("ALTER TABLE orders_away RENAME TO orders")
    res = await h.keeper.step()
    assert not res.error and h.keeper.state is TradingState.RUNNING
    await settle(h)
    assert abs(position(h.emu, "BTC/USD:BTC") + 780_000) <= Decimal("0.01") * 780_000
