"""`[venues.X] stream`: unset streams where supported (Bybit, Binance COIN-M) and polls elsewhere; explicit
false polls; explicit true where unsupported is a one-line config error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from hedged.config import ConfigError
from hedged.service import make_venues
from hedged.stream import StreamedVenue
from hedged.venue import CcxtVenue, streams_on
from tests.keeper.conftest import keeper_config

URL = "http://127.0.0.1:9"  # nothing is connected: make_venues builds clients only


def venues(tmp_path: Path, exchange: str, **venue: Any) -> dict[str, CcxtVenue]:
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = "demo-key", "demo-secret"
    cfg = keeper_config(URL, tmp_path / "k.db", venues={"sim": {
        "exchange": exchange, "url": URL, "api_key_env": "SIM_KEY", "secret_env": "SIM_SECRET", **venue}},
        hedge=[{"asset": "BTC", "venue": "sim", "instrument": "BTC/USD:BTC"}])
    return make_venues(cfg)


@pytest.mark.parametrize(("exchange", "venue", "streamed"), [
    ("bybit", {}, True),  # unset: the default, where ccxt.pro has it and we read its messages
    ("bybit", {"stream": False}, False),  # explicit false: polling
    ("bybit", {"stream": True}, True),
    ("binancecoinm", {}, True),
    ("binance", {}, False),  # the spot account: ccxt.pro has it, but its user data is not read: polled
    ("binancecoinm", {"stream": True}, True),
    ("binancecoinm", {"stream": False}, False),
])
async def test_the_stream_default(tmp_path: Path, exchange: str, venue: dict[str, Any], streamed: bool) -> None:
    made = venues(tmp_path, exchange, **venue)
    try:
        assert isinstance(made["sim"], StreamedVenue) is streamed
        assert streams_on(made["sim"].config) is streamed
    finally:
        for v in made.values():
            await v.close()


def test_stream_true_where_unsupported_is_a_one_line_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        venues(tmp_path, "binance", stream=True)  # the spot account: its user data is not streamed
    assert err.value.problems == ["venues.sim.stream: streaming is supported for bybit, binancecoinm only, not "
                                  "'binance'; "
                                  "set stream = false or leave it unset"]
