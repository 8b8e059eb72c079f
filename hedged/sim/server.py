"""`Emulator`: the aiohttp server (REST, WebSocket, admin) around one engine, for tests, demo and CLI.

    async with Emulator(default_settings(clock="manual")) as emu:
        client = emu.client()            # ccxt.async_support.bybit pointed at emu.url
        emu.engine.set_price(Decimal(71500), asset="BTC")
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

from aiohttp import web

from hedged.log import get_logger
from hedged.sim.admin import AdminFront
from hedged.sim.auth import RateLimiter
from hedged.sim.binance import BinanceFront, spot_key
from hedged.sim.binance_ws import BinanceWsFront
from hedged.sim.clock import Clock
from hedged.sim.engine import Engine
from hedged.sim.faults import FaultInjector
from hedged.sim.rest import RestFront
from hedged.sim.settings import EmulatorSettings, binance_settings, default_settings
from hedged.sim.ws import WsFront

log = get_logger(__name__)


EXCHANGES = ("bybit", "binance")


class Emulator:
    """Local exchange speaking Bybit v5 (`exchange="bybit"`) or Binance spot + COIN-M (`"binance"`), over
    the same engine, fault injection and admin API. Binds 127.0.0.1 with an OS-chosen port unless told."""

    def __init__(
        self,
        settings: EmulatorSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        exchange: str = "bybit",
    ) -> None:
        if exchange not in EXCHANGES:
            raise ValueError(f"exchange: expected one of {', '.join(EXCHANGES)}, got {exchange!r}")
        self.exchange = exchange
        self.settings = settings or (binance_settings() if exchange == "binance" else default_settings())
        self.host = host
        self.port = port
        self.engine = Engine(self.settings, clock)
        if exchange == "binance":  # spot coins live in a wallet of their own (hedged.sim.binance.spot_key)
            for acc in self.settings.accounts:
                self.engine.add_account(spot_key(acc.api_key), acc.secret, dict(acc.spot_balances))
        self.faults = FaultInjector(self.settings.seed)
        for f in self.settings.faults:
            self.faults.add(f)
        self.limiter = RateLimiter(self.settings.rate_limit.requests, self.settings.rate_limit.per_seconds)
        self.app = web.Application()
        self.rest: RestFront | BinanceFront
        if exchange == "binance":
            self.rest = BinanceFront(self.engine, self.faults, self.limiter, self.settings.recv_window_max_ms,
                                     weight_limit=self.settings.weight_limit_1m)
        else:
            self.rest = RestFront(self.engine, self.faults, self.limiter, self.settings.recv_window_max_ms)
        self.ws = WsFront(self.engine)  # Bybit's stream topics
        # Binance COIN-M market and user data streams (/dstream), keyed by the REST front's listen keys
        self.binance_ws: BinanceWsFront | None = None
        if isinstance(self.rest, BinanceFront):
            self.binance_ws = BinanceWsFront(self.engine, self.rest.listen_keys)
            self.binance_ws.routes(self.app)
        self.admin = AdminFront(self.engine, self.faults, self.limiter, spot_wallets=exchange == "binance")
        self.rest.routes(self.app)
        if exchange == "bybit":
            self.ws.routes(self.app)
        self.admin.routes(self.app)
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """HTTP base URL, e.g. http://127.0.0.1:41234 (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[4:]

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick_loop())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.ws.close()
        if self.binance_ws is not None:
            await self.binance_ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _tick_loop(self) -> None:
        """Runs price paths, taker flow and funding on the real/accelerated clock; tickers to WS."""
        interval = self.settings.tick_seconds
        pushes = 0
        while True:
            await asyncio.sleep(interval)
            try:
                self.engine.advance()
                pushes += 1
                if pushes * interval >= 1.0:
                    pushes = 0
                    self.ws.push_tickers()
                    if self.binance_ws is not None:
                        self.binance_ws.tick()
            except Exception:  # keep the exchange alive; the failure is logged
                log.exception("sim.tick_failed")

    def client(self, api_key: str = "demo-key", secret: str = "demo-secret", *, pro: bool = False,
               kind: str = "", **kwargs: Any) -> Any:
        """A ccxt client pointed at this emulator: bybit (async, or ccxt.pro with `pro=True`), or on a
        Binance emulator `binance` (kind="spot") / `binancecoinm` (kind="coinm", the default; ccxt.pro's
        with `pro=True`, whose streams are the COIN-M ones)."""
        from hedged.sim.client import make_binance_client, make_client

        if self.exchange == "binance":
            return make_binance_client(self.url, api_key, secret, exchange_id="binance" if kind == "spot"
                                       else "binancecoinm", pro=pro, **kwargs)
        return make_client(self.url, api_key, secret, pro=pro, **kwargs)
