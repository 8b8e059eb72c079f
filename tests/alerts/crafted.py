"""Crafted snapshots for the monitors: one perp account, one BTC hedge, every risk input set by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hedged.alerts.monitors import Observation
from hedged.config import Config, MonitorsConfig
from hedged.decide import decide
from hedged.model import Decision, Snapshot, TradingState
from hedged.snapshot import parse_snapshot
from tests.core.factory import MS, T0, config, inverse_market, linear_market, position, snapshot, ticker, venue

INV = "BTC/USD:BTC"
LIN = "BTC/USDT:USDT"
KEEPER = "main"
MONITORS = MonitorsConfig()  # defaults: funding 30% APR, basis 100 bps, liquidation 30/15 %, leverage 3/5


def cfg(kind: str = "inverse", **sections: Any) -> Config:
    instrument = INV if kind == "inverse" else LIN
    return config({"asset": "BTC", "venue": "bybit", "instrument": instrument}, **sections)


def hedge_contracts(kind: str, coins: Decimal, price: Decimal) -> Decimal:
    """Signed contracts holding `coins` BTC: 1-USD inverse contracts, or 0.001-BTC linear ones."""
    return coins * price if kind == "inverse" else coins / Decimal("0.001")


def raw(
    kind: str = "inverse",
    *,
    price: Any = 50000,
    held: Any = 10,  # BTC in the wallet (plus USDT for a linear account)
    usdt: Any = 0,
    hedge: Any = -10,  # position, in BTC (signed)
    funding: Any = None,
    next_funding: Any = None,
    interval_min: Any = None,
    next_time: Any = None,
    liq: Any = None,
    index: Any = "same",
    upnl: Any = 0,
    ts: int = MS,
    extra_tickers: list[dict[str, Any]] | None = None,
    time: datetime = T0,
) -> dict[str, Any]:
    p = Decimal(str(price))
    market = inverse_market("BTC") if kind == "inverse" else linear_market("BTC", size=0.001)
    if interval_min is not None:
        market["info"] = {"fundingInterval": interval_min}
    symbol = market["symbol"]
    t = ticker(symbol, p, ts=ts)
    if funding is not None:
        t["info"] = {"fundingRate": str(funding)}
    if next_funding is not None:
        t["nextFundingRate"] = str(next_funding)
    if next_time is not None:
        t.setdefault("info", {})["nextFundingTime"] = next_time
    if index != "same":
        t["indexPrice"] = None if index is None else str(index)
    positions = []
    h = Decimal(str(hedge))
    if h != 0:
        pos = position(symbol, hedge_contracts(kind, h, p), p, p, upnl, ts=ts)
        pos["liquidationPrice"] = None if liq is None else str(liq)
        positions.append(pos)
    balance = {"BTC": held} if kind == "inverse" else {"BTC": held, "USDT": usdt}
    return snapshot({"bybit": venue([market], [t, *(extra_tickers or [])], balance, positions, ts=ts)}, time=time)


def decided(raw_snapshot: dict[str, Any], kind: str = "inverse", state: TradingState = TradingState.RUNNING,
            **sections: Any) -> tuple[Snapshot, tuple[Decision, ...]]:
    snap = parse_snapshot(raw_snapshot)
    _, result = decide(cfg(kind, **sections), snap, state=state)
    return snap, result.decisions


def observe(raw_snapshot: dict[str, Any] | None, kind: str = "inverse", *, at: int = 0,
            state: TradingState = TradingState.RUNNING, error: str | None = None, **sections: Any) -> Observation:
    """The observation of cycle `at` (one minute apart), snapshot time and data stamps moved along."""
    time = T0 + timedelta(minutes=at)
    if raw_snapshot is None:
        return Observation(time=time, keeper=KEEPER, state=state, snapshot=None, error=error)
    moved = _at(raw_snapshot, time)
    snap, decisions = decided(moved, kind, state, **sections)
    return Observation(time=time, keeper=KEEPER, state=state, snapshot=snap, decisions=decisions, error=error)


def _at(raw_snapshot: dict[str, Any], time: datetime) -> dict[str, Any]:
    """The same snapshot taken at `time`: every fresh stamp (== MS) moved by the same amount."""
    shift = int((time - T0).total_seconds() * 1000)

    def move(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (v + shift if k == "timestamp" and v == MS else move(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [move(v) for v in node]
        return node

    out = move(raw_snapshot)
    out["time"] = time.isoformat().replace("+00:00", "Z")
    return dict(out)
