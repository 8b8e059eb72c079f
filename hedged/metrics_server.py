"""The HTTP side of `[metrics]`: `/metrics` (Prometheus text) and `/health` (JSON) on one aiohttp port.

Why aiohttp and not prometheus-client's own server: it runs in the keeper's event loop (no thread, no
lock around the keeper's state), serves the health JSON beside the metrics, and stops with the keeper.
Rendering is in memory only (`Metrics.render`, `Metrics.health`): a scrape costs no exchange or DB call.
"""

from __future__ import annotations

import json

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from hedged.config import ConfigError
from hedged.log import get_logger
from hedged.metrics import Metrics

log = get_logger("hedged.metrics")


class MetricsServer:
    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.app = web.Application()
        self.app.router.add_get("/metrics", self._metrics)
        for path in ("/health", "/healthz"):
            self.app.router.add_get(path, self._health)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Listen; a port that cannot be bound is a ConfigError naming `metrics.listen`."""
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError([f"metrics.listen: cannot listen on {self.host}:{self.port}: "
                               f"{exc.strerror or exc}"]) from None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("metrics.listening", url=self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, _request: web.Request) -> web.Response:
        h = self.metrics.health()
        return web.Response(status=h.status, text=json.dumps(h.body()), content_type="application/json")
