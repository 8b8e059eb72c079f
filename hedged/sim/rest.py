"""The Bybit v5 REST front: the endpoints ccxt's bybit calls, thin over the engine.

Each request: fault decision → (private) signature and recvWindow check → rate limit → engine call →
JSON envelope `{"retCode", "retMsg", "result", "retExtInfo", "time"}`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from hedged.sim import klines, ledger, views
from hedged.sim.auth import RateLimiter, verify_request
from hedged.sim.engine import Engine, EngineError
from hedged.sim.faults import FaultInjector, Faults
from hedged.sim.instruments import Category, Instrument
from hedged.sim.orders import Order

Params = dict[str, Any]


@dataclass
class Ctx:
    """What a handler sees: parsed parameters, the authenticated key (private only), injected faults."""

    params: Params
    api_key: str
    faults: Faults


Handler = Callable[[Ctx], Any]


@dataclass
class Batch:
    """A batch endpoint's answer: one result and one {code, msg} per request item."""

    items: list[dict[str, Any]]
    codes: list[dict[str, Any]]


def envelope(result: Any, code: int = 0, msg: str = "OK") -> dict[str, Any]:
    return {"retCode": code, "retMsg": msg, "result": result if result is not None else {},
            "retExtInfo": {}, "time": int(time.time() * 1000)}


def _dec(params: Params, key: str, required: bool = True) -> Decimal | None:
    raw = params.get(key)
    if raw is None or raw == "":
        if required:
            raise EngineError(10001, f"params error: {key} is required")
        return None
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        raise EngineError(10001, f"params error: {key} invalid") from None


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    return str(raw).lower() in ("true", "1")


def _page(items: list[Any], params: Params, default: int, maximum: int) -> tuple[list[Any], str]:
    try:
        limit = min(int(params.get("limit") or default), maximum)
        start = int(params.get("cursor") or 0)
    except ValueError:
        raise EngineError(10001, "params error: limit or cursor invalid") from None
    chunk = items[start:start + limit]
    nxt = str(start + limit) if start + limit < len(items) else ""
    return chunk, nxt


class RestFront:
    """Registers /v5 routes on an aiohttp app; state lives in the engine."""

    def __init__(self, engine: Engine, faults: FaultInjector, limiter: RateLimiter, recv_window_max_ms: int):
        self.engine = engine
        self.faults = faults
        self.limiter = limiter
        self.recv_window_max_ms = recv_window_max_ms
        # requests answered, per API key ("public" for unsigned ones): tests count a client's REST cost
        self.requests: Counter[str] = Counter()

    def routes(self, app: web.Application) -> None:
        public: dict[str, Handler] = {
            "/v5/market/time": self.market_time,
            "/v5/market/instruments-info": self.instruments_info,
            "/v5/market/tickers": self.tickers,
            "/v5/market/orderbook": self.orderbook,
            "/v5/market/recent-trade": self.recent_trade,
            "/v5/market/funding/history": self.funding_history,
            "/v5/market/open-interest": self.open_interest,
            "/v5/market/risk-limit": self.risk_limit,
            "/v5/system/status": self.system_status,
            "/v5/market/kline": self.kline,
            "/v5/market/mark-price-kline": self.mark_kline,
            "/v5/market/index-price-kline": self.index_kline,
        }
        private_get: dict[str, Handler] = {
            "/v5/account/wallet-balance": self.wallet_balance,
            "/v5/position/list": self.position_list,
            "/v5/order/realtime": self.order_realtime,
            "/v5/order/history": self.order_history,
            "/v5/execution/list": self.execution_list,
            "/v5/user/query-api": self.query_api,
            "/v5/account/info": self.account_info,
            "/v5/asset/coin/query-info": self.coin_info,
            "/v5/account/fee-rate": self.fee_rate,
            "/v5/position/closed-pnl": self.closed_pnl,
            "/v5/account/transaction-log": self.transaction_log,
        }
        private_post: dict[str, Handler] = {
            "/v5/order/create": self.order_create,
            "/v5/order/cancel": self.order_cancel,
            "/v5/order/cancel-all": self.order_cancel_all,
            "/v5/order/amend": self.order_amend,
            "/v5/order/create-batch": self.order_create_batch,
            "/v5/order/cancel-batch": self.order_cancel_batch,
            "/v5/position/set-leverage": self.set_leverage,
            "/v5/position/switch-isolated": self.switch_isolated,
            "/v5/position/switch-mode": self.switch_mode,
            "/v5/account/set-margin-mode": self.set_margin_mode,
        }
        for path, h in public.items():
            app.router.add_get(path, self._wrap(path, h, private=False))
        for path, h in private_get.items():
            app.router.add_get(path, self._wrap(path, h, private=True))
        for path, h in private_post.items():
            app.router.add_post(path, self._wrap(path, h, private=True))

    def _wrap(
        self, endpoint: str, handler: Handler, private: bool
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            if request.method == "POST":
                # Take the whole request in before any fault delays it: from here the exchange has it, so a
                # `latency` order is still placed when the client has given up or died meanwhile (as on a
                # real venue). aiohttp keeps the body for `_answer`; unread, it is lost with the connection.
                try:
                    await request.read()
                except ConnectionError:
                    return web.Response(status=400)  # never fully arrived: nothing to do
            faults = self.faults.decide(endpoint)
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            if faults.hang_s:
                await asyncio.sleep(faults.hang_s)
                if request.transport is None or request.transport.is_closing():
                    return web.Response(status=408)  # the client gave up: do nothing
            if faults.http_status is not None:
                reason = "Too Many Requests" if faults.http_status == 429 else "Service Unavailable"
                return web.Response(status=faults.http_status, text=f"{faults.http_status} {reason}")
            try:
                body = await self._answer(request, handler, private, faults)
            except EngineError as exc:
                body = envelope({}, exc.code, exc.message)
            if faults.drop_reply and request.transport is not None:
                request.transport.abort()  # the work is done, the client never hears
                return web.Response(status=204)
            return web.json_response(body)

        return serve

    async def _answer(self, request: web.Request, handler: Handler, private: bool, faults: Faults) -> dict[str, Any]:
        api_key = ""
        if request.method == "POST":
            raw = await request.text()
            try:
                params = json.loads(raw) if raw else {}
            except ValueError:
                raise EngineError(10001, "params error: body is not JSON") from None
            if not isinstance(params, dict):
                raise EngineError(10001, "params error: body must be an object")
        else:
            raw = request.rel_url.raw_query_string
            params = dict(request.query)
        if private:
            h = request.headers
            secrets = {k: a.secret for k, a in self.engine.accounts.items()}
            api_key = verify_request(
                secrets, h.get("X-BAPI-API-KEY"), h.get("X-BAPI-TIMESTAMP"), h.get("X-BAPI-RECV-WINDOW"),
                h.get("X-BAPI-SIGN"), raw, self.recv_window_max_ms,
            )
        who = api_key or (request.remote or "?")
        self.requests[api_key or "public"] += 1
        if not self.limiter.allow(who):
            raise EngineError(10006, "Too many visits. Exceeded the API Rate Limit.")
        self.engine.advance()
        result = handler(Ctx(params, api_key, faults))
        if isinstance(result, Batch):  # per-item outcomes go in retExtInfo, as on Bybit
            body = envelope({"list": result.items})
            body["retExtInfo"] = {"list": result.codes}
            return body
        return envelope(result)

    # ---- public --------------------------------------------------------------------------------
    def market_time(self, ctx: Ctx) -> Any:
        ns = time.time_ns()
        return {"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)}

    def _category(self, ctx: Ctx, allowed: tuple[str, ...] = ("spot", "linear", "inverse")) -> str:
        cat = str(ctx.params.get("category") or "")
        if cat not in allowed:
            raise EngineError(10001, f"params error: category {cat!r} invalid")
        return cat

    def instruments_info(self, ctx: Ctx) -> Any:
        cat = self._category(ctx)
        status = ctx.params.get("status")
        insts = self.engine.instruments_in(cat)
        if status and status != "Trading":
            insts = []
        if sym := ctx.params.get("symbol"):
            insts = [i for i in insts if i.id == sym]
        return {"category": cat, "list": [views.instrument_info(i) for i in insts], "nextPageCursor": ""}

    def tickers(self, ctx: Ctx) -> Any:
        cat = self._category(ctx)
        insts = self.engine.instruments_in(cat)
        if sym := ctx.params.get("symbol"):
            insts = [i for i in insts if i.id == sym]
            if not insts:
                raise EngineError(10001, "params error: symbol invalid")
        if base := ctx.params.get("baseCoin"):
            insts = [i for i in insts if i.base == base]
        return {"category": cat, "list": [views.ticker(self.engine, i) for i in insts]}

    def orderbook(self, ctx: Ctx) -> Any:
        cat = self._category(ctx)
        inst = self.engine.find_instrument(cat, str(ctx.params.get("symbol") or ""))
        return views.orderbook(self.engine, inst, int(ctx.params.get("limit") or 25))

    def recent_trade(self, ctx: Ctx) -> Any:
        """Public trades: the fills on this exchange (its only trades), newest first, taker's side."""
        cat = self._category(ctx)
        inst = self.engine.find_instrument(cat, str(ctx.params.get("symbol") or ""))
        limit = min(int(ctx.params.get("limit") or 60), 1000)
        trades = [e for e in reversed(self.engine.executions) if e.instrument is inst and e.exec_type == "Trade"]
        out = []
        for e in trades[:limit]:
            side = e.side if not e.is_maker else ("Sell" if e.side == "Buy" else "Buy")
            out.append({"execId": e.exec_id, "symbol": inst.id, "price": views.fmt(e.price), "size": views.fmt(e.qty),
                        "side": side, "time": str(e.time_ms), "isBlockTrade": False, "isRPITrade": False})
        return {"category": cat, "list": out}

    def funding_history(self, ctx: Ctx) -> Any:
        cat = self._category(ctx, ("linear", "inverse"))
        inst = self.engine.find_instrument(cat, str(ctx.params.get("symbol") or ""))
        start, end = ctx.params.get("startTime"), ctx.params.get("endTime")
        limit = min(int(ctx.params.get("limit") or 200), 200)
        rows = [(r, t) for i, r, t in reversed(self.engine.funding_events) if i is inst
                and (not start or t >= int(start)) and (not end or t <= int(end))]
        return {"category": cat, "list": [{"symbol": inst.id, "fundingRate": views.fmt(r),
                                           "fundingRateTimestamp": str(t)} for r, t in rows[:limit]]}

    def open_interest(self, ctx: Ctx) -> Any:
        """The current open interest only (the engine keeps no history of it)."""
        cat = self._category(ctx, ("linear", "inverse"))
        inst = self.engine.find_instrument(cat, str(ctx.params.get("symbol") or ""))
        return {"category": cat, "symbol": inst.id, "list": [
            {"openInterest": views.fmt(self.engine.open_interest(inst)), "timestamp": str(self.engine.now_ms())}],
            "nextPageCursor": ""}

    def risk_limit(self, ctx: Ctx) -> Any:
        cat = self._category(ctx, ("linear", "inverse"))
        insts = self.engine.instruments_in(cat)
        if sym := ctx.params.get("symbol"):
            insts = [i for i in insts if i.id == sym]
        mmr = self.engine.mmr
        return {"category": cat, "list": [
            {"id": 1, "symbol": i.id, "riskLimitValue": "2000000", "maintenanceMargin": views.fmt(mmr),
             "initialMargin": "0.01", "isLowestRisk": 1, "maxLeverage": "100.00", "mmDeduction": ""}
            for i in insts], "nextPageCursor": ""}

    def _candles(self, ctx: Ctx, index: bool) -> tuple[str, Instrument, int, list[klines.Candle]]:
        cat = self._category(ctx)
        inst = self.engine.find_instrument(cat, str(ctx.params.get("symbol") or ""))
        step = klines.interval_ms(str(ctx.params.get("interval") or ""))
        start, end = ctx.params.get("start"), ctx.params.get("end")
        limit = min(int(ctx.params.get("limit") or 200), 1000)
        history = self.engine.index_history[inst.base] if index else self.engine.price_history[inst.symbol]
        rows = klines.candles(list(history), step, int(start) if start else None,
                              int(end) if end else self.engine.now_ms(), limit, self.engine.start_ms)
        return cat, inst, step, rows

    def kline(self, ctx: Ctx) -> Any:
        cat, inst, step, rows = self._candles(ctx, index=False)
        out = []
        for t, o, h, lo, c in rows:
            qty, value = klines.volume(self.engine.executions, inst.symbol, t, step)
            out.append([str(t), *(views.fmt(x) for x in (o, h, lo, c, qty, value))])
        return {"category": cat, "symbol": inst.id, "list": out}

    def mark_kline(self, ctx: Ctx) -> Any:
        cat, inst, _, rows = self._candles(ctx, index=False)  # mark = the instrument's price here
        return {"category": cat, "symbol": inst.id,
                "list": [[str(t), views.fmt(o), views.fmt(h), views.fmt(lo), views.fmt(c)] for t, o, h, lo, c in rows]}

    def index_kline(self, ctx: Ctx) -> Any:
        cat, inst, _, rows = self._candles(ctx, index=True)
        return {"category": cat, "symbol": inst.id,
                "list": [[str(t), views.fmt(o), views.fmt(h), views.fmt(lo), views.fmt(c)] for t, o, h, lo, c in rows]}

    def system_status(self, ctx: Ctx) -> Any:
        return {"list": []}  # no maintenance announced

    # ---- private: account ----------------------------------------------------------------------
    def wallet_balance(self, ctx: Ctx) -> Any:
        acct = self.engine.account(ctx.api_key)
        kind = ctx.params.get("accountType")
        if kind not in ("UNIFIED", "CONTRACT", "SPOT"):
            raise EngineError(10001, "params error: accountType invalid")
        w = views.wallet(self.engine, acct)
        if coins := ctx.params.get("coin"):
            wanted = set(str(coins).split(","))
            w["coin"] = [c for c in w["coin"] if c["coin"] in wanted]
        return {"list": [w]}

    def query_api(self, ctx: Ctx) -> Any:
        key = ctx.api_key
        return {
            "id": "1", "note": "hedged emulator", "apiKey": key, "readOnly": 0, "secret": "",
            "permissions": {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"], "Wallet": [],
                            "Options": [], "Derivatives": [], "CopyTrading": [], "BlockTrade": [],
                            "Exchange": [], "NFT": []},
            "ips": ["*"], "type": 1, "deadlineDay": 90, "expiredAt": "", "createdAt": "",
            "unified": 0, "uta": 1, "userID": 1, "inviterID": 0, "vipLevel": "No VIP",
            "mktMakerLevel": "0", "affiliateID": 0,
        }

    def account_info(self, ctx: Ctx) -> Any:
        acct = self.engine.account(ctx.api_key)
        contracts = [i for i in self.engine.instruments.values() if i.is_contract]
        isolated = bool(contracts) and all(self.engine.margin_mode_of(acct, i) == "isolated" for i in contracts)
        return {"unifiedMarginStatus": 6, "marginMode": "ISOLATED_MARGIN" if isolated else "REGULAR_MARGIN",
                "isMasterTrader": False,
                "spotHedgingStatus": "OFF", "updatedTime": str(self.engine.start_ms), "dcpStatus": "OFF",
                "timeWindow": 10, "smpGroup": 0}

    def coin_info(self, ctx: Ctx) -> Any:
        coins = sorted({i.base for i in self.engine.instruments.values()}
                       | {i.quote for i in self.engine.instruments.values()})
        return {"rows": [{"name": c, "coin": c, "remainAmount": "1000000", "chains": []} for c in coins]}

    def fee_rate(self, ctx: Ctx) -> Any:
        cat = self._category(ctx)
        insts = self.engine.instruments_in(cat)
        if sym := ctx.params.get("symbol"):  # one symbol's own rate, not the whole category's
            insts = [i for i in insts if i.id == sym]
            if not insts:
                raise EngineError(10001, "params error: symbol invalid")
        if base := ctx.params.get("baseCoin"):
            insts = [i for i in insts if i.base == base]
        return {"list": [{"symbol": i.id, "baseCoin": i.base if cat == "option" else "",
                          "takerFeeRate": views.fmt(i.taker_fee), "makerFeeRate": views.fmt(i.maker_fee)}
                         for i in insts]}

    def closed_pnl(self, ctx: Ctx) -> Any:
        cat = self._category(ctx, ("linear", "inverse"))
        p = ctx.params
        start, end = p.get("startTime"), p.get("endTime")
        try:
            rows = ledger.closed_pnl(self.engine, ctx.api_key, cat, p.get("symbol") or None,
                                     int(start) if start else None, int(end) if end else None)
        except ValueError:
            raise EngineError(10001, "params error: startTime or endTime invalid") from None
        chunk, nxt = _page(rows, p, 50, 100)
        return {"category": cat, "list": chunk, "nextPageCursor": nxt}

    def transaction_log(self, ctx: Ctx) -> Any:
        p = ctx.params
        if p.get("accountType") not in (None, "", "UNIFIED"):
            raise EngineError(10001, "params error: accountType must be UNIFIED")
        if p.get("category"):
            self._category(ctx)
        try:
            rows = ledger.transaction_log(self.engine, ctx.api_key, p)
        except ValueError:
            raise EngineError(10001, "params error: startTime or endTime invalid") from None
        chunk, nxt = _page(rows, p, 20, 50)
        return {"list": chunk, "nextPageCursor": nxt}

    def _contract(self, ctx: Ctx) -> Instrument:
        cat = self._category(ctx, ("linear", "inverse"))
        return self.engine.find_instrument(cat, str(ctx.params.get("symbol") or ""))

    def set_leverage(self, ctx: Ctx) -> Any:
        inst = self._contract(ctx)
        lev = _dec(ctx.params, "buyLeverage")
        assert lev is not None
        sell = _dec(ctx.params, "sellLeverage", required=False)
        if sell is not None and sell != lev:
            raise EngineError(10001, "params error: buyLeverage must equal sellLeverage in one-way mode")
        if lev <= 0 or lev > 100:
            raise EngineError(10001, "params error: leverage invalid")
        if not self.engine.set_leverage(ctx.api_key, inst, lev):
            raise EngineError(110043, "Set leverage not modified")
        return {}

    def switch_isolated(self, ctx: Ctx) -> Any:
        """Classic accounts: tradeMode 0 cross / 1 isolated for one symbol, with its leverage."""
        inst = self._contract(ctx)
        mode = {"0": "cross", "1": "isolated"}.get(str(ctx.params.get("tradeMode")))
        if mode is None:
            raise EngineError(10001, "params error: tradeMode must be 0 or 1")
        if not self.engine.set_margin_mode(ctx.api_key, inst, mode):
            raise EngineError(110026, "Cross/isolated margin mode is not modified")
        if (lev := _dec(ctx.params, "buyLeverage", required=False)) is not None:
            self.engine.set_leverage(ctx.api_key, inst, lev)
        return {}

    def set_margin_mode(self, ctx: Ctx) -> Any:
        """Unified accounts: ISOLATED_MARGIN / REGULAR_MARGIN for every contract of the account."""
        wanted = str(ctx.params.get("setMarginMode"))
        mode = {"ISOLATED_MARGIN": "isolated", "REGULAR_MARGIN": "cross"}.get(wanted)
        if mode is None:
            raise EngineError(10001, "params error: setMarginMode must be ISOLATED_MARGIN or REGULAR_MARGIN")
        insts = [i for i in self.engine.instruments.values() if i.is_contract]
        acct = self.engine.account(ctx.api_key)
        blocked = [i for i in insts if self.engine.margin_mode_of(acct, i) != mode and (
            any(o.api_key == ctx.api_key and o.instrument is i for o in self.engine.open_orders.values())
            or (acct.positions.get(i.key) is not None and acct.positions[i.key].size != 0))]
        if blocked:
            return {"reasons": [{"reasonCode": "3400045", "reasonMsg": f"{i.id}: open orders or a position"}
                                for i in blocked]}
        for i in insts:
            self.engine.set_margin_mode(ctx.api_key, i, mode)
        return {"reasons": []}

    def switch_mode(self, ctx: Ctx) -> Any:
        """mode 0: one-way (merged single), 3: both sides (hedge mode)."""
        self._category(ctx, ("linear", "inverse"))
        mode = str(ctx.params.get("mode"))
        if mode not in ("0", "3"):
            raise EngineError(10001, "params error: mode must be 0 or 3")
        if not self.engine.set_hedge_mode(ctx.api_key, mode == "3"):
            raise EngineError(110025, "Position mode is not modified")
        return {}

    def position_list(self, ctx: Ctx) -> Any:
        cat = self._category(ctx, ("linear", "inverse"))
        acct = self.engine.account(ctx.api_key)
        sym = ctx.params.get("symbol")
        settle = ctx.params.get("settleCoin")
        base = ctx.params.get("baseCoin")
        if cat == "linear" and not (sym or settle or base):
            raise EngineError(10001, "params error: symbol or settleCoin is required")
        out = []
        for inst in self.engine.instruments_in(cat):
            if sym and inst.id != sym:
                continue
            if settle and inst.settle != settle:
                continue
            if base and inst.base != base:
                continue
            pos = acct.positions.get(inst.key)
            if pos is None and sym:
                pos = acct.position(inst)
            if pos is None or (pos.size == 0 and not sym):
                continue
            out.append(views.position(self.engine, acct, pos))
        chunk, nxt = _page(out, ctx.params, 20, 200)
        return {"category": cat, "list": chunk, "nextPageCursor": nxt}

    # ---- private: orders -----------------------------------------------------------------------
    def order_create(self, ctx: Ctx) -> Any:
        p = ctx.params
        cat = self._category(ctx)
        inst = self.engine.find_instrument(cat, str(p.get("symbol") or ""))
        if str(p.get("positionIdx", 0)) not in ("0", "") or self.engine.account(ctx.api_key).hedge_mode:
            raise EngineError(10001, "position idx not match position mode")
        if p.get("triggerPrice") or p.get("takeProfit") or p.get("stopLoss"):
            raise EngineError(10001, "params error: conditional orders are not emulated")
        order_type = str(p.get("orderType") or "")
        qty = _dec(p, "qty")
        assert qty is not None
        price = _dec(p, "price", required=order_type == "Limit")
        client_id = str(p.get("orderLinkId") or "")
        if len(client_id) > 36:
            raise EngineError(10001, "params error: orderLinkId is longer than 36 characters")
        f = ctx.faults
        o = self.engine.place_order(
            ctx.api_key, inst, str(p.get("side") or ""), order_type, qty,
            price if order_type == "Limit" else None,
            time_in_force=str(p.get("timeInForce") or ("IOC" if order_type == "Market" else "GTC")),
            reduce_only=_bool(p.get("reduceOnly", False)), client_id=client_id,
            market_unit=p.get("marketUnit"), post_only_reject=f.post_only_reject,
            partial_fill_ratio=f.partial_fill_ratio,
        )
        return {"orderId": o.order_id, "orderLinkId": o.client_id}

    def _order_ref(self, ctx: Ctx) -> tuple[Instrument, Any, Any]:
        """The instrument, orderId and orderLinkId an amend or cancel names (one of the ids at least)."""
        p = ctx.params
        inst = self.engine.find_instrument(self._category(ctx), str(p.get("symbol") or ""))
        oid, cid = p.get("orderId"), p.get("orderLinkId")
        if not oid and not cid:
            raise EngineError(10001, "params error: orderId or orderLinkId is required")
        return inst, oid, cid

    def order_amend(self, ctx: Ctx) -> Any:
        inst, oid, cid = self._order_ref(ctx)
        o = self.engine.amend_order(ctx.api_key, inst, oid, cid, qty=_dec(ctx.params, "qty", required=False),
                                    price=_dec(ctx.params, "price", required=False))
        return {"orderId": o.order_id, "orderLinkId": o.client_id}

    def _batch(self, ctx: Ctx, one: Callable[[Ctx], Any]) -> Batch:
        cat = self._category(ctx)
        reqs = ctx.params.get("request")
        if not isinstance(reqs, list) or not reqs or len(reqs) > 20:
            raise EngineError(10001, "params error: request must be a list of 1 to 20 orders")
        items, codes = [], []
        for r in reqs:
            if not isinstance(r, dict):
                raise EngineError(10001, "params error: each request must be an object")
            sub = Ctx({**r, "category": cat}, ctx.api_key, ctx.faults)
            try:
                res = one(sub)
                items.append({"category": cat, "symbol": r.get("symbol", ""), **res,
                              "createAt": str(self.engine.now_ms())})
                codes.append({"code": 0, "msg": "OK"})
            except EngineError as exc:
                items.append({"category": cat, "symbol": r.get("symbol", ""), "orderId": "",
                              "orderLinkId": str(r.get("orderLinkId") or ""), "createAt": ""})
                codes.append({"code": exc.code, "msg": exc.message})
        return Batch(items, codes)

    def order_create_batch(self, ctx: Ctx) -> Any:
        return self._batch(ctx, self.order_create)

    def order_cancel_batch(self, ctx: Ctx) -> Any:
        return self._batch(ctx, self.order_cancel)

    def order_cancel(self, ctx: Ctx) -> Any:
        inst, oid, cid = self._order_ref(ctx)
        o = self.engine.cancel_order(ctx.api_key, inst, oid, cid)
        return {"orderId": o.order_id, "orderLinkId": o.client_id}

    def order_cancel_all(self, ctx: Ctx) -> Any:
        cat = self._category(ctx)
        out = []
        for o in self._select_orders(ctx, cat, open_only=True):
            self.engine.cancel_order(ctx.api_key, o.instrument, o.order_id, None)
            out.append({"orderId": o.order_id, "orderLinkId": o.client_id})
        return {"list": out, "success": "1"}

    def _select_orders(self, ctx: Ctx, cat: str, open_only: bool) -> list[Order]:
        p = ctx.params
        sym, oid, cid = p.get("symbol"), p.get("orderId"), p.get("orderLinkId")
        settle, base = p.get("settleCoin"), p.get("baseCoin")
        out = []
        for o in reversed(self.engine.orders):
            inst = o.instrument
            if o.api_key != ctx.api_key or inst.category.value != cat:
                continue
            if (sym and inst.id != sym) or (settle and inst.settle != settle) or (base and inst.base != base):
                continue
            if (oid and o.order_id != oid) or (cid and o.client_id != cid):
                continue
            if open_only and not o.is_open:
                continue
            out.append(o)
        return out

    def order_realtime(self, ctx: Ctx) -> Any:
        """Open orders; with orderId/orderLinkId also a recent closed one, as on a unified account."""
        cat = self._category(ctx)
        p = ctx.params
        if cat != "spot" and not (p.get("symbol") or p.get("settleCoin") or p.get("baseCoin")):
            raise EngineError(10001, "params error: symbol, settleCoin or baseCoin is required")
        by_id = bool(p.get("orderId") or p.get("orderLinkId"))
        orders = self._select_orders(ctx, cat, open_only=not by_id)
        if by_id:
            recent = {o.order_id for o in self.engine.orders[-500:] if o.api_key == ctx.api_key}
            orders = [o for o in orders if o.is_open or o.order_id in recent]
        chunk, nxt = _page(orders, p, 20, 50)
        return {"category": cat, "list": [views.order(o) for o in chunk], "nextPageCursor": nxt}

    def order_history(self, ctx: Ctx) -> Any:
        cat = self._category(ctx)
        p = ctx.params
        orders = [o for o in self._select_orders(ctx, cat, open_only=False) if not o.is_open]
        status = p.get("orderStatus")
        if status:
            family = {"Cancelled": {"Cancelled", "PartiallyFilledCanceled"}}.get(status, {status})
            orders = [o for o in orders if o.status in family]
        start, end = p.get("startTime"), p.get("endTime")
        if start:
            orders = [o for o in orders if o.created_ms >= int(start)]
        if end:
            orders = [o for o in orders if o.created_ms <= int(end)]
        chunk, nxt = _page(orders, p, 20, 50)
        return {"category": cat, "list": [views.order(o) for o in chunk], "nextPageCursor": nxt}

    def execution_list(self, ctx: Ctx) -> Any:
        cat = self._category(ctx)
        p = ctx.params
        sym, oid, cid = p.get("symbol"), p.get("orderId"), p.get("orderLinkId")
        exec_type, base = p.get("execType"), p.get("baseCoin")
        start, end = p.get("startTime"), p.get("endTime")
        out = []
        for ex in reversed(self.engine.executions):
            inst = ex.instrument
            if ex.api_key != ctx.api_key or inst.category is not Category(cat):
                continue
            if (sym and inst.id != sym) or (base and inst.base != base):
                continue
            if (oid and ex.order_id != oid) or (cid and ex.client_id != cid):
                continue
            if exec_type and ex.exec_type != exec_type:
                continue
            if (start and ex.time_ms < int(start)) or (end and ex.time_ms > int(end)):
                continue
            out.append(ex)
        chunk, nxt = _page(out, p, 50, 100)
        return {"category": cat, "list": [views.execution(e) for e in chunk], "nextPageCursor": nxt}
