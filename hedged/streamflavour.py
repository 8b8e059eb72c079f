"""What differs per exchange in hedged/stream.py's StreamedVenue: one `Flavour` row per ccxt exchange id.

Everything else is ccxt.pro's unified API. Bybit v5 streams full tickers and wallet coin lists; Binance COIN-M
streams touch and mark apart, lists only changed coins (`ACCOUNT_UPDATE`), never pushes positions on a price
move, and keeps user data behind a listen key that must be kept alive (docs/streaming.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


def _d(v: Any) -> Decimal:
    return Decimal(str(v)) if v is not None else Decimal(0)


Watch = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class Flavour:
    # ticker watch loops of one group of symbols: name suffix → watch (each its own connection)
    tickers: Callable[[Any, list[str]], dict[str, Watch]]
    # name suffix → the ccxt.pro attribute caching that loop's latest ticker per symbol
    ticker_caches: Mapping[str, str]
    # the view's next balance from a watch_balance result and the current view (None: not a wallet message)
    balance: Callable[[Any, Any, dict[str, Any]], dict[str, Any] | None]
    # a streamed ticker merged into what the view holds for its symbol
    ticker: Callable[[dict[str, Any], dict[str, Any] | None], dict[str, Any]]
    # a streamed position merged into what the view holds for its symbol
    position: Callable[[dict[str, Any], dict[str, Any] | None], dict[str, Any]]
    # positions carry no mark and are not pushed on price moves: price them at the streamed mark
    reprice: bool = False
    # user data behind a listen key: keep it alive (REST), and forget it when the private stream fails
    keepalive: Callable[[Any], Awaitable[Any]] | None = None
    forget: Callable[[Any], None] | None = None


def _bybit_balance(exchange: Any, got: Any, view: dict[str, Any]) -> dict[str, Any] | None:
    info = got.get("info") if isinstance(got, Mapping) else None
    if not isinstance(info, list):
        return None
    return dict(exchange.parse_balance({"result": {"list": info}}))  # the REST parser: total = walletBalance


def _binance_balance(exchange: Any, got: Any, view: dict[str, Any]) -> dict[str, Any] | None:
    """ACCOUNT_UPDATE lists the coins that changed with their wallet balance (`wb`, what REST's
    walletBalance is): merged into the REST-shaped view."""
    info = got.get("info") if isinstance(got, Mapping) else None
    data = info.get("a") if isinstance(info, Mapping) and info.get("e") == "ACCOUNT_UPDATE" else None
    rows = data.get("B") if isinstance(data, Mapping) else None
    if not isinstance(rows, list):
        return None
    out = dict(view)
    total = dict(out.get("total") or {})
    for r in rows:
        if isinstance(r, Mapping) and r.get("a") and r.get("wb") not in (None, ""):
            coin = exchange.safe_currency_code(r["a"])
            total[coin] = float(r["wb"])  # as wallet_totals converts walletBalance
            out[coin] = {**(out.get(coin) or {}), "total": total[coin]}
    out["total"] = total
    return out


_BOOK = ("symbol", "bid", "ask", "bidVolume", "askVolume")


def _binance_ticker(t: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """Binance contracts stream the touch (bookTicker) and the mark (markPriceUpdate: mark, index,
    funding rate and time) apart; REST merges book ticker and premium index the same way (venue.py)."""
    out = dict(old or {})
    raw = t.get("info")
    info: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    if info.get("e") == "markPriceUpdate":
        out.update({"symbol": t.get("symbol"), "markPrice": t.get("markPrice"), "indexPrice": t.get("indexPrice"),
                    "fundingRate": _float(info.get("r")), "fundingTimestamp": info.get("T")})
    else:
        out.update({k: t.get(k) for k in _BOOK})
    return out


def _binance_position(p: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """ACCOUNT_UPDATE has size, side, entry and uPnL only: the liquidation price stays the REST one while the
    size is unchanged (unknown until the next resync once it changes)."""
    out = {**(old or {}), **{k: v for k, v in p.items() if v is not None}}
    if old is None or _d(old.get("contracts")) != _d(p.get("contracts")) or old.get("side") != p.get("side"):
        out["liquidationPrice"] = None
    return out


def _forget_listen_key(pro: Any) -> None:
    """ccxt re-authenticates (POST listenKey) only 20 min after the last time: make it do so now."""
    for kind in ("inverse", "linear"):
        opts = pro.options.get(kind)
        if isinstance(opts, dict):
            pro.options[kind] = {**opts, "listenKey": None, "lastAuthenticatedTime": 0}


def _float(v: Any) -> float | None:
    try:
        return float(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return None


FLAVOURS: dict[str, Flavour] = {
    "bybit": Flavour(tickers=lambda pro, g: {"": lambda: pro.watch_tickers(g)}, ticker_caches={"": "tickers"},
                     balance=_bybit_balance, ticker=lambda t, old: t, position=lambda p, old: p),
    "binancecoinm": Flavour(
        tickers=lambda pro, g: {".book": lambda: pro.watch_bids_asks(g), ".mark": lambda: pro.watch_mark_prices(g)},
        ticker_caches={".book": "bidsasks", ".mark": "tickers"},
        balance=_binance_balance, ticker=_binance_ticker, position=_binance_position, reprice=True,
        keepalive=lambda pro: pro.dapiPrivatePutListenKey(), forget=_forget_listen_key),
}
