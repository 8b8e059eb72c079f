"""Admin API over HTTP, the `hedged emulator` command, and the emulator's TOML config."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hedged.sim import Emulator, EmulatorConfigError, load_settings

HEDGED = str(Path(sys.executable).with_name("hedged"))


async def call(emu: Emulator, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, f"{emu.url}/_admin/{path}", json=body) as r:
        return r.status, await r.json()


async def test_admin_price_balance_step_funding_orders_state(emu: Emulator, client: Any) -> None:
    assert (await call(emu, "POST", "price", {"asset": "BTC", "price": 71500}))[0] == 200
    assert (await client.fetch_ticker("BTC/USD:BTC"))["last"] == 71500
    assert (await client.fetch_ticker("BTC/USDT"))["last"] == 71500
    assert (await call(emu, "POST", "price", {"symbol": "BTC/USD:BTC", "price": 72000}))[0] == 200
    assert (await client.fetch_ticker("BTC/USD:BTC"))["last"] == 72000
    assert (await client.fetch_ticker("BTC/USD:BTC"))["indexPrice"] == 71500
    status, body = await call(emu, "POST", "balance", {"api_key": "demo-key", "coin": "BTC", "delta": 2})
    assert status == 200 and body["balance"] == "12"
    assert (await client.fetch_balance())["total"]["BTC"] == 12
    await client.create_order("BTC/USD:BTC", "limit", "sell", 72000, 72000, {"clientOrderId": "adm-1"})
    status, body = await call(emu, "POST", "step", {"seconds": 5})
    assert status == 200
    status, body = await call(emu, "GET", "orders")
    (o,) = body["orders"]
    assert (o["client_order_id"], o["symbol"], o["side"], o["qty"], o["price"], o["status"], o["filled"]) == (
        "adm-1", "BTC/USD:BTC", "sell", "72000", "72000", "Filled", "72000")
    status, body = await call(emu, "POST", "funding", {"symbol": "BTC/USD:BTC", "rate": 0.01})
    assert body["payments"] == 1
    status, state = await call(emu, "GET", "state")
    acct = state["accounts"]["demo-key"]
    assert acct["positions"][0]["size"] == "-72000"
    assert float(acct["wallet"]["BTC"]) == pytest.approx(12 + 0.01 - 0.0002, abs=1e-9)
    assert "secret" not in str(state)


async def test_admin_faults_and_errors(emu: Emulator) -> None:
    status, body = await call(emu, "POST", "faults", {"seed": 3, "rules": [
        {"endpoint": "/v5/order/create", "kind": "drop_reply", "rate": 0.5},
        {"endpoint": "*", "kind": "latency", "latency_ms": 10, "count": 2},
    ]})
    assert status == 200 and len(body["rules"]) == 2
    assert len((await call(emu, "GET", "faults"))[1]["rules"]) == 2
    assert (await call(emu, "POST", "faults", {"clear": True}))[1]["rules"] == []
    status, body = await call(emu, "POST", "faults", {"kind": "explode"})
    assert status == 400 and "kind" in body["error"]
    status, body = await call(emu, "POST", "price", {"asset": "DOGE", "price": 1})
    assert status == 400 and "DOGE" in body["error"]
    status, body = await call(emu, "POST", "price", {"price": 1})
    assert status == 400


async def test_cli_prints_one_line_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        HEDGED, "emulator", "--port", "0", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("listening on http://127.0.0.1:")
        assert line.rstrip().endswith("(bybit)")
        url = line.split()[2]
        async with aiohttp.ClientSession() as s, s.get(f"{url}/v5/market/time") as r:
            assert (await r.json())["retCode"] == 0
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 10)
        assert rc == 0
        assert (await proc.stdout.read()) == b""
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_config_file(tmp_path: Path) -> None:
    f = tmp_path / "emu.toml"
    f.write_text("""
seed = 4
clock = "manual"
[assets.BTC]
price = 60000
path = { kind = "gbm", volatility = 0.5 }
[[instruments]]
symbol = "BTC/USD:BTC"
tick = 0.5
contract_size = 100
[[accounts]]
api_key = "k"
secret = "s"
balances = { BTC = 1 }
""")
    s = load_settings(f)
    assert s.instruments[0].contract_size == 100 and s.assets["BTC"].path.kind == "gbm"


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("""
[assets.BTC]
price = -1
[[instruments]]
symbol = "BTC/USDT"
tick = "x"
bogus = 1
""")
    with pytest.raises(EmulatorConfigError) as err:
        load_settings(f)
    text = "\n".join(err.value.problems)
    assert "assets.BTC.price" in text and "instruments.0.tick" in text and "instruments.0.bogus" in text
