"""Our responses, field by field, against ccxt's recorded real Bybit v5 responses (fixtures/).

Every recorded key must be present with a compatible JSON type (the recorder stringified numbers, so a
number and a numeric string are compatible; booleans, objects and lists must match), and ccxt must parse
ours into the same non-empty unified fields it parses from the recorded one.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from decimal import Decimal
from pathlib import Path
from typing import Any

from hedged.sim import Emulator

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "bybit_recorded.json").read_text())


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float, str)):
        return "scalar"
    return type(v).__name__


def assert_same_shape(recorded: dict[str, Any], ours: dict[str, Any]) -> None:
    missing = sorted(set(recorded) - set(ours))
    assert not missing, f"fields Bybit sends that we do not: {missing}"
    for key, value in recorded.items():
        assert _kind(ours[key]) == _kind(value), f"{key}: {ours[key]!r} vs recorded {value!r}"


def assert_parses_alike(recorded: dict[str, Any], ours: dict[str, Any], skip: Collection[str] = frozenset()) -> None:
    for key, value in recorded.items():
        if key in ("info", *skip) or value in (None, [], {}):
            continue
        assert ours.get(key) not in (None,), f"ccxt parsed {key} from the real response but not from ours"


async def _fill_linear(client: Any, emu: Emulator) -> dict[str, Any]:
    await client.create_order("BTC/USDT:USDT", "limit", "buy", 1, 64000, {"clientOrderId": "open-1"})
    await client.create_order("BTC/USDT:USDT", "limit", "buy", 0.5, 65500)
    emu.engine.set_price(Decimal(65100), asset="BTC")
    raw = await client.privateGetV5OrderRealtime({"category": "linear", "symbol": "BTCUSDT"})
    return dict(raw["result"]["list"][0])


async def test_ticker_shape(client: Any) -> None:
    raw = await client.publicGetV5MarketTickers({"category": "linear", "symbol": "BTCUSDT"})
    ours = raw["result"]["list"][0]
    assert raw["retCode"] == 0 and isinstance(raw["time"], int)
    assert_same_shape(FIXTURES["ticker_linear"], ours)
    market = client.market("BTC/USDT:USDT")
    assert_parses_alike(client.parse_ticker(FIXTURES["ticker_linear"], market), client.parse_ticker(ours, market),
                        skip={"timestamp", "datetime", "vwap"})  # vwap needs traded volume


async def test_order_position_execution_wallet_shapes(client: Any, emu: Emulator) -> None:
    order = await _fill_linear(client, emu)
    assert_same_shape(FIXTURES["order_linear_open"], order)
    market = client.market("BTC/USDT:USDT")
    assert_parses_alike(client.parse_order(FIXTURES["order_linear_open"], market), client.parse_order(order, market),
                        skip={"clientOrderId"})

    raw = await client.privateGetV5PositionList({"category": "linear", "symbol": "BTCUSDT"})
    pos = raw["result"]["list"][0]
    assert_same_shape(FIXTURES["position_linear"], pos)
    assert_parses_alike(client.parse_position(FIXTURES["position_linear"]), client.parse_position(pos))

    raw = await client.privateGetV5ExecutionList({"category": "linear", "symbol": "BTCUSDT"})
    ex = raw["result"]["list"][0]
    assert_same_shape(FIXTURES["execution_linear"], ex)
    assert_parses_alike(client.parse_trade(FIXTURES["execution_linear"]), client.parse_trade(ex),
                        skip={"type"})

    raw = await client.privateGetV5AccountWalletBalance({"accountType": "UNIFIED"})
    wallet = raw["result"]["list"][0]
    recorded = FIXTURES["wallet_unified"]
    assert_same_shape({k: v for k, v in recorded.items() if k != "coin"}, wallet)
    btc = next(c for c in wallet["coin"] if c["coin"] == "BTC")
    assert_same_shape(recorded["coin"][0], btc)
