"""CcxtVenue: one trading account behind ccxt.async_support — the keeper's only door to an exchange.

Reads are batched (one call per market category, not per instrument) and retried on transient errors
with exponential backoff and jitter; permanent errors surface at once. Every failure leaves this module as
one of the project's own errors (hedged/errors.py), never as a ccxt or network exception. Orders are never retried here:
an ambiguous create is resolved by the executor looking the client id up, never by sending again.
The per-cycle read (`fetch_state`) comes back as ccxt-unified dicts stamped with their fetch time, so the
very same parser serves live cycles, recorded cycles and `hedged plan --snapshot`; the order calls return
typed records (`VenueOrder`, `VenueTrade`), converted once here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import ccxt.async_support as ccxt_async
from ccxt.base import errors as cx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from hedged.config import VenueConfig
from hedged.errors import Rejected, VenueError, classify
from hedged.log import get_logger
from hedged.model import OrderIntent, VenueOrder, VenueTrade
from hedged.snapshot import venue_order, venue_trade

log = get_logger("hedged.venue")
T = TypeVar("T")
# how many requests one order's trades may take (fetch_order_trades): 10 000 trades at bybit's 100 a page
MAX_TRADE_PAGES = 100

@dataclass(frozen=True)
class Profile:
    """What one ccxt exchange needs from us: constructor options and how far reads can be batched."""

    options: dict[str, Any] = field(default_factory=dict)
    bybit_batching: bool = False  # positions/tickers/open orders per category in one call each
    # Binance COIN-M's 24h ticker has no bid/ask and no mark: quotes come from the book ticker and the
    # premium index (mark, index, funding) instead, two requests instead of one.
    book_and_premium: bool = False
    # ccxt's COIN-M balance total is marginBalance (wallet + unrealised PnL), bybit's is the wallet: the
    # core adds inverse uPnL itself (exposure.coin_exposure), so take the wallet from the raw answer.
    wallet_from_info: bool = False
    # Binance's futures testnet is gone (ccxt#27560): sandbox would fail at the first signed call
    no_testnet: bool = False
    # The local exchange speaks this venue's API (`url` override): make_client for bybit, else binance.
    local: str = ""
    # StreamedVenue reads this exchange's ccxt.pro messages (a hedged/streamflavour.py row)
    # and the local exchange serves its WS front: `stream` unset means on (streams_on)
    streams: bool = False
    # One order's own trades (`fetch_order_trades`), asked for by `orderId`, `trades_page` a request, paged
    # by `trades_paging`: "cursor" (bybit's execution list: newest first, nextPageCursor pages back), "time"
    # (binance: the order's most recent trades, without a start time, which spot refuses next to an order
    # id; when that page is full and short, the symbol's trades ascending from the order's start). ""
    # (no order filter known here): one page of the symbol's trades since the order's start.
    trades_page: int = 100
    trades_paging: str = ""


PROFILES: dict[str, Profile] = {
    "bybit": Profile(
        options={
            "enableUnifiedAccount": True,
            "enableUnifiedMargin": False,
            "fetchMarkets": {"types": ["spot", "linear", "inverse"]},
            "defaultType": "swap",
        },
        bybit_batching=True,
        local="bybit",
        streams=True,
        trades_paging="cursor",
    ),
    "binancecoinm": Profile(options={"defaultType": "delivery", "warnOnFetchOpenOrdersWithoutSymbol": False},
                            book_and_premium=True, wallet_from_info=True, no_testnet=True, local="binancecoinm",
                            streams=True, trades_page=1000, trades_paging="time"),
    "binanceusdm": Profile(options={"defaultType": "future", "warnOnFetchOpenOrdersWithoutSymbol": False},
                           no_testnet=True, trades_page=1000, trades_paging="time"),
    # `binance` is the spot account (coins held); COIN-M hedges use binancecoinm, USDT-M binanceusdm
    "binance": Profile(options={"defaultType": "spot", "warnOnFetchOpenOrdersWithoutSymbol": False},
                       local="binance", trades_page=1000, trades_paging="time"),
    "okx": Profile(options={"defaultType": "swap"}),
    "deribit": Profile(options={"defaultType": "swap"}),
}


def _retryable(exc: BaseException) -> bool:
    """Reads are retried on what another try can fix; `classify` decides which those are."""
    return isinstance(exc, Exception) and classify(exc).retryable


def now_ms() -> int:
    return int(time.time() * 1000)


def build_exchange(venue: VenueConfig, credentials: dict[str, str]) -> Any:
    """A ccxt.async_support client for a venue: profile options, sandbox, then the URL override."""
    profile = PROFILES.get(venue.exchange, Profile())
    options = {**profile.options, **venue.options}
    if venue.url:
        local = [n for n, p in PROFILES.items() if p.local]
        if not profile.local:
            raise ValueError(f"url: a REST override is supported for exchange {', '.join(local)} (the local "
                             f"exchange), not {venue.exchange!r}")
        from hedged.sim.client import make_binance_client, make_client

        if profile.local == "bybit":
            return make_client(venue.url, credentials.get("apiKey", ""), credentials.get("secret", ""),
                               options=options, timeout_ms=int(venue.timeout * 1000))
        return make_binance_client(venue.url, credentials.get("apiKey", ""), credentials.get("secret", ""),
                                   exchange_id=profile.local, options=options, timeout_ms=int(venue.timeout * 1000))
    cls = getattr(ccxt_async, venue.exchange, None)
    if cls is None:
        raise ValueError(f"exchange: unknown ccxt exchange id {venue.exchange!r}")
    if venue.sandbox and profile.no_testnet:
        raise ValueError(f"sandbox: {venue.exchange} has no testnet any more (ccxt refuses it); use demo = true "
                         f"for its demo trading")
    ex = cls({**credentials, "options": options, "timeout": int(venue.timeout * 1000), "enableRateLimit": True})
    if venue.sandbox:
        ex.set_sandbox_mode(True)
    if venue.demo:
        try:
            ex.enable_demo_trading(True)
        except (KeyError, cx.NotSupported):  # ccxt has no demo URLs for this exchange
            raise ValueError(f"demo: ccxt has no demo trading for {venue.exchange}; use sandbox = true for "
                             f"its testnet") from None
    return ex


def wallet_totals(balance: dict[str, Any]) -> dict[str, Any]:
    """Binance COIN-M: `total` per coin = walletBalance of the raw account answer (ccxt reports
    marginBalance, which already holds the unrealised PnL the core adds once itself)."""
    info = balance.get("info")
    assets = info.get("assets") if isinstance(info, dict) else None
    if not isinstance(assets, list):
        return balance
    total = dict(balance.get("total") or {})
    for a in assets:
        if isinstance(a, dict) and a.get("asset") in total and a.get("walletBalance") not in (None, ""):
            coin = a["asset"]
            total[coin] = float(a["walletBalance"])
            if isinstance(balance.get(coin), dict):
                balance[coin] = {**balance[coin], "total": total[coin]}
    return {**balance, "total": total}


def streams_on(venue: VenueConfig) -> bool:
    """Does this venue stream? `stream` when set; unset: yes where ccxt.pro has the exchange and our streamed
    view reads its messages (Profile.streams: Bybit and Binance COIN-M), polling elsewhere.
    An explicit `stream = true` elsewhere is refused by `build_pro` with a one-line config error."""
    if venue.stream is not None:
        return venue.stream
    if not PROFILES.get(venue.exchange, Profile()).streams:
        return False
    import ccxt.pro as ccxt_pro

    return getattr(ccxt_pro, venue.exchange, None) is not None


def build_pro(venue: VenueConfig, credentials: dict[str, str]) -> Any:
    """The ccxt.pro twin of `build_exchange`; it pings at half the heartbeat so a silent socket dies in time."""
    import ccxt.pro as ccxt_pro

    profile = PROFILES.get(venue.exchange, Profile())
    options = {**profile.options, **venue.options}
    streaming = {"keepAlive": int(venue.stream_heartbeat * 500)}
    if not profile.streams:
        raise ValueError(f"stream: streaming is supported for {', '.join(n for n, p in PROFILES.items() if p.streams)} "
                         f"only, not {venue.exchange!r}; set stream = false or leave it unset")
    if venue.url:
        from hedged.sim.client import make_binance_client, make_client

        if venue.exchange == "binancecoinm":
            return make_binance_client(venue.url, credentials.get("apiKey", ""), credentials.get("secret", ""),
                                       pro=True, options=options, timeout_ms=int(venue.timeout * 1000),
                                       streaming=streaming)
        return make_client(venue.url, credentials.get("apiKey", ""), credentials.get("secret", ""), pro=True,
                           options=options, timeout_ms=int(venue.timeout * 1000), streaming=streaming)
    cls = getattr(ccxt_pro, venue.exchange, None)
    if cls is None:
        raise ValueError(f"stream: ccxt.pro has no exchange {venue.exchange!r}; set stream = false")
    ex = cls({**credentials, "options": options, "timeout": int(venue.timeout * 1000), "enableRateLimit": True,
              "streaming": streaming})
    if venue.sandbox:
        ex.set_sandbox_mode(True)
    return ex


class CcxtVenue:
    """One account. `fetch_state` is the per-cycle read; the rest serve the executor and reconciliation."""

    def __init__(self, name: str, config: VenueConfig, exchange: Any, symbols: Iterable[str],
                 price_symbols: Iterable[str] = (), *, attempts: int = 3, markets_refresh: float = 3600.0) -> None:
        self.name = name
        self.config = config
        self.exchange = exchange
        self.symbols = tuple(dict.fromkeys(symbols))
        self.price_symbols = tuple(s for s in dict.fromkeys(price_symbols) if s not in self.symbols)
        self.profile = PROFILES.get(config.exchange, Profile())
        self.attempts = attempts
        self.markets_refresh = markets_refresh
        self.markets_loaded_at = 0.0
        self.requests = 0  # exchange requests made, for the "≤ 4 per quiet cycle" budget and the bench
        # (venue, call, seconds, error or None) after every request attempt: the metrics' hook
        self.on_request: Callable[[str, str, float, BaseException | None], None] | None = None

    # --- plumbing ---------------------------------------------------------------------------------
    async def _call(self, what: str, fn: Callable[[], Awaitable[T]], *, retry: bool = True,
                    sent: bool = False) -> T:
        """One exchange call; `sent` marks a state-changing one, whose failures may leave it in doubt."""
        attempts = self.attempts if retry else 1
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_retryable),
                stop=stop_after_attempt(attempts),
                wait=wait_random_exponential(multiplier=0.1, max=2.0),
                reraise=True,
            ):
                with attempt:
                    n = attempt.retry_state.attempt_number
                    if n > 1:
                        log.warning("venue.retry", venue=self.name, call=what, attempt=n)
                    self.requests += 1  # every call below is one HTTP request (load_markets aside)
                    return await self._observed(what, fn, sent)
        except VenueError:
            raise
        except Exception as exc:
            raise classify(exc, venue=self.name, call=what, sent=sent) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _observed(self, what: str, fn: Callable[[], Awaitable[T]], sent: bool) -> T:
        """One attempt, reported to `on_request` (the metrics' hook) with its duration and error class."""
        if self.on_request is None:
            return await fn()
        started = time.perf_counter()
        try:
            result = await fn()
        except Exception as exc:
            with contextlib.suppress(Exception):  # a metrics hook never changes the outcome
                err = exc if isinstance(exc, VenueError) else classify(exc, venue=self.name, call=what, sent=sent)
                self.on_request(self.name, what, time.perf_counter() - started, err)
            raise
        with contextlib.suppress(Exception):
            self.on_request(self.name, what, time.perf_counter() - started, None)
        return result

    async def close(self) -> None:
        await self.exchange.close()

    # --- markets ------------------------------------------------------------------------------------
    async def load_markets(self, reload: bool = False) -> dict[str, Any]:
        markets: dict[str, Any] = await self._call("load_markets", lambda: self.exchange.load_markets(reload))
        self.markets_loaded_at = time.monotonic()
        missing = [s for s in (*self.symbols, *self.price_symbols) if s not in markets]
        if missing:
            raise Rejected(f"{self.name}: the exchange lists no market {missing[0]!r}", reason="bad_symbol",
                           venue=self.name, call="load_markets")
        return markets

    async def refresh_markets_if_due(self) -> None:
        if time.monotonic() - self.markets_loaded_at >= self.markets_refresh:
            await self.load_markets(reload=True)

    def market(self, symbol: str) -> dict[str, Any]:
        m: dict[str, Any] = self.exchange.market(symbol)
        return m

    def _groups(self, symbols: Iterable[str]) -> dict[tuple[str, str], list[str]]:
        """Symbols by (category, settle coin): bybit answers each group with one request."""
        out: dict[tuple[str, str], list[str]] = {}
        for s in symbols:
            m = self.market(s)
            cat = "spot" if m.get("spot") else ("inverse" if m.get("inverse") else "linear")
            out.setdefault((cat, m.get("settle") or m.get("quote") or ""), []).append(s)
        return out

    # --- the per-cycle read ---------------------------------------------------------------------------
    async def fetch_state(self, *, with_orders: bool = True) -> dict[str, Any]:
        """Balance, positions, tickers and (optionally) open orders, in parallel, each stamped when fetched."""
        async def stamped(coro: Awaitable[T]) -> tuple[T, int]:
            value = await coro
            return value, now_ms()

        jobs: list[Awaitable[tuple[Any, int]]] = [
            stamped(self._call("fetch_balance", self.exchange.fetch_balance)),
            stamped(self.fetch_positions()),
            stamped(self.fetch_tickers()),
        ]
        if with_orders:
            jobs.append(stamped(self.fetch_open_orders()))
        results = await asyncio.gather(*jobs)
        (balance, t_bal), (positions, t_pos), (tickers, t_tick) = results[0], results[1], results[2]
        orders: list[dict[str, Any]] = results[3][0] if with_orders else []
        if self.profile.wallet_from_info:
            balance = wallet_totals(balance)
        balance["timestamp"] = t_bal
        for p in positions:
            p["timestamp"] = t_pos
        for t in tickers.values():
            t["timestamp"] = t_tick
        return {
            "markets": {s: self.market(s) for s in (*self.symbols, *self.price_symbols)},
            "tickers": tickers,
            "balance": balance,
            "positions": positions,
            "open_orders": orders,
        }

    async def fetch_positions(self) -> list[dict[str, Any]]:
        wanted = set(self.symbols)
        if not wanted:  # a venue only counted for its coins (spot): no positions to ask for
            return []
        if not self.profile.bybit_batching:
            got: list[dict[str, Any]] = await self._call(
                "fetch_positions", lambda: self.exchange.fetch_positions(list(self.symbols)))
            return [p for p in got if p.get("symbol") in wanted and p.get("contracts")]
        out: list[dict[str, Any]] = []
        groups = self._groups(self.symbols)
        inverse_done = False
        for (cat, settle), _ in groups.items():
            if cat == "inverse":
                if inverse_done:
                    continue  # one call lists every inverse position
                inverse_done = True
                params: dict[str, Any] = {"subType": "inverse"}
            else:
                params = {"subType": cat, "settleCoin": settle}
            got = await self._call("fetch_positions", partial(self.exchange.fetch_positions, None, params))
            out.extend(p for p in got if p.get("symbol") in wanted and p.get("contracts"))
        return out

    async def fetch_tickers(self) -> dict[str, dict[str, Any]]:
        symbols = (*self.symbols, *self.price_symbols)
        out: dict[str, dict[str, Any]] = {}
        categories: dict[str, list[str]] = {}
        for (cat, _), syms in self._groups(symbols).items():
            categories.setdefault(cat, []).extend(syms)
        for cat, syms in categories.items():
            if self.profile.book_and_premium and cat != "spot":
                out.update(await self._book_and_premium(syms))
                continue
            got: dict[str, dict[str, Any]] = await self._call(
                "fetch_tickers", partial(self.exchange.fetch_tickers, syms))
            out.update({s: t for s, t in got.items() if s in symbols})
        return out

    async def _book_and_premium(self, symbols: list[str]) -> dict[str, dict[str, Any]]:
        """Tickers for Binance contracts: bid/ask from the book ticker, mark/index/funding from premiumIndex,
        merged into one ccxt ticker per symbol (the fields parse_ticker reads)."""
        books, rates = await asyncio.gather(
            self._call("fetch_bids_asks", partial(self.exchange.fetch_bids_asks, symbols)),
            self._call("fetch_funding_rates", partial(self.exchange.fetch_funding_rates, symbols)))
        out: dict[str, dict[str, Any]] = {}
        for s in symbols:
            if s not in books:
                continue
            t = dict(books[s])
            r = rates.get(s) or {}
            t.update({"markPrice": r.get("markPrice"), "indexPrice": r.get("indexPrice"),
                      "fundingRate": r.get("fundingRate"), "fundingTimestamp": r.get("fundingTimestamp")})
            out[s] = t
        return out

    async def fetch_open_orders(self) -> list[dict[str, Any]]:
        """Open orders on our instruments (everyone's: the planner keeps only ours, by client id prefix)."""
        wanted = set(self.symbols)
        out: list[dict[str, Any]] = []
        if self.profile.bybit_batching:
            # one call per (category, settle coin): bybit wants a settleCoin without a symbol
            for (cat, settle), _ in self._groups(self.symbols).items():
                got = await self._call("fetch_open_orders", partial(
                    self.exchange.fetch_open_orders, None, None, None, {"subType": cat, "settleCoin": settle}))
                out.extend(o for o in got if o.get("symbol") in wanted and o.get("status") == "open")
            return out
        for s in self.symbols:
            got = await self._call("fetch_open_orders", partial(self.exchange.fetch_open_orders, s))
            out.extend(got)
        return out

    # --- orders -------------------------------------------------------------------------------------
    async def open_orders(self) -> list[VenueOrder]:
        """Open orders on our instruments (everyone's), typed."""
        return [venue_order(o, f"{self.name}.open_orders[{i}]") for i, o in enumerate(await self.fetch_open_orders())]

    async def create_order(self, intent: OrderIntent) -> str:
        """Send once; the exchange's order id. Never retried: the caller resolves ambiguity by client id."""
        params: dict[str, Any] = {"clientOrderId": intent.client_id}
        if intent.post_only:
            params["postOnly"] = True
        if intent.reduce_only:
            params["reduceOnly"] = True
        order: dict[str, Any] = await self._call(
            "create_order",
            lambda: self.exchange.create_order(
                intent.symbol, "limit", intent.side, float(intent.amount), float(intent.price), params),
            retry=False, sent=True,
        )
        return str(order.get("id") or "")

    async def fetch_order(self, order_id: str, symbol: str) -> VenueOrder:
        params = {"acknowledged": True} if self.profile.bybit_batching else {}
        order: dict[str, Any] = await self._call(
            "fetch_order", lambda: self.exchange.fetch_order(order_id, symbol, params))
        return venue_order(order, f"{self.name}.fetch_order")

    async def find_order(self, client_id: str, symbol: str) -> VenueOrder | None:
        """Look an order up by client id, open or closed; None when the exchange has never seen it."""
        if self.profile.bybit_batching:
            m = self.market(symbol)
            cat = "inverse" if m.get("inverse") else ("spot" if m.get("spot") else "linear")
            for endpoint in ("privateGetV5OrderRealtime", "privateGetV5OrderHistory"):
                raw = await self._call("find_order", partial(
                    getattr(self.exchange, endpoint), {"category": cat, "symbol": m["id"], "orderLinkId": client_id}))
                rows = raw.get("result", {}).get("list") or []
                if rows:
                    return venue_order(self.exchange.parse_order(rows[0], m), f"{self.name}.find_order")
            return None
        try:
            found: dict[str, Any] = await self._call(
                "find_order", lambda: self.exchange.fetch_order(None, symbol, {"clientOrderId": client_id}))
            return venue_order(found, f"{self.name}.find_order")
        except Rejected as exc:
            if exc.reason == "not_found":
                return None
            raise

    async def cancel_order(self, order_id: str, symbol: str) -> None:
        # not found: already filled or cancelled; the follow-up fetch tells which
        try:
            await self._call("cancel_order", lambda: self.exchange.cancel_order(order_id, symbol))
        except Rejected as exc:
            if exc.reason != "not_found":
                raise

    async def fetch_my_trades(self, symbol: str, since: int | None = None) -> list[VenueTrade]:
        trades: list[dict[str, Any]] = await self._call(
            "fetch_my_trades", lambda: self.exchange.fetch_my_trades(symbol, since, 100))
        parsed = (venue_trade(t, f"{self.name}.fetch_my_trades[{i}]") for i, t in enumerate(trades))
        return [t for t in parsed if t is not None]

    async def fetch_order_trades(self, symbol: str, order_id: str, since: int | None,
                                 filled: Decimal) -> list[VenueTrade]:
        """One order's trades, by its exchange id, paged until they add up to `filled` (what the exchange
        says the order filled) or the exchange has no more; each trade once. Short when the exchange does
        not (yet) list them all; the caller decides what that means."""
        p = self.profile
        found: dict[str, VenueTrade] = {}

        def total() -> Decimal:
            return sum((t.amount for t in found.values()), Decimal(0))

        async def page(start: int | None, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
            raw: list[dict[str, Any]] = await self._call(
                "fetch_my_trades", partial(self.exchange.fetch_my_trades, symbol, start, p.trades_page, params))
            new = 0
            for i, r in enumerate(raw):
                t = venue_trade(r, f"{self.name}.fetch_order_trades[{i}]")
                if t is not None and t.order_id == order_id and t.id not in found:
                    found[t.id] = t
                    new += 1
            return raw, new

        if p.trades_paging == "cursor":
            params: dict[str, Any] = {"orderId": order_id}
            for _ in range(MAX_TRADE_PAGES):
                raw, _new = await page(since, params)
                cursor = next((r["info"]["nextPageCursor"] for r in raw
                               if isinstance(r.get("info"), dict) and r["info"].get("nextPageCursor")), None)
                if total() >= filled or not cursor:
                    break
                params = {"orderId": order_id, "cursor": cursor}
            return list(found.values())
        if p.trades_paging == "time":
            raw, _new = await page(None, {"orderId": order_id})
            start = since
            for _ in range(MAX_TRADE_PAGES):
                if total() >= filled or len(raw) < p.trades_page:
                    break
                # the symbol's trades, ascending from `start`; the next page starts at the last one's time
                # (inclusive: trades in that millisecond come again and are taken once)
                raw, new = await page(start, {})
                stamps = [int(r["timestamp"]) for r in raw if r.get("timestamp") is not None]
                if not new and (not stamps or max(stamps) == start):
                    break  # no step forward: this is all the exchange will list from here
                start = max(stamps) if stamps else start
            return list(found.values())
        await page(since, {})
        return list(found.values())

    async def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        t: dict[str, Any] = await self._call("fetch_ticker", lambda: self.exchange.fetch_ticker(symbol))
        t["timestamp"] = now_ms()
        return t
