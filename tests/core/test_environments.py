"""Which base URLs ccxt ends up with for each profile, live / sandbox (testnet) / demo trading, so a user
knows where their keys must come from. No network: the clients are built and their URLs inspected."""

from __future__ import annotations

from typing import Any

import pytest

from hedged.config import ConfigError, VenueConfig, parse_config
from hedged.venue import build_exchange

# (exchange, URL key) → base URL per environment; None = refused with a clear error
EXPECTED: dict[tuple[str, str], dict[str, str | None]] = {
    ("bybit", "private"): {"live": "https://api.bybit.com", "sandbox": "https://api-testnet.bybit.com",
                           "demo": "https://api-demo.bybit.com"},
    ("binance", "private"): {"live": "https://api.binance.com/api/v3",
                             "sandbox": "https://testnet.binance.vision/api/v3",
                             "demo": "https://demo-api.binance.com/api/v3"},
    ("binancecoinm", "dapiPrivate"): {"live": "https://dapi.binance.com/dapi/v1", "sandbox": None,
                                      "demo": "https://demo-dapi.binance.com/dapi/v1"},
    ("okx", "rest"): {"live": "https://www.okx.com", "sandbox": "https://www.okx.com", "demo": None},
    ("deribit", "rest"): {"live": "https://www.deribit.com", "sandbox": "https://test.deribit.com", "demo": None},
}


def base_url(ex: Any, key: str) -> str:
    url = ex.urls["api"][key] if isinstance(ex.urls["api"], dict) else ex.urls["api"]
    return str(ex.implode_hostname(url))


@pytest.mark.parametrize("env", ["live", "sandbox", "demo"])
@pytest.mark.parametrize(("exchange", "key"), list(EXPECTED))
async def test_base_urls_per_environment(exchange: str, key: str, env: str) -> None:
    venue = VenueConfig(exchange=exchange, sandbox=env == "sandbox", demo=env == "demo")
    want = EXPECTED[(exchange, key)][env]
    if want is None:
        with pytest.raises(ValueError, match=f"^{env}: "):
            build_exchange(venue, {})
        return
    ex = build_exchange(venue, {})
    try:
        assert base_url(ex, key) == want
        if exchange == "okx" and env == "sandbox":  # OKX's demo trading is a header on the live host
            assert ex.headers.get("x-simulated-trading") == "1"
    finally:
        await ex.close()


def test_sandbox_and_demo_together_are_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"venues": {"b": {"exchange": "bybit", "sandbox": True, "demo": True}},
                      "hedge": [{"asset": "BTC", "venue": "b", "instrument": "BTC/USD:BTC"}]})
    assert err.value.problems == ["venues.b: sandbox and demo: choose one (sandbox = the exchange's testnet, demo = "
                                  "its demo trading; their keys differ)"]


@pytest.mark.parametrize(("name", "where"), [
    ("bybit-testnet.toml", {"bybit": ("private", "https://api-testnet.bybit.com")}),
    ("binance-demo.toml", {"spot": ("private", "https://demo-api.binance.com/api/v3"),
                           "coinm": ("dapiPrivate", "https://demo-dapi.binance.com/dapi/v1")}),
])
async def test_deploy_examples_for_paper_trading(name: str, where: dict[str, tuple[str, str]]) -> None:
    from pathlib import Path

    from hedged.config import load_config

    cfg = load_config(Path(__file__).parents[2] / "deploy" / "examples" / name)
    assert all(v.leverage == 1 and v.margin_mode == "isolated" for v in cfg.venues.values() if v.leverage)
    for venue, (key, url) in where.items():
        ex = build_exchange(cfg.venues[venue], {})
        try:
            assert base_url(ex, key) == url
        finally:
            await ex.close()
