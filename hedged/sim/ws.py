"""The Bybit v5 WebSocket front for ccxt.pro: public tickers, orderbook and publicTrade; private order,
execution, position and wallet topics; auth (HMAC of "GET/realtime" + expires); ping/pong.

Engine events arrive synchronously; each connection has a queue and a writer task so messages keep
their order (hedged/sim/wsconn.py, with the faults). Wallet updates are coalesced per loop iteration (a fill
emits several).
"""

from __future__ import annotations

import hmac
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from hedged.sim import klines, views
from hedged.sim.auth import sign
from hedged.sim.engine import Engine
from hedged.sim.instruments import Instrument
from hedged.sim.orders import Execution, Order
from hedged.sim.wsconn import Frame, WsConn, WsConns

PRIVATE_TOPICS = frozenset({"order", "execution", "position", "wallet"})
_ids = itertools.count(1)


@dataclass(eq=False)
class Conn(WsConn):
    channel: str  # "spot" | "linear" | "inverse" | "private"
    conn_id: str
    topics: set[str] = field(default_factory=set)

    def push(self, msg: dict[str, Any]) -> None:
        topic = str(msg.get("topic", ""))
        if not any(topic.startswith(p) for p in self.stalled):  # withheld topics: "wallet", "tickers."…
            self.enqueue(Frame(msg, str(msg.get("topic", msg.get("op", ""))).split(".")[0]))


def _now() -> int:
    return int(time.time() * 1000)


class WsFront(WsConns[Conn]):
    """Registers the WS routes and fans engine events out to subscribed connections. `sent` counts messages
    written by topic kind ("tickers", "wallet", "pong"…)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        self._dirty_wallets: set[str] = set()
        # tickers and positions move on every engine tick (600 a second at the demo's speed): like wallets,
        # they are coalesced per loop turn to the latest state, as the venue pushes at most every 100 ms
        self._dirty_tickers: dict[str, Instrument] = {}
        self._dirty_positions: dict[tuple[str, str], Any] = {}
        self.refused: set[str] = set()  # channels whose new connections get a 503
        engine.listeners.append(self.on_event)
        # kline subscriptions: connection → topic → (instrument, interval ms, start of the last bucket pushed)
        self._klines: dict[Conn, dict[str, tuple[Instrument, int, int]]] = {}
        engine.listeners.append(self._on_kline_event)

    def routes(self, app: web.Application) -> None:
        for channel in ("spot", "linear", "inverse"):
            app.router.add_get(f"/v5/public/{channel}", self._handler(channel))
        app.router.add_get("/v5/private", self._handler("private"))

    def _channel(self, conn: Conn) -> str:
        return conn.channel

    # ---- faults (tests and the admin API; drop_silently, stall and close: WsConns) -----------------
    def disconnect(self, *, channel: str | None = None, api_key: str | None = None) -> int:
        """Reset matching connections (TCP abort, no close frame): the client sees the socket fail at once,
        as when the venue restarts a gateway. Returns how many were reset."""
        return sum(c.abort() for c in self._matching(channel, api_key))

    def refuse(self, channel: str) -> None:
        """Refuse new connections on `channel` (HTTP 503 on the upgrade) until `accept`: a venue whose
        gateway is down; live connections are untouched (drop or reset them to force a reconnect)."""
        self.refused.add(channel)

    def accept(self) -> None:
        self.refused.clear()

    def _handler(self, channel: str) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            if channel in self.refused:
                return web.Response(status=503, text="gateway unavailable")
            ws = web.WebSocketResponse(autoping=True)
            await ws.prepare(request)
            await self.serve(Conn(channel, f"sim-{next(_ids)}", ws=ws), self._on_message)
            return ws

        return handle

    # ---- requests from the client --------------------------------------------------------------
    def _on_message(self, conn: Conn, data: dict[str, Any]) -> None:
        op = data.get("op")
        req_id = data.get("req_id")
        if op == "ping":
            if conn.channel == "private":
                conn.push({"req_id": req_id, "op": "pong", "args": [str(_now())], "conn_id": conn.conn_id})
            else:
                conn.push({"success": True, "ret_msg": "pong", "conn_id": conn.conn_id, "req_id": req_id,
                           "op": "ping"})
        elif op == "auth":
            self._auth(conn, data.get("args") or [])
        elif op in ("subscribe", "unsubscribe") and _kline_request(data.get("args")):
            self._subscribe_klines(conn, op, req_id, [str(a) for a in data.get("args") or []])
        elif op in ("subscribe", "unsubscribe"):
            self._subscribe(conn, op, req_id, [str(a) for a in data.get("args") or []])

    def _auth(self, conn: Conn, args: list[Any]) -> None:
        ok = False
        msg = "Invalid apikey"
        if conn.channel == "private" and len(args) == 3:
            key, expires, signature = str(args[0]), str(args[1]), str(args[2])
            acct = self.engine.accounts.get(key)
            if acct is not None:
                if not expires.isdigit() or int(expires) < _now():
                    msg = "Params Error"  # expired
                elif hmac.compare_digest(sign(acct.secret, "GET/realtime" + expires), signature.lower()):
                    ok = True
                    conn.api_key = key
                else:
                    msg = "Invalid sign"
        reply: dict[str, Any] = {"success": ok, "ret_msg": "" if ok else msg, "op": "auth", "conn_id": conn.conn_id}
        if not ok:
            reply["request"] = {"op": "auth"}  # ccxt reads request.op to raise AuthenticationError
        conn.push(reply)

    def _subscribe(self, conn: Conn, op: str, req_id: Any, topics: list[str]) -> None:
        bad = []
        for t in topics:
            if conn.channel == "private":
                valid = t in PRIVATE_TOPICS and conn.api_key is not None
            else:
                valid = self._topic_inst(conn.channel, t) is not None
            if not valid:
                bad.append(t)
        ok = not bad
        conn.push({"success": ok, "ret_msg": "" if ok else f"Invalid topics: {','.join(bad)}",
                   "conn_id": conn.conn_id, "req_id": req_id, "op": op})
        if not ok:
            return
        for t in topics:
            if op == "subscribe":
                conn.topics.add(t)
                inst = self._topic_inst(conn.channel, t)
                if inst is not None and t.startswith("tickers."):
                    conn.push(self._ticker_msg(inst))
                elif inst is not None and t.startswith("orderbook."):
                    conn.push(self._book_msg(t, inst))
            else:
                conn.topics.discard(t)

    def _topic_inst(self, channel: str, topic: str) -> Instrument | None:
        """The instrument of a public topic: tickers.X, orderbook.<depth>.X, publicTrade.X."""
        parts = topic.split(".")
        if len(parts) == 2 and parts[0] in ("tickers", "publicTrade"):
            return self._public_inst(channel, parts[1])
        if len(parts) == 3 and parts[0] == "orderbook" and parts[1].isdigit() and int(parts[1]) > 0:
            return self._public_inst(channel, parts[2])
        return None

    def _book_msg(self, topic: str, inst: Instrument) -> dict[str, Any]:
        depth = int(topic.split(".")[1])
        return {"topic": topic, "type": "snapshot", "data": views.orderbook(self.engine, inst, depth),
                "cts": self.engine.now_ms(), "ts": _now()}

    def _public(self, inst: Instrument, prefix: str, make: Any) -> None:
        """Push to every public subscriber of one of the instrument's topics starting with `prefix`."""
        for conn in list(self.conns):
            if conn.channel != inst.category.value:
                continue
            for t in conn.topics:
                if t.startswith(prefix) and t.endswith("." + inst.id):
                    conn.push(make(t))

    def _public_inst(self, channel: str, symbol_id: str) -> Instrument | None:
        for inst in self.engine.instruments_in(channel):
            if inst.id == symbol_id:
                return inst
        return None

    # ---- pushes --------------------------------------------------------------------------------
    def _ticker_msg(self, inst: Instrument) -> dict[str, Any]:
        return {"topic": f"tickers.{inst.id}", "type": "snapshot", "data": views.ticker(self.engine, inst),
                "cs": self.engine.seq, "ts": _now()}

    def push_tickers(self) -> None:
        """Periodic snapshot of every subscribed ticker (the venue streams them continuously)."""
        for conn in list(self.conns):
            if conn.channel == "private":
                continue
            for t in conn.topics:
                inst = self._public_inst(conn.channel, t[8:])
                if inst is not None:
                    conn.push(self._ticker_msg(inst))

    def _private(self, api_key: str, topic: str, data: list[dict[str, Any]]) -> None:
        msg = {"id": f"{topic}-{self.engine.seq}", "topic": topic, "creationTime": _now(), "data": data}
        for conn in list(self.conns):
            if conn.api_key == api_key and topic in conn.topics:
                conn.push(msg)

    def on_event(self, kind: str, api_key: str | None, payload: Any) -> None:
        if not self.conns:
            return
        if kind == "ticker" and isinstance(payload, Instrument):
            self._dirty_tickers[payload.symbol] = payload
            self._schedule_flush()
            return
        if kind == "execution" and isinstance(payload, Execution) and payload.exec_type == "Trade":
            trade = views.public_trade(payload)
            self._public(payload.instrument, "publicTrade.", lambda t: {
                "topic": t, "type": "snapshot", "ts": _now(), "data": [trade]})
        if api_key is None:
            return
        if kind == "order" and isinstance(payload, Order):
            self._private(api_key, "order", [views.order(payload, with_category=True)])
        elif kind == "execution" and isinstance(payload, Execution):
            self._private(api_key, "execution", [views.execution(payload, with_category=True)])
        elif kind == "position":
            self._dirty_positions[(api_key, payload.instrument.symbol)] = payload
            self._schedule_flush()
        elif kind == "wallet":
            self._dirty_wallets.add(api_key)
            self._schedule_flush()

    def _flush(self) -> None:
        """Latest tickers (and books), then positions, then wallets: after the order and execution messages
        that caused them, as the venue orders them."""
        tickers, self._dirty_tickers = self._dirty_tickers, {}
        for inst in tickers.values():
            topic = f"tickers.{inst.id}"
            subscribed = [c for c in self.conns if c.channel == inst.category.value and topic in c.topics]
            if subscribed:
                msg = self._ticker_msg(inst)
                for conn in subscribed:
                    conn.push(msg)
            self._public(inst, "orderbook.", lambda t, inst=inst: self._book_msg(t, inst))  # the touch moved
        positions, self._dirty_positions = self._dirty_positions, {}
        for (key, _), pos in positions.items():
            acct = self.engine.accounts.get(key)
            if acct is not None:
                self._private(key, "position", [views.position(self.engine, acct, pos, with_category=True)])
        keys, self._dirty_wallets = self._dirty_wallets, set()
        for key in keys:
            acct = self.engine.accounts.get(key)
            if acct is not None:
                self._private(key, "wallet", [views.wallet(self.engine, acct)])

    # ---- kline.{interval}.{symbol} -------------------------------------------------------------
    def _subscribe_klines(self, conn: Conn, op: str, req_id: Any, topics: list[str]) -> None:
        """Subscribe answers with the current candle; it is pushed again whenever the instrument's price
        moves or it trades; once the next bucket starts, the same message carries the finished bucket's last
        state first, with confirm=true (one message: ccxt.pro wakes a watcher once per message)."""
        found = {t: self._kline_topic(conn.channel, t) for t in topics}
        bad = [t for t, v in found.items() if v is None]
        conn.push({"success": not bad, "ret_msg": f"Invalid topics: {','.join(bad)}" if bad else "",
                   "conn_id": conn.conn_id, "req_id": req_id, "op": op})
        if bad:
            return
        subs = self._klines.setdefault(conn, {})
        for t, v in found.items():
            if v is None:
                continue
            if op == "unsubscribe":
                subs.pop(t, None)
                continue
            inst, step = v
            bucket = self.engine.now_ms() // step * step
            subs[t] = (inst, step, bucket)
            conn.push(self._kline_msg(t, inst, step, bucket, confirm=False))

    def _kline_topic(self, channel: str, topic: str) -> tuple[Instrument, int] | None:
        parts = topic.split(".")
        if len(parts) != 3 or parts[1] not in klines.INTERVALS_MS:
            return None
        inst = self._public_inst(channel, parts[2])
        return (inst, klines.INTERVALS_MS[parts[1]]) if inst is not None else None

    def _kline_msg(self, topic: str, inst: Instrument, step: int, bucket: int, confirm: bool) -> dict[str, Any]:
        eng = self.engine
        now = eng.now_ms()
        rows = klines.candles(list(eng.price_history[inst.symbol]), step, bucket, bucket, 1, eng.start_ms)
        _, o, h, lo, c = rows[0] if rows else (bucket, inst.price, inst.price, inst.price, inst.price)
        qty, value = klines.volume(eng.executions, inst.symbol, bucket, step)
        interval = topic.split(".")[1]
        return {"topic": topic, "type": "snapshot", "ts": now, "data": [{
            "start": bucket, "end": bucket + step - 1, "interval": interval, "open": views.fmt(o),
            "close": views.fmt(c), "high": views.fmt(h), "low": views.fmt(lo), "volume": views.fmt(qty),
            "turnover": views.fmt(value), "confirm": confirm, "timestamp": now}]}

    def _on_kline_event(self, kind: str, _api_key: str | None, payload: Any) -> None:
        if not self._klines:
            return
        if kind == "ticker" and isinstance(payload, Instrument):
            inst = payload
        elif kind == "execution" and isinstance(payload, Execution) and payload.exec_type == "Trade":
            inst = payload.instrument
        else:
            return
        now = self.engine.now_ms()
        for conn, subs in list(self._klines.items()):
            if conn not in self.conns:
                del self._klines[conn]
                continue
            for topic, (sub_inst, step, last) in list(subs.items()):
                if sub_inst is not inst:
                    continue
                bucket = now // step * step
                msg = self._kline_msg(topic, inst, step, bucket, confirm=False)
                if bucket > last:  # the bucket last pushed is over: its final state, confirmed, goes first
                    msg["data"][:0] = self._kline_msg(topic, inst, step, last, confirm=True)["data"]
                    subs[topic] = (inst, step, bucket)
                conn.push(msg)


def _kline_request(args: Any) -> bool:
    """A (un)subscribe whose topics are all kline topics (ccxt sends one symbol's per request)."""
    return isinstance(args, list) and bool(args) and all(str(a).startswith("kline.") for a in args)
