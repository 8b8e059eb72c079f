"""The admin API under /_admin/ (JSON, no auth): move prices, credit balances, inject faults, step the
clock, settle funding, list orders, dump state. Loopback-only unless the server is told otherwise."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from hedged.sim.auth import RateLimiter
from hedged.sim.engine import Engine, EngineError
from hedged.sim.faults import FaultInjector


class AdminError(Exception):
    pass


def _dec(body: dict[str, Any], key: str) -> Decimal:
    if key not in body:
        raise AdminError(f"missing key {key!r}")
    try:
        return Decimal(str(body[key]))
    except InvalidOperation:
        raise AdminError(f"{key!r} must be a number") from None


class AdminFront:
    def __init__(self, engine: Engine, faults: FaultInjector, limiter: RateLimiter, *,
                 spot_wallets: bool = False) -> None:
        self.spot_wallets = spot_wallets  # Binance: every account also has a spot wallet `<key>:spot`
        self.engine = engine
        self.faults = faults
        self.limiter = limiter

    def routes(self, app: web.Application) -> None:
        post = {
            "price": self.price, "balance": self.balance, "faults": self.set_faults, "step": self.step,
            "funding": self.funding, "account": self.account, "settings": self.settings,
        }
        get = {"orders": self.orders, "state": self.state, "faults": self.get_faults}
        for name, fn in post.items():
            app.router.add_post(f"/_admin/{name}", self._wrap(fn))
        for name, fn in get.items():
            app.router.add_get(f"/_admin/{name}", self._wrap(fn))

    def _wrap(self, fn: Callable[[dict[str, Any]], Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            # any local web page could otherwise move prices or credit balances: browsers send Origin (and
            # Sec-Fetch-Site) on cross-site requests, and a "simple" cross-origin POST cannot be JSON
            if request.headers.get("Origin") or request.headers.get("Sec-Fetch-Site", "none") != "none":
                return web.json_response({"error": "browser-origin requests are refused"}, status=403)
            body: dict[str, Any] = {}
            if request.method == "POST" and request.can_read_body:
                if request.content_type != "application/json":
                    return web.json_response({"error": "Content-Type must be application/json"}, status=415)
                try:
                    raw = await request.json()
                except ValueError:
                    return web.json_response({"error": "body is not JSON"}, status=400)
                if not isinstance(raw, dict):
                    return web.json_response({"error": "body must be a JSON object"}, status=400)
                body = raw
            try:
                return web.json_response(fn(body))
            except (AdminError, EngineError) as exc:
                msg = exc.message if isinstance(exc, EngineError) else str(exc)
                return web.json_response({"error": msg}, status=400)
            except ValidationError as exc:
                lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
                return web.json_response({"error": "; ".join(lines)}, status=400)
            except (ValueError, TypeError, KeyError, ArithmeticError, AttributeError) as exc:
                # a value of the wrong shape ({"seed": "x"}, "rate_limit": 5, "balances": 1): the caller's, not ours
                return web.json_response({"error": f"bad request: {type(exc).__name__}: {str(exc)[:200]}"},
                                         status=400)

        return serve

    def price(self, body: dict[str, Any]) -> Any:
        price = _dec(body, "price")
        if "symbol" in body:
            self.engine.set_price(price, symbol=str(body["symbol"]))
        elif "asset" in body:
            self.engine.set_price(price, asset=str(body["asset"]))
        else:
            raise AdminError("give 'asset' (coin index) or 'symbol' (one instrument)")
        return {"ok": True, "index": {a: str(p) for a, p in self.engine.index.items()}}

    def balance(self, body: dict[str, Any]) -> Any:
        key = str(body.get("api_key", ""))
        wallet = body.get("wallet")
        if wallet == "spot":  # Binance: the key's spot wallet (hedged.sim.binance.spot_key)
            key = f"{key}:spot"
        elif wallet not in (None, "", "futures"):
            raise AdminError("'wallet' must be 'spot' or 'futures'")
        new = self.engine.credit(key, str(body.get("coin", "")), _dec(body, "delta"))
        return {"ok": True, "balance": str(new)}

    def account(self, body: dict[str, Any]) -> Any:
        key, secret = str(body.get("api_key", "")), str(body.get("secret", ""))
        if not key or not secret:
            raise AdminError("give 'api_key' and 'secret'")
        balances = {str(c): Decimal(str(v)) for c, v in dict(body.get("balances", {})).items()}
        self.engine.add_account(key, secret, balances)
        if self.spot_wallets:
            spot = {str(c): Decimal(str(v)) for c, v in dict(body.get("spot_balances", {})).items()}
            self.engine.add_account(f"{key}:spot", secret, spot)
        return {"ok": True}

    def set_faults(self, body: dict[str, Any]) -> Any:
        if body.get("clear") or body.get("replace"):
            self.faults.clear()
        if "seed" in body:
            self.faults.reseed(int(body["seed"]))
        rules = body.get("rules", [])
        if "kind" in body:
            rules = [*rules, {k: v for k, v in body.items() if k not in ("clear", "replace", "seed", "rules")}]
        for r in rules:
            self.faults.add(r)
        return {"ok": True, "rules": self.faults.describe()}

    def get_faults(self, body: dict[str, Any]) -> Any:
        return {"rules": self.faults.describe()}

    def step(self, body: dict[str, Any]) -> Any:
        seconds = float(_dec(body, "seconds"))
        if seconds < 0:
            raise AdminError("'seconds' must not be negative")
        self.engine.step(seconds)
        return {"ok": True, "time_ms": self.engine.now_ms()}

    def funding(self, body: dict[str, Any]) -> Any:
        rate = _dec(body, "rate") if "rate" in body else None
        n = self.engine.settle_funding(body.get("symbol"), rate)
        return {"ok": True, "payments": n}

    def settings(self, body: dict[str, Any]) -> Any:
        if "taker_flow_usd_per_s" in body:
            self.engine.taker_flow_usd_per_s = _dec(body, "taker_flow_usd_per_s")
        if "rate_limit" in body:
            rl = dict(body["rate_limit"])
            self.limiter.requests = int(rl.get("requests", 0))
            self.limiter.per_seconds = float(rl.get("per_seconds", 1.0))
            self.limiter.hits.clear()
        return {"ok": True, "taker_flow_usd_per_s": str(self.engine.taker_flow_usd_per_s),
                "rate_limit": {"requests": self.limiter.requests, "per_seconds": self.limiter.per_seconds}}

    def orders(self, body: dict[str, Any]) -> Any:
        return {"orders": self.engine.orders_list()}

    def state(self, body: dict[str, Any]) -> Any:
        return self.engine.state()
