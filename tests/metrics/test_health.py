"""/health: 200 while cycles complete, 503 (with the reason) once the exchange is gone long enough, 200 again."""

from __future__ import annotations

from typing import Any

from hedged.metrics import health_verdict

from .conftest import Running


async def test_health_follows_the_exchange_down_and_back(running: Any) -> None:
    # a breaker that never trips here: the point is the exchange going away and coming back
    r: Running = await running(keeper={"interval": 0.2, "max_failures": 100_000})

    async def status(want: int) -> dict[str, Any] | None:
        code, body = await r.health()
        return body if code == want else None

    body = await r.until("healthy", lambda: status(200))
    assert body["state"] == "RUNNING" and 0 <= body["last_cycle_age_s"] <= 0.6 + 60
    async with r.session.get(f"{r.url}/healthz") as resp:
        assert resp.status == 200

    await r.emu.stop()  # the exchange is gone: connections refused

    async def down() -> dict[str, Any] | None:
        # (on a loaded machine a slow cycle alone can pass 3 x 0.2 s: wait for the failure to be the reason)
        body = await status(503)
        return body if body is not None and "last error" in body["reason"] else None

    body = await r.until("unhealthy because cycles fail", down)
    assert "no cycle completed for" in body["reason"], body
    assert "cannot reach" in body["reason"] and body["last_cycle_age_s"] > 0.6, body
    errors = await r.scrape()
    assert any(s.value > 0 and s.labels["class"] == "Transient" for s in errors["hedged_venue_errors"].samples), \
        "a refused connection is counted as Transient"
    assert (await r.value("hedged_cycle_failures", "_total") or 0) >= 1

    await r.emu.start()  # back on the same port
    body = await r.until("healthy again", lambda: status(200), bound=120)
    assert body["state"] == "RUNNING"


def test_verdict_rules() -> None:
    ok: dict[str, Any] = dict(state="RUNNING", state_reason="", age=1.0, interval=10.0, fault=False, last_error="")
    assert health_verdict(**ok).status == 200
    assert health_verdict(**{**ok, "age": 31.0}).status == 503
    assert health_verdict(**{**ok, "age": None}).status == 503
    # an operator's halt or a kill file is not a fault: the keeper does what it was told
    assert health_verdict(**{**ok, "state": "HALTED", "state_reason": "command halt by cli: test"}).status == 200
    halted = health_verdict(**{**ok, "state": "HALTED", "state_reason": "breaker (transient): 5 failed cycles",
                               "fault": True})
    assert halted.status == 503 and "breaker" in halted.reason
    assert halted.body() == {"state": "HALTED", "last_cycle_age_s": 1.0,
                             "reason": "halted by a fault: breaker (transient): 5 failed cycles"}
    # a fault's halt is named first, also while cycles fail (a refused key fails every cycle after the trip)
    failing = health_verdict(**{**ok, "state": "HALTED", "state_reason": "breaker (permanent): refused key",
                                "fault": True, "age": 41.0, "last_error": "AuthFailed: refused"})
    assert failing.status == 503
    assert failing.reason == ("halted by a fault: breaker (permanent): refused key; no cycle completed for 41s "
                              "(limit 30s = 3 x interval); last error: AuthFailed: refused")
    assert health_verdict(**{**ok, "state": "HALTED", "fault": True, "age": None}).reason == \
        "halted by a fault: unknown; no cycle completed yet"


async def test_halt_by_kill_file_is_healthy_and_says_why(running: Any, tmp_path: Any) -> None:
    kill = tmp_path / "STOP"
    r: Running = await running(keeper={"interval": 0.2, "kill_file": str(kill)})
    await r.until("healthy", lambda: _code(r, 200))
    kill.write_text("")
    body = await r.until("halted", lambda: _halted(r))
    assert body["reason"] == f"kill file {kill} exists", body
    assert await r.value("hedged_trading_state", state="HALTED") == 1
    assert await r.value("hedged_trading_state", state="RUNNING") == 0


async def _code(r: Running, want: int) -> bool:
    return (await r.health())[0] == want


async def _halted(r: Running) -> dict[str, Any] | None:
    code, body = await r.health()
    return body if code == 200 and body["state"] == "HALTED" else None


def test_label_vocabularies_are_closed() -> None:
    from ccxt.base import errors as cx

    from hedged.errors import classify
    from hedged.metrics import error_class, order_reason

    assert error_class(classify(cx.RequestTimeout("t"), venue="v", call="fetch_balance")) == "Transient"
    assert error_class(classify(cx.RateLimitExceeded("429"), venue="v", call="fetch_balance")) == "RateLimited"
    assert error_class(classify(cx.AuthenticationError("key"), venue="v", call="fetch_balance")) == "AuthFailed"
    assert error_class(ValueError("a bug")) == "other"
    assert order_reason("cancelled", "EC_PostOnlyWillTakeLiquidity") == "post_only"
    assert order_reason("cancelled", "order_timeout: reprice at the new touch") == "requested"
    assert order_reason("cancelled", "CancelByUser") == "requested"
    assert order_reason("cancelled", "something new 12345") == "other"
    assert order_reason("rejected", "InsufficientFunds: not enough margin") == "InsufficientFunds"
    assert order_reason("rejected", "order 8f3a9 refused by whim") == "other"


async def test_transient_breaker_pause_is_unhealthy_while_cycles_fail_and_heals_by_itself(running: Any) -> None:
    # the network going away trips the TRANSIENT breaker: it pauses (never halts) and resumes by itself
    r: Running = await running(keeper={"interval": 0.2, "max_failures": 3, "resume_after": 2})
    await r.until("healthy", lambda: _code(r, 200))
    await r.emu.stop()  # connections refused: transient errors

    async def down() -> dict[str, Any] | None:
        code, body = await r.health()
        return body if code == 503 and "last error" in body["reason"] else None

    body = await r.until("503 while cycles fail", down)
    assert "no cycle completed for" in body["reason"] and "cannot reach" in body["reason"], body
    await r.until("breaker paused trading", lambda: _is_one(r, "PAUSED"))
    assert await r.value("hedged_trading_state", state="HALTED") == 0  # a transient trip never halts
    await r.emu.start()  # back on the same port; no operator does anything
    body = await r.until("healthy and running again by itself", lambda: _ok_running(r), bound=120)
    assert body["last_cycle_age_s"] < 60, body


async def test_permanent_breaker_halt_is_a_fault_until_resumed(running: Any) -> None:
    from hedged.model import TradingState

    from .test_metrics import command

    r: Running = await running(keeper={"interval": 0.2, "max_failures": 3, "resume_after": 2})
    await r.until("healthy", lambda: _code(r, 200))
    r.emu.engine.accounts["demo-key"].secret = "rotated-by-someone"  # the exchange now refuses our API key
    await r.until("breaker halted trading", lambda: _is_one(r, "HALTED"))
    r.emu.engine.accounts["demo-key"].secret = "demo-secret"  # fixed, but only a human may resume

    async def faulted() -> dict[str, Any] | None:  # cycles complete again, but the breaker's halt stands
        code, body = await r.health()
        return body if code == 503 and body["reason"].startswith("halted by a fault") else None

    body = await r.until("503 while halted by the breaker", faulted)
    assert body["state"] == "HALTED" and body["last_cycle_age_s"] < 60, body
    assert "breaker (permanent)" in body["reason"], body
    await command(r, TradingState.RUNNING)  # the operator resumes
    body = await r.until("healthy after resume", lambda: _ok_running(r))
    assert body["reason"] == "ok"


async def _is_one(r: Running, state: str) -> bool:
    return await r.value("hedged_trading_state", state=state) == 1


async def _ok_running(r: Running) -> dict[str, Any] | None:
    code, body = await r.health()
    return body if code == 200 and body["state"] == "RUNNING" else None
