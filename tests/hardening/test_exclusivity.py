"""Two keepers on one account (issue 17, item 3): refused by the account lock even with different SQLite
files, and caught from the exchange itself when they share neither machine nor database."""

from __future__ import annotations

import asyncio
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hedged.audit.store import EventKind
from hedged.model import TradingState
from hedged.sim.server import Emulator

HEDGE = '[[hedge]]\nasset = "BTC"\nvenue = "sim"\ninstrument = "BTC/USD:BTC"\n'


def config_text(url: str, db: str) -> str:
    return (f'[keeper]\nname = "twin"\ninterval = 0.3\n[venues.sim]\nexchange = "bybit"\nurl = "{url}"\n'
            f'api_key_env = "SIM_KEY"\nsecret_env = "SIM_SECRET"\ntimeout = 2\n{HEDGE}'
            f'[audit]\nurl = "sqlite:///{db}"\n')


@pytest.mark.timeout(120)
async def test_a_second_keeper_with_another_sqlite_file_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cfg_a, cfg_b = tmp_path / "a" / "hedged.toml", tmp_path / "b" / "other.toml"
    cfg_a.write_text(config_text(emulator.url, "a.db"))
    cfg_b.write_text(config_text(emulator.url, str(tmp_path / "b" / "elsewhere.db")))
    env = {**os.environ, "SIM_KEY": "demo-key", "SIM_SECRET": "demo-secret"}
    first = await asyncio.create_subprocess_exec(sys.executable, "-m", "hedged", "run", "--config", str(cfg_a),
                                                 env=env, stdout=asyncio.subprocess.DEVNULL,
                                                 stderr=asyncio.subprocess.PIPE)
    try:
        assert first.stderr is not None
        while b"audit.account_locked" not in (line := await asyncio.wait_for(first.stderr.readline(), 60)):
            assert line, "the first keeper exited before taking its lock"
        second = await asyncio.create_subprocess_exec(sys.executable, "-m", "hedged", "run", "--config", str(cfg_b),
                                                      env=env, stdout=asyncio.subprocess.PIPE,
                                                      stderr=asyncio.subprocess.PIPE)
        _out, err = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 3, err.decode()
        errors = [ln for ln in err.decode().splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "another keeper already trades bybit key" in errors[0], err.decode()
        assert "Traceback" not in err.decode()
    finally:
        first.terminate()
        await asyncio.wait_for(first.wait(), 60)


async def test_a_foreign_order_with_our_prefix_halts_with_a_critical_alert(harness_factory: Any,
                                                                           emulator: Emulator) -> None:
    eng = emulator.engine
    # another keeper named t1 (the harness's name), with its own store, left this order resting
    eng.place_order("demo-key", eng.instrument("BTC/USD:BTC"), "Sell", "Limit", Decimal(1000), Decimal(90000),
                    client_id="t1_elsewhere01-0")
    eng.credit("demo-key", "BTC", Decimal(1))  # and a reason for us to trade
    h = await harness_factory()  # start() reconciles
    before = {o["client_order_id"] for o in eng.orders_list()}
    for _ in range(3):
        result = await h.keeper.cycle()
        assert result.state is TradingState.HALTED and result.sent == 0
    assert {o["client_order_id"] for o in eng.orders_list()} == before  # no order of ours, none touched
    assert await h.store.get_order("t1_elsewhere01-0") is None  # never adopted
    alerts = [e.payload for e in await h.store.events_after(0, 1000, kinds=(EventKind.ALERT,))]
    critical = [a for a in alerts if isinstance(a, dict) and a.get("code") == "foreign_keeper"]
    assert critical and critical[0]["level"] == "critical" and "t1_elsewhere01-0" in critical[0]["message"]
    assert await h.store.requested_state() is TradingState.HALTED  # durable: a restart stays halted


def test_foreign_is_pure_and_ignores_other_prefixes_and_known_ids() -> None:
    from hedged.foreign import foreign

    orders = ["t1_a", "t10_b", "t1-b_c", "manual", ""]
    got = foreign("t1_", orders, ["t1_c", "t1_a", "x"], known={"t1_c"})
    assert got.orders == ("t1_a",) and got.trades == ("t1_a",) and bool(got)
    assert not foreign("t1_", orders, [], known={"t1_a"})
