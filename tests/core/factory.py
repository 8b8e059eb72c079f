"""Builders for snapshot v1 dicts shaped like ccxt's output, and configs, for the core's tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hedged.config import Config, parse_config

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
MS = int(T0.timestamp() * 1000)


def inverse_market(base: str, size: float = 1.0, tick: float = 0.5, lot: float = 1.0) -> dict[str, Any]:
    return {"symbol": f"{base}/USD:{base}", "base": base, "quote": "USD", "settle": base, "type": "swap",
            "spot": False, "swap": True, "contract": True, "linear": False, "inverse": True,
            "contractSize": size, "precision": {"amount": lot, "price": tick},
            "limits": {"amount": {"min": lot, "max": None}}}


def linear_market(base: str, size: float = 0.001, tick: float = 0.1, lot: float = 1.0,
                  quote: str = "USDT") -> dict[str, Any]:
    return {"symbol": f"{base}/{quote}:{quote}", "base": base, "quote": quote, "settle": quote, "type": "swap",
            "spot": False, "swap": True, "contract": True, "linear": True, "inverse": False,
            "contractSize": size, "precision": {"amount": lot, "price": tick},
            "limits": {"amount": {"min": lot, "max": None}}}


def spot_market(base: str, quote: str = "USDT") -> dict[str, Any]:
    return {"symbol": f"{base}/{quote}", "base": base, "quote": quote, "settle": None, "type": "spot",
            "spot": True, "linear": None, "inverse": None, "contractSize": None,
            "precision": {"amount": 0.0001, "price": 0.01}, "limits": {"amount": {"min": 0.0001}}}


def ticker(symbol: str, price: Any, tick: Any = "0.5", ts: int = MS) -> dict[str, Any]:
    p, t = Decimal(str(price)), Decimal(str(tick))
    return {"symbol": symbol, "timestamp": ts, "bid": str(p - t), "ask": str(p), "last": str(p),
            "markPrice": str(p), "indexPrice": str(p)}


def position(symbol: str, contracts: Any, entry: Any, mark: Any, upnl: Any, ts: int = MS) -> dict[str, Any]:
    c = Decimal(str(contracts))
    return {"symbol": symbol, "timestamp": ts, "contracts": str(abs(c)), "side": "short" if c < 0 else "long",
            "entryPrice": str(entry), "markPrice": str(mark), "unrealizedPnl": str(upnl),
            "liquidationPrice": None}


def venue(markets: list[dict[str, Any]], tickers: list[dict[str, Any]], balance: dict[str, Any],
          positions: list[dict[str, Any]] | None = None, orders: list[dict[str, Any]] | None = None,
          ts: int = MS) -> dict[str, Any]:
    return {
        "markets": {m["symbol"]: m for m in markets},
        "tickers": {t["symbol"]: t for t in tickers},
        "balance": {"timestamp": ts, "total": {k: str(v) for k, v in balance.items()}},
        "positions": positions or [],
        "open_orders": orders or [],
    }


def snapshot(venues: dict[str, dict[str, Any]], time: datetime = T0) -> dict[str, Any]:
    return {"version": 1, "time": time.isoformat().replace("+00:00", "Z"), "venues": venues}


def config(*hedges: dict[str, Any], venues: tuple[str, ...] = ("bybit",), **sections: Any) -> Config:
    data: dict[str, Any] = {"venues": {v: {"exchange": "bybit"} for v in venues}, "hedge": list(hedges)}
    data.update(sections)
    return parse_config(data)
