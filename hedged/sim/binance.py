"""The Binance REST front: spot /api/v3 and COIN-M /dapi/v1 + /dapi/v2, thin over the shared engine.

Each request: fault decision → (signed endpoints) API key, timestamp/recvWindow and HMAC-SHA256 check →
request-weight and rate limit → engine call → Binance JSON (errors as `{"code": -NNNN, "msg": ...}` with an
HTTP 4xx). Every answer carries `X-MBX-USED-WEIGHT-1M`; orders also `X-MBX-ORDER-COUNT-1M`. Past the limit
Binance answers 429 with `Retry-After`, and 418 (an IP ban) to a client that keeps going.

Spot and COIN-M are separate wallets on Binance: the COIN-M front trades the engine account of the API
key, the spot front the engine account `<api key>:spot` (see `spot_key`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from hedged.sim import binance_views as bv
from hedged.sim.auth import RateLimiter
from hedged.sim.binance_ws import ListenKeys
from hedged.sim.engine import Engine, EngineError
from hedged.sim.faults import FaultInjector, Faults
from hedged.sim.instruments import Category, Instrument
from hedged.sim.orders import Order

Params = dict[str, str]

# Request weight of each endpoint (Binance's published weights, simplified to the common case).
WEIGHTS = {"exchangeInfo": 20, "depth": 5, "ticker/24hr": 2, "ticker/bookTicker": 2, "premiumIndex": 10,
           "account": 20, "balance": 1, "positionRisk": 1, "leverageBracket": 1, "order": 1, "openOrders": 6,
           "allOrders": 20, "myTrades": 20, "userTrades": 20, "leverage": 1, "marginType": 1,
           "positionSide/dual": 1, "time": 1, "ping": 1, "listenKey": 1}

# Engine (Bybit v5) codes → Binance codes and messages, per family.
SPOT_CODES = {110007: (-2010, "Account has insufficient balance for requested action."),
              110072: (-2010, "Duplicate order sent."), 110001: (-2011, "Unknown order sent."),
              10003: (-2015, "Invalid API-key, IP, or permissions for action.")}
COINM_CODES = {110007: (-2019, "Margin is insufficient."), 110072: (-4116, "ClientOrderId is duplicated."),
               110017: (-2022, "ReduceOnly Order is rejected."), 110001: (-2011, "Unknown order sent."),
               110013: (-4028, "Leverage is not valid"),
               110024: (-4048, "Margin type cannot be changed if there exists position."),
               110025: (-4047, "Margin type cannot be changed if there exists open orders."),
               10003: (-2015, "Invalid API-key, IP, or permissions for action.")}


class BinanceError(Exception):
    """An answer Binance gives as `{"code", "msg"}` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        self.code, self.msg, self.status, self.headers = code, msg, status, headers or {}
        super().__init__(f"{code}: {msg}")


def spot_key(api_key: str) -> str:
    """The engine account holding an API key's spot wallet (COIN-M uses the key itself)."""
    return f"{api_key}:spot"


@dataclass
class Req:
    params: Params
    api_key: str  # the engine account (spot: `<key>:spot`); "" for public endpoints
    faults: Faults
    coinm: bool


Handler = Callable[[Req], Any]


def _dec(p: Params, key: str, required: bool = True) -> Decimal | None:
    raw = p.get(key)
    if raw is None or raw == "":
        if required:
            raise BinanceError(-1102, f"Mandatory parameter '{key}' was not sent, was empty/null, or malformed.")
        return None
    try:
        d = Decimal(raw)
    except InvalidOperation:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{key}'; legal range is "
                           "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.") from None
    if not d.is_finite():
        raise BinanceError(-1100, f"Illegal characters found in parameter '{key}'.")
    return d


def _int(p: Params, key: str) -> int | None:
    raw = p.get(key)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{key}'.") from None


def _true(raw: str | None) -> bool:
    return str(raw).lower() in ("true", "1")


class WeightMeter:
    """Request weight per client over a sliding minute, and the 429 → 418 escalation."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used: dict[str, deque[tuple[float, int]]] = {}
        self.strikes: dict[str, deque[float]] = {}
        self.banned_until: dict[str, float] = {}

    def add(self, who: str, weight: int, now: float | None = None) -> int:
        t = time.monotonic() if now is None else now
        q = self.used.setdefault(who, deque())
        while q and t - q[0][0] >= 60.0:
            q.popleft()
        q.append((t, weight))
        return sum(w for _, w in q)

    def refuse(self, who: str, now: float | None = None) -> BinanceError:
        """A 429 with Retry-After; the third within a minute bans the client (418) for a while."""
        t = time.monotonic() if now is None else now
        s = self.strikes.setdefault(who, deque())
        while s and t - s[0] >= 60.0:
            s.popleft()
        s.append(t)
        if len(s) >= 3:
            self.banned_until[who] = t + 120.0
            return self.banned(who, t)
        return BinanceError(-1003, "Too many requests; current limit of IP is exceeded. Please use WebSocket "
                            "Streams for live updates to avoid polling the API.", 429, {"Retry-After": "1"})

    def banned(self, who: str, now: float | None = None) -> BinanceError:
        t = time.monotonic() if now is None else now
        left = max(1, int(self.banned_until.get(who, t) - t + 0.999))
        return BinanceError(-1003, f"Way too many requests; IP banned until {int(time.time() * 1000) + left * 1000}. "
                            "Please use WebSocket Streams for live updates to avoid bans.", 418,
                            {"Retry-After": str(left)})

    def is_banned(self, who: str, now: float | None = None) -> bool:
        t = time.monotonic() if now is None else now
        return self.banned_until.get(who, 0.0) > t


class BinanceFront:
    """Registers the /api/v3 and /dapi routes on an aiohttp app; state lives in the engine."""

    def __init__(self, engine: Engine, faults: FaultInjector, limiter: RateLimiter, recv_window_max_ms: int,
                 weight_limit: int = 6000) -> None:
        self.engine = engine
        self.faults = faults
        self.limiter = limiter
        self.recv_window_max_ms = recv_window_max_ms
        self.weights = WeightMeter(weight_limit)
        self.orders_per_minute: dict[str, deque[float]] = {}
        # requests answered, per API key ("public" for unsigned ones): tests count a client's REST cost
        self.requests: Counter[str] = Counter()
        self.endpoints: Counter[str] = Counter()  # the same requests by "METHOD /path"
        self.listen_keys = ListenKeys(engine)  # COIN-M user data streams (hedged/sim/binance_ws.py)

    def routes(self, app: web.Application) -> None:
        spot_public: dict[str, Handler] = {
            "ping": lambda r: {}, "time": self.server_time, "exchangeInfo": self.exchange_info,
            "ticker/24hr": self.ticker_24h, "ticker/bookTicker": self.book_ticker, "depth": self.depth,
        }
        spot_signed: dict[tuple[str, str], Handler] = {
            ("GET", "account"): self.spot_account, ("POST", "order"): self.new_order,
            ("GET", "order"): self.query_order, ("DELETE", "order"): self.cancel_order,
            ("GET", "openOrders"): self.open_orders, ("DELETE", "openOrders"): self.cancel_all,
            ("GET", "allOrders"): self.all_orders, ("GET", "myTrades"): self.my_trades,
        }
        coinm_public: dict[str, Handler] = {
            "ping": lambda r: {}, "time": self.server_time, "exchangeInfo": self.exchange_info,
            "ticker/24hr": self.ticker_24h, "ticker/bookTicker": self.book_ticker, "depth": self.depth,
            "premiumIndex": self.premium_index,
        }
        coinm_signed: dict[tuple[str, str], Handler] = {
            ("GET", "account"): self.coinm_account, ("GET", "balance"): self.coinm_balance,
            ("GET", "positionRisk"): self.position_risk, ("POST", "order"): self.new_order,
            ("GET", "order"): self.query_order, ("DELETE", "order"): self.cancel_order,
            ("GET", "openOrders"): self.open_orders, ("DELETE", "allOpenOrders"): self.cancel_all,
            ("GET", "allOrders"): self.all_orders, ("GET", "userTrades"): self.my_trades,
            ("POST", "leverage"): self.set_leverage, ("POST", "marginType"): self.set_margin_type,
            ("GET", "positionSide/dual"): self.get_dual, ("POST", "positionSide/dual"): self.set_dual,
        }
        for path, h in spot_public.items():
            app.router.add_get(f"/api/v3/{path}", self._wrap(f"/api/v3/{path}", path, h, False, False))
        for (method, path), h in spot_signed.items():
            app.router.add_route(method, f"/api/v3/{path}", self._wrap(f"/api/v3/{path}", path, h, True, False))
        for path, h in coinm_public.items():
            app.router.add_get(f"/dapi/v1/{path}", self._wrap(f"/dapi/v1/{path}", path, h, False, True))
        for (method, path), h in coinm_signed.items():
            app.router.add_route(method, f"/dapi/v1/{path}", self._wrap(f"/dapi/v1/{path}", path, h, True, True))
        for method, h in (("POST", self.listen_key_create), ("PUT", self.listen_key_keepalive),
                          ("DELETE", self.listen_key_delete)):
            app.router.add_route(method, "/dapi/v1/listenKey",
                                 self._wrap("/dapi/v1/listenKey", "listenKey", h, False, True))
        app.router.add_get("/dapi/v2/leverageBracket",
                           self._wrap("/dapi/v2/leverageBracket", "leverageBracket", self.leverage_bracket, True, True))

    # ---- plumbing --------------------------------------------------------------------------------
    def _wrap(self, endpoint: str, name: str, handler: Handler, signed: bool,
              coinm: bool) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            if request.method in ("POST", "PUT", "DELETE"):
                # the exchange has the request once it is read: a delayed order is still placed (see rest.py)
                try:
                    await request.read()
                except ConnectionError:
                    return web.Response(status=400)
            faults = self.faults.decide(endpoint, request.method)
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            if faults.hang_s:
                await asyncio.sleep(faults.hang_s)
                if request.transport is None or request.transport.is_closing():
                    return web.Response(status=408)
            who = request.remote or "?"
            headers: dict[str, str] = {}
            if faults.http_status == 429:
                body: Any = {"code": -1003, "msg": "Too many requests; current limit of IP is exceeded."}
                return web.json_response(body, status=429, headers={"Retry-After": "1"})
            if faults.http_status is not None:
                return web.Response(status=faults.http_status, text=f"{faults.http_status} Service Unavailable")
            status = 200
            try:
                if self.weights.is_banned(who):
                    raise self.weights.banned(who)
                used = self.weights.add(who, WEIGHTS.get(name, 1))
                headers["X-MBX-USED-WEIGHT-1M"] = str(used)
                if self.weights.limit and used > self.weights.limit:
                    raise self.weights.refuse(who)
                body = await self._answer(request, name, handler, signed, coinm, faults, headers)
            except BinanceError as exc:
                body, status = {"code": exc.code, "msg": exc.msg}, exc.status
                headers.update(exc.headers)
            if faults.drop_reply and request.transport is not None:
                request.transport.abort()
                return web.Response(status=204)
            return web.json_response(body, status=status, headers=headers)

        return serve

    async def _answer(self, request: web.Request, name: str, handler: Handler, signed: bool, coinm: bool,
                      faults: Faults, headers: dict[str, str]) -> Any:
        query = request.rel_url.raw_query_string
        body = (await request.text()) if request.body_exists else ""
        params: Params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(dict(parse_qsl(body, keep_blank_values=True)))
        account = ""
        codes = COINM_CODES if coinm else SPOT_CODES
        if name == "listenKey":  # USER_STREAM security: the API key header, no signature
            account = request.headers.get("X-MBX-APIKEY") or ""
            if not account:
                raise BinanceError(-2014, "API-key format invalid.", 401)
            if account not in self.engine.accounts:
                raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        if signed:
            key = self._verify(request.headers.get("X-MBX-APIKEY"), query, body, params)
            account = key if coinm else spot_key(key)
            if account not in self.engine.accounts:
                raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        who = account or (request.remote or "?")
        self.requests[account or "public"] += 1
        self.endpoints[f"{request.method} {request.path}"] += 1
        if not self.limiter.allow(who):
            raise self.weights.refuse(who)
        if name == "order" and request.method == "POST":
            q = self.orders_per_minute.setdefault(who, deque())
            t = time.monotonic()
            while q and t - q[0] >= 60.0:
                q.popleft()
            q.append(t)
            headers["X-MBX-ORDER-COUNT-1M"] = str(len(q))
        self.engine.advance()
        try:
            return handler(Req(params, account, faults, coinm))
        except EngineError as exc:
            code, msg = codes.get(exc.code, (-1102 if exc.code == 10001 else -1000, exc.message))
            if exc.code == 10001 and "Qty" in exc.message:
                code, msg = -1013, f"Invalid quantity: {exc.message}"
            if exc.code == 10001 and "tick" in exc.message:
                code, msg = -1013, f"Filter failure: PRICE_FILTER ({exc.message})"
            raise BinanceError(code, msg, 401 if code == -2015 else 400) from None

    def _verify(self, api_key: str | None, query: str, body: str, params: Params) -> str:
        """Binance HMAC-SHA256: signature = hex HMAC(secret, query string + body without `signature`)."""
        if not api_key:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        acct = self.engine.accounts.get(api_key)
        if acct is None:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        signature = params.get("signature")
        ts = _int(params, "timestamp")
        if signature is None:
            raise BinanceError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        if ts is None:
            raise BinanceError(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        window = _int(params, "recvWindow") or 5000
        if window > self.recv_window_max_ms:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
        now = int(time.time() * 1000)
        if ts > now + 1000:
            raise BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - ts > window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
        payload = _strip_signature(query) + _strip_signature(body)
        expected = hmac.new(acct.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        return api_key

    def _insts(self, req: Req) -> list[Instrument]:
        cat = Category.INVERSE if req.coinm else Category.SPOT
        return self.engine.instruments_in(cat.value)

    def _inst(self, req: Req, required: bool = True) -> Instrument | None:
        sym = req.params.get("symbol")
        if not sym:
            if required:
                raise BinanceError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
            return None
        for i in self._insts(req):
            if bv.symbol_id(i) == sym:
                return i
        raise BinanceError(-1121, "Invalid symbol.")

    def _select(self, req: Req, inst: Instrument | None) -> list[Instrument]:
        if inst is not None:
            return [inst]
        insts = self._insts(req)
        if pair := req.params.get("pair"):
            insts = [i for i in insts if i.base + i.quote == pair]
        return insts

    # ---- public ----------------------------------------------------------------------------------
    def server_time(self, req: Req) -> Any:
        return {"serverTime": int(time.time() * 1000)}

    def exchange_info(self, req: Req) -> Any:
        insts = self._insts(req)
        if sym := req.params.get("symbol"):
            insts = [i for i in insts if bv.symbol_id(i) == sym]
        return bv.exchange_info(self.engine, insts, req.coinm)

    def _many(self, req: Req, render: Callable[[Engine, Instrument], dict[str, Any]]) -> Any:
        inst = self._inst(req, required=False)
        if inst is not None:
            out = render(self.engine, inst)
            return [out] if req.coinm else out
        insts = self._select(req, None)
        if raw := req.params.get("symbols"):
            wanted = {s.strip().strip('"') for s in raw.strip("[]").split(",")}
            insts = [i for i in insts if bv.symbol_id(i) in wanted]
        return [render(self.engine, i) for i in insts]

    def ticker_24h(self, req: Req) -> Any:
        return self._many(req, bv.ticker_24h)

    def book_ticker(self, req: Req) -> Any:
        return self._many(req, bv.book_ticker)

    def premium_index(self, req: Req) -> Any:
        return self._many(req, bv.premium_index)

    def depth(self, req: Req) -> Any:
        inst = self._inst(req)
        assert inst is not None
        return bv.depth(self.engine, inst, _int(req.params, "limit") or 100)

    # ---- account ---------------------------------------------------------------------------------
    def spot_account(self, req: Req) -> Any:
        return bv.spot_account(self.engine, self.engine.account(req.api_key))

    def coinm_account(self, req: Req) -> Any:
        return bv.coinm_account(self.engine, self.engine.account(req.api_key))

    def coinm_balance(self, req: Req) -> Any:
        return bv.coinm_balance(self.engine, self.engine.account(req.api_key))

    def position_risk(self, req: Req) -> Any:
        acct = self.engine.account(req.api_key)
        insts = self._select(req, None)
        if asset := req.params.get("marginAsset"):
            insts = [i for i in insts if i.base == asset]
        return [bv.position_risk(self.engine, acct, i) for i in insts]

    def leverage_bracket(self, req: Req) -> Any:
        return [bv.leverage_bracket(self.engine, i) for i in self._select(req, self._inst(req, required=False))]

    def set_leverage(self, req: Req) -> Any:
        inst = self._inst(req)
        assert inst is not None
        lev = _int(req.params, "leverage")
        if lev is None:
            raise BinanceError(-1102, "Mandatory parameter 'leverage' was not sent, was empty/null, or malformed.")
        self.engine.set_leverage(req.api_key, inst, Decimal(lev))
        return {"leverage": lev, "maxQty": "1000000", "symbol": bv.symbol_id(inst)}

    def set_margin_type(self, req: Req) -> Any:
        inst = self._inst(req)
        assert inst is not None
        kind = str(req.params.get("marginType") or "").upper()
        if kind not in ("ISOLATED", "CROSSED", "CROSS"):
            raise BinanceError(-4044, "The margin type is not valid.")
        if not self.engine.set_margin_mode(req.api_key, inst, "isolated" if kind == "ISOLATED" else "cross"):
            raise BinanceError(-4046, "No need to change margin type.")
        return {"code": 200, "msg": "success"}

    def get_dual(self, req: Req) -> Any:
        return {"dualSidePosition": self.engine.account(req.api_key).hedge_mode}

    def set_dual(self, req: Req) -> Any:
        if not self.engine.set_hedge_mode(req.api_key, _true(req.params.get("dualSidePosition"))):
            raise BinanceError(-4059, "No need to change position side.")
        return {"code": 200, "msg": "success"}

    # ---- user data stream (listenKey) ------------------------------------------------------------
    def listen_key_create(self, req: Req) -> Any:
        """An active key is returned again with its validity extended, as Binance does."""
        return {"listenKey": self.listen_keys.create(req.api_key)}

    def listen_key_keepalive(self, req: Req) -> Any:
        key = self.listen_keys.keepalive(req.api_key)
        if key is None:
            raise BinanceError(-1125, "This listenKey does not exist.")
        return {"listenKey": key}

    def listen_key_delete(self, req: Req) -> Any:
        self.listen_keys.delete(req.api_key)
        return {}

    # ---- orders ----------------------------------------------------------------------------------
    def new_order(self, req: Req) -> Any:
        p = req.params
        inst = self._inst(req)
        assert inst is not None
        acct = self.engine.account(req.api_key)
        if acct.hedge_mode and p.get("positionSide", "BOTH") == "BOTH":
            raise BinanceError(-4061, "Order's position side does not match user's setting.")
        side = {"BUY": "Buy", "SELL": "Sell"}.get(str(p.get("side") or "").upper())
        if side is None:
            raise BinanceError(-1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed.")
        kind = str(p.get("type") or "").upper()
        if kind not in ("LIMIT", "MARKET", "LIMIT_MAKER") or (kind == "LIMIT_MAKER" and req.coinm):
            raise BinanceError(-1116, "Invalid orderType.")
        qty = _dec(p, "quantity", required=not (kind == "MARKET" and p.get("quoteOrderQty")))
        price = _dec(p, "price", required=kind != "MARKET")
        tif = str(p.get("timeInForce") or ("GTC" if kind != "MARKET" else "IOC")).upper()
        post_only = kind == "LIMIT_MAKER" or tif == "GTX"
        if tif not in ("GTC", "IOC", "FOK", "GTX"):
            raise BinanceError(-1115, "Invalid timeInForce.")
        client_id = str(p.get("newClientOrderId") or "") or f"sim-{self.engine.new_id()[:20]}"
        if len(client_id) > 36:
            raise BinanceError(-1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is "
                               "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        if post_only and price is not None and (req.faults.post_only_reject or (
                price >= inst.ask if side == "Buy" else price <= inst.bid)):
            # Binance refuses a maker-only order that would take: nothing is placed
            if req.coinm:
                raise BinanceError(-5022, "Due to the order could not be executed as maker, the Post Only order "
                                   "will be rejected. The order will not be recorded in the order history")
            raise BinanceError(-2010, "Order would immediately match and take.")
        market_unit = None
        if kind == "MARKET" and not inst.is_contract:
            if p.get("quoteOrderQty"):
                qty, market_unit = _dec(p, "quoteOrderQty"), "quoteCoin"
            else:
                market_unit = "baseCoin"
        assert qty is not None
        before = len(self.engine.executions)
        o = self.engine.place_order(
            req.api_key, inst, side, "Market" if kind == "MARKET" else "Limit", qty,
            price if kind != "MARKET" else None,
            time_in_force="PostOnly" if post_only else tif, reduce_only=_true(p.get("reduceOnly")),
            client_id=client_id, market_unit=market_unit, partial_fill_ratio=req.faults.partial_fill_ratio,
        )
        fills = [e for e in self.engine.executions[before:] if e.order_id == o.order_id]
        if not inst.is_contract and str(p.get("newOrderRespType") or "FULL").upper() == "FULL":
            return bv.order(o, fills=fills)
        d = bv.order(o)
        d.pop("time", None)
        return d

    def _find(self, req: Req, inst: Instrument, *,
              missing: tuple[int, str] = (-2013, "Order does not exist.")) -> Order:
        oid = _int(req.params, "orderId")
        cid = req.params.get("origClientOrderId")
        if oid is None and not cid:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        for o in reversed(self.engine.orders):
            if o.api_key != req.api_key or o.instrument is not inst:
                continue
            if (oid is not None and bv.numeric_id(o.order_id) == oid) or (oid is None and o.client_id == cid):
                return o
        raise BinanceError(*missing)

    def query_order(self, req: Req) -> Any:
        inst = self._inst(req)
        assert inst is not None
        return bv.order(self._find(req, inst))

    def cancel_order(self, req: Req) -> Any:
        inst = self._inst(req)
        assert inst is not None
        o = self._find(req, inst, missing=(-2011, "Unknown order sent."))
        if not o.is_open:
            raise BinanceError(-2011, "Unknown order sent.")
        self.engine.cancel_order(req.api_key, inst, o.order_id, None)
        return bv.order(o, orig_client_id=o.client_id)

    def cancel_all(self, req: Req) -> Any:
        inst = self._inst(req)
        assert inst is not None
        done = []
        for o in [o for o in self.engine.open_orders.values() if o.api_key == req.api_key and o.instrument is inst]:
            self.engine.cancel_order(req.api_key, inst, o.order_id, None)
            done.append(bv.order(o, orig_client_id=o.client_id))
        return done if not req.coinm else {"code": 200, "msg": "The operation of cancel all open order is done."}

    def open_orders(self, req: Req) -> Any:
        insts = self._select(req, self._inst(req, required=False))
        return [bv.order(o) for o in self.engine.open_orders.values()
                if o.api_key == req.api_key and o.instrument in insts]

    def _window(self, req: Req, items: list[Any], time_of: Callable[[Any], int], default: int,
                maximum: int) -> list[Any]:
        start, end = _int(req.params, "startTime"), _int(req.params, "endTime")
        limit = min(_int(req.params, "limit") or default, maximum)
        out = [x for x in items if (start is None or time_of(x) >= start) and (end is None or time_of(x) <= end)]
        return out[:limit] if start is not None else out[-limit:]

    def all_orders(self, req: Req) -> Any:
        inst = self._inst(req)
        orders = [o for o in self.engine.orders if o.api_key == req.api_key and o.instrument is inst]
        return [bv.order(o) for o in self._window(req, orders, lambda o: o.created_ms, 500, 1000)]

    def my_trades(self, req: Req) -> Any:
        insts = self._select(req, self._inst(req, required=not req.coinm))
        trades = [e for e in self.engine.executions
                  if e.api_key == req.api_key and e.exec_type == "Trade" and e.instrument in insts]
        if (oid := _int(req.params, "orderId")) is not None:
            trades = [e for e in trades if bv.numeric_id(e.order_id) == oid]
        return [bv.trade(e) for e in self._window(req, trades, lambda e: e.time_ms, 500, 1000)]


def _strip_signature(raw: str) -> str:
    """The signed text: everything but the `signature` parameter (ccxt appends it last)."""
    if not raw:
        return ""
    parts = [p for p in raw.split("&") if not p.startswith("signature=")]
    return "&".join(parts)
