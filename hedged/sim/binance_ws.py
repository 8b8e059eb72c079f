"""The Binance COIN-M WebSocket front for ccxt.pro (`binancecoinm`): market streams and the user data stream.

Market streams on `/dstream/ws[/<stream>]` (raw) and `/dstream/stream?streams=a/b` (combined, each message
wrapped as `{"stream", "data"}`), subscribed with `{"method": "SUBSCRIBE", "params": [...], "id": n}`:
`<symbol>@markPrice[@1s]` (markPriceUpdate), `<symbol>@bookTicker`, `<symbol>@aggTrade`, `<symbol>@ticker`
(24hrTicker), `<symbol>@miniTicker` and `<symbol>@depth[5|10|20][@100ms|@500ms]` (depthUpdate). The user data stream is
`/dstream/ws/<listenKey>`: the key comes from `POST /dapi/v1/listenKey` (hedged/sim/binance.py), lives 60 minutes
of exchange time, `PUT` extends it by 60 minutes; at expiry the stream gets `listenKeyExpired` and is closed.
It carries `ORDER_TRADE_UPDATE` on every order state change (NEW, TRADE, CANCELED, EXPIRED) and
`ACCOUNT_UPDATE` on every fill (reason ORDER), funding payment (FUNDING_FEE) and credit or debit of the wallet
(DEPOSIT / WITHDRAW, the admin API); a price move alone changes no wallet balance and sends none, as on Binance.

Engine events arrive synchronously; account updates are coalesced per loop iteration (a fill emits several).
Connections, their writers and faults as on the Bybit front (hedged/sim/wsconn.py): `drop_silently`
black-holes connections, `stall(prefix)` withholds an event type ("ACCOUNT_UPDATE") or a stream
("btcusd_perp@markPrice") while the rest flows.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from hedged.sim import binance_views as bv
from hedged.sim.accounts import Account, Position
from hedged.sim.engine import Engine
from hedged.sim.instruments import ZERO, Category, Instrument
from hedged.sim.orders import Execution, Order
from hedged.sim.views import fmt
from hedged.sim.wsconn import Frame, WsConn, WsConns

LISTEN_KEY_TTL_MS = 60 * 60 * 1000
InstKey = tuple[Category, str]  # Instrument.key


@dataclass
class ListenKey:
    key: str
    api_key: str
    expires_ms: int


class ListenKeys:
    """One user-data listen key per API key, expiring on the exchange's clock (manual in tests)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.by_api_key: dict[str, ListenKey] = {}
        self.issued: set[str] = set()  # every key ever handed out (an expired one is refused, not a stream)
        self.calls: Counter[str] = Counter()  # create / keepalive / delete / expired

    def active(self, key: str) -> ListenKey | None:
        for lk in self.by_api_key.values():
            if lk.key == key and lk.expires_ms > self.engine.now_ms():
                return lk
        return None

    def create(self, api_key: str) -> str:
        self.calls["create"] += 1
        lk = self.by_api_key.get(api_key)
        if lk is None or lk.expires_ms <= self.engine.now_ms():
            lk = ListenKey(secrets.token_hex(32), api_key, 0)
            self.by_api_key[api_key] = lk
            self.issued.add(lk.key)
        lk.expires_ms = self.engine.now_ms() + LISTEN_KEY_TTL_MS
        return lk.key

    def keepalive(self, api_key: str) -> str | None:
        lk = self.by_api_key.get(api_key)
        if lk is None or lk.expires_ms <= self.engine.now_ms():
            return None
        self.calls["keepalive"] += 1
        lk.expires_ms = self.engine.now_ms() + LISTEN_KEY_TTL_MS
        return lk.key

    def delete(self, api_key: str) -> None:
        self.calls["delete"] += 1
        self.by_api_key.pop(api_key, None)

    def expire(self) -> list[ListenKey]:
        """Keys past their validity, removed; their streams are to be told and closed."""
        now = self.engine.now_ms()
        gone = [lk for lk in self.by_api_key.values() if lk.expires_ms <= now]
        for lk in gone:
            del self.by_api_key[lk.api_key]
            self.calls["expired"] += 1
        return gone


@dataclass(eq=False)
class Conn(WsConn):
    """`api_key` set: the user data stream of this key; `stalled`: event types or stream-name prefixes."""

    combined: bool
    listen_key: str | None = None
    streams: set[str] = field(default_factory=set)
    books: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)  # diff depth: last sent levels
    last_u: dict[str, int] = field(default_factory=dict)

    @property
    def private(self) -> bool:
        return self.api_key is not None

    def push(self, stream: str, msg: dict[str, Any]) -> None:
        kind = str(msg.get("e", ""))
        if any(stream.startswith(p) or kind == p for p in self.stalled):
            return
        wrap = self.combined and stream and "result" not in msg and "error" not in msg
        self.enqueue(Frame({"stream": stream, "data": msg} if wrap else msg, str(msg.get("e", "reply")),
                           last=kind == "listenKeyExpired"))  # the stream closes once it is told


@dataclass
class _Dirty:
    order: set[InstKey] = field(default_factory=set)  # instrument keys traded: their positions go with the update
    funding: bool = False


class BinanceWsFront(WsConns[Conn]):
    """Registers /dstream routes and fans engine events out to subscribed connections. `sent` counts messages
    written by event type ("ACCOUNT_UPDATE", "bookTicker"…; "reply" for answers to requests)."""

    def __init__(self, engine: Engine, keys: ListenKeys) -> None:
        super().__init__()
        self.engine = engine
        self.keys = keys
        self._announced: set[str] = set()  # orders whose NEW went out
        self._dirty: dict[str, _Dirty] = {}
        # per account: the wallet balances and positions the last ACCOUNT_UPDATE reflected
        self._wallets: dict[str, dict[str, Decimal]] = {}
        self._positions: dict[str, dict[InstKey, tuple[Decimal, Decimal]]] = {}
        engine.listeners.append(self.on_event)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/dstream/ws", self._handle)
        app.router.add_get("/dstream/ws/{name}", self._handle)
        app.router.add_get("/dstream/stream", self._handle)

    def _channel(self, conn: Conn) -> str:
        """What `drop_silently(channel=…)` matches: "private" = user data, "public" = market."""
        return "private" if conn.private else "public"

    # ---- connections -----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name", "")
        combined = request.path.endswith("/stream")
        conn_key: tuple[str, str] | None = None
        streams: list[str] = []
        if name in self.keys.issued or (len(name) == 64 and "@" not in name):
            lk = self.keys.active(name)
            if lk is None:
                return web.json_response({"code": -1125, "msg": "This listenKey does not exist."}, status=400)
            conn_key = (lk.api_key, lk.key)
        elif name:
            streams = [name]
        elif combined:
            streams = [s for s in request.query.get("streams", "").split("/") if s]
        # a path that names no stream (ccxt's `/ws/0`, a connection index) opens an empty connection
        streams = [s for s in streams if self._stream_inst(s) is not None]
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = Conn(combined, ws=ws)
        if conn_key is not None:
            conn.api_key, conn.listen_key = conn_key
            acct = self.engine.accounts.get(conn.api_key)
            if acct is not None and conn.api_key not in self._wallets:  # updates report changes from here on
                self._wallets[conn.api_key], self._positions[conn.api_key] = self._state(acct)
        conn.streams.update(streams)
        for s in streams:
            self._snapshot(conn, s)
        await self.serve(conn, self._on_request)
        return ws

    def _on_request(self, conn: Conn, data: dict[str, Any]) -> None:
        if conn.private:  # the user data stream takes no requests
            return
        method, req_id = data.get("method"), data.get("id")
        params = data.get("params")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            names = [str(p) for p in params] if isinstance(params, list) else []
            bad = [s for s in names if self._stream_inst(s) is None]
            if bad or not names:
                conn.push("", {"error": {"code": 2, "msg": f"Invalid request: invalid stream {','.join(bad)}"},
                               "id": req_id})
                return
            conn.push("", {"result": None, "id": req_id})
            for s in names:
                if method == "SUBSCRIBE":
                    conn.streams.add(s)
                    self._snapshot(conn, s)
                else:
                    conn.streams.discard(s)
        elif method == "LIST_SUBSCRIPTIONS":
            conn.push("", {"result": sorted(conn.streams), "id": req_id})
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            conn.push("", {"result": None if method == "SET_PROPERTY" else False, "id": req_id})
        else:
            conn.push("", {"error": {"code": 2, "msg": "Invalid request: unknown method"}, "id": req_id})

    # ---- market streams --------------------------------------------------------------------------
    def _stream_inst(self, stream: str) -> Instrument | None:
        sym, _, kind = stream.partition("@")
        if _kind(kind) is None:
            return None
        for inst in self.engine.instruments_in(Category.INVERSE.value):
            if bv.symbol_id(inst).lower() == sym:
                return inst
        return None

    def _snapshot(self, conn: Conn, stream: str) -> None:
        """What a live market sends within moments of a subscription: the current mark, touch, book."""
        inst = self._stream_inst(stream)
        kind = _kind(stream.partition("@")[2])
        if inst is not None and kind in ("markPrice", "bookTicker", "ticker", "miniTicker", "depth"):
            self._push_stream(conn, stream, inst, kind)

    def _push_stream(self, conn: Conn, stream: str, inst: Instrument, kind: str) -> None:
        eng = self.engine
        now = eng.now_ms()
        sid = bv.symbol_id(inst)
        if kind == "markPrice":
            conn.push(stream, {"e": "markPriceUpdate", "E": now, "s": sid, "p": fmt(inst.price),
                               "i": fmt(eng.index[inst.base]), "P": fmt(eng.index[inst.base]),
                               "r": fmt(inst.funding_rate), "T": inst.next_funding_ms})
        elif kind == "bookTicker":
            conn.push(stream, {"e": "bookTicker", "u": eng.seq, "s": sid, "ps": inst.base + inst.quote,
                               "b": fmt(inst.bid), "B": fmt(inst.level_qty(inst.bid)), "a": fmt(inst.ask),
                               "A": fmt(inst.level_qty(inst.ask)), "T": now, "E": now})
        elif kind == "ticker":
            t = bv.ticker_24h(eng, inst)
            conn.push(stream, {"e": "24hrTicker", "E": now, "s": sid, "ps": inst.base + inst.quote,
                               "p": t["priceChange"], "P": t["priceChangePercent"], "w": t["weightedAvgPrice"],
                               "c": t["lastPrice"], "Q": t["lastQty"], "o": t["openPrice"], "h": t["highPrice"],
                               "l": t["lowPrice"], "v": t["volume"], "q": t["baseVolume"], "O": t["openTime"],
                               "C": t["closeTime"], "F": t["firstId"], "L": t["lastId"], "n": t["count"]})
        elif kind == "miniTicker":
            t = bv.ticker_24h(eng, inst)
            conn.push(stream, {"e": "24hrMiniTicker", "E": now, "s": sid, "ps": inst.base + inst.quote,
                               "c": t["lastPrice"], "o": t["openPrice"], "h": t["highPrice"], "l": t["lowPrice"],
                               "v": t["volume"], "q": t["baseVolume"]})
        elif kind == "depth":
            self._push_depth(conn, stream, inst)

    def _push_depth(self, conn: Conn, stream: str, inst: Instrument) -> None:
        """Partial depth (`@depth5`): the top levels each time. Diff depth (`@depth`): the levels that changed
        since the last message, gone ones with quantity 0, with U/u/pu chained as Binance does, u being the
        engine's sequence (REST `depth` answers it as lastUpdateId)."""
        now = self.engine.now_ms()
        tail = stream.partition("@")[2].split("@")[0]
        levels = int(tail[5:]) if tail[5:].isdigit() else inst.levels  # diff: every level REST can show
        book = bv.depth(self.engine, inst, levels)
        sid = bv.symbol_id(inst)
        u = self.engine.seq
        prev = conn.last_u.get(stream, u - 1)
        if u <= prev:
            u = prev + 1
        msg: dict[str, Any] = {"e": "depthUpdate", "E": now, "T": now, "s": sid, "ps": inst.base + inst.quote,
                               "U": prev + 1, "u": u, "pu": prev}
        if tail[5:].isdigit():
            msg["b"], msg["a"] = book["bids"], book["asks"]
        else:
            before = conn.books.get(stream, {"b": {}, "a": {}})
            after = {"b": {p: q for p, q in book["bids"]}, "a": {p: q for p, q in book["asks"]}}
            for side in ("b", "a"):
                changed = [[p, q] for p, q in after[side].items() if before[side].get(p) != q]
                changed += [[p, "0"] for p in before[side] if p not in after[side]]
                msg[side] = changed
            conn.books[stream] = after
        conn.last_u[stream] = u
        conn.push(stream, msg)

    def _market(self, inst: Instrument, kinds: tuple[str, ...]) -> None:
        sid = bv.symbol_id(inst).lower()
        for conn in list(self.conns):
            if conn.private:
                continue
            for s in list(conn.streams):
                kind = _kind(s.partition("@")[2])
                if kind in kinds and s.startswith(sid + "@"):
                    self._push_stream(conn, s, inst, kind)

    def tick(self) -> None:
        """Every second of the emulator's loop: expire listen keys; mark price (`@1s`) and touch updates."""
        self.expire_keys()
        for inst in self.engine.instruments_in(Category.INVERSE.value):
            self._market(inst, ("markPrice", "bookTicker"))

    def expire_keys(self) -> None:
        """Expire what the exchange clock says is due: `listenKeyExpired` on the stream, which then closes.
        The emulator's loop calls it; tests that step the manual clock may call it at once."""
        for lk in self.keys.expire():
            for conn in list(self.conns):
                if conn.listen_key == lk.key:
                    conn.push("", {"e": "listenKeyExpired", "E": self.engine.now_ms(), "listenKey": lk.key})

    # ---- engine events ---------------------------------------------------------------------------
    def on_event(self, kind: str, api_key: str | None, payload: Any) -> None:
        if kind == "ticker" and isinstance(payload, Instrument) and payload.inverse:
            self._market(payload, ("markPrice", "bookTicker", "ticker", "miniTicker", "depth"))
            return
        if kind == "execution" and isinstance(payload, Execution) and payload.exec_type == "Trade" \
                and payload.instrument.inverse:
            self._agg_trade(payload)
        if api_key is None or api_key.endswith(":spot"):
            return
        if kind == "order" and isinstance(payload, Order) and payload.instrument.inverse:
            self._order(api_key, payload)
        elif kind == "execution" and isinstance(payload, Execution) and payload.instrument.inverse:
            dirty = self._dirty.setdefault(api_key, _Dirty())
            if payload.exec_type == "Trade":
                self._trade(api_key, payload)
                dirty.order.add(payload.instrument.key)
            elif payload.exec_type == "Funding":
                dirty.funding = True
            self._schedule_flush()
        elif kind in ("wallet", "position"):
            self._dirty.setdefault(api_key, _Dirty())
            self._schedule_flush()

    def _agg_trade(self, ex: Execution) -> None:
        stream = bv.symbol_id(ex.instrument).lower() + "@aggTrade"
        tid = bv.numeric_id(ex.exec_id)
        buyer_maker = (ex.side == "Buy") == ex.is_maker
        msg = {"e": "aggTrade", "E": ex.time_ms, "a": tid, "s": bv.symbol_id(ex.instrument), "p": fmt(ex.price),
               "q": fmt(ex.qty), "f": tid, "l": tid, "T": ex.time_ms, "m": buyer_maker}
        for conn in list(self.conns):
            if stream in conn.streams:
                conn.push(stream, msg)

    def _user(self, api_key: str, msg: dict[str, Any]) -> None:
        for conn in list(self.conns):
            if conn.api_key == api_key:
                conn.push("", msg)

    def _order_msg(self, o: Order, x: str, ex: Execution | None = None) -> dict[str, Any]:
        d = bv.order(o)
        status = d["status"]
        if x == "NEW":
            status = "NEW"
        now = self.engine.now_ms()
        body: dict[str, Any] = {
            "s": d["symbol"], "c": o.client_id, "S": d["side"], "o": d["type"], "f": d["timeInForce"],
            "q": d["origQty"], "p": d["price"], "ap": d["avgPrice"] if o.filled else "0", "sp": "0", "x": x,
            "X": status, "i": d["orderId"], "l": fmt(ex.qty) if ex else "0",
            "z": fmt(o.filled) if x != "NEW" else "0", "L": fmt(ex.price) if ex else "0",
            "ma": o.instrument.base, "N": ex.fee_coin if ex else o.instrument.base, "n": fmt(ex.fee) if ex else "0",
            "T": ex.time_ms if ex else now, "t": bv.numeric_id(ex.exec_id) if ex else 0, "rp": fmt(ex.realised) if ex
            else "0", "b": "0", "a": "0", "m": ex.is_maker if ex else False, "R": o.reduce_only,
            "wt": "CONTRACT_PRICE", "ot": d["type"], "ps": "BOTH", "cp": False, "pP": False, "si": 0, "ss": 0,
            "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0,
        }
        return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": body["T"], "i": "SfsR", "o": body}

    def _order(self, api_key: str, o: Order) -> None:
        if o.status == "New":
            x = "AMENDMENT" if o.order_id in self._announced else "NEW"
            self._announced.add(o.order_id)
            self._user(api_key, self._order_msg(o, x))
        elif o.status in ("Cancelled", "PartiallyFilledCanceled", "Rejected"):
            if o.order_id not in self._announced:  # refused before it rested: Binance never lists it
                self._announced.add(o.order_id)
                self._user(api_key, self._order_msg(o, "NEW"))
            expired = o.reject_reason in ("EC_CancelForNoFullFill", "EC_ReduceOnlySetButNotClosePosition")
            self._user(api_key, self._order_msg(o, "EXPIRED" if expired else "CANCELED"))
        # PartiallyFilled / Filled: the execution that follows carries it (x=TRADE)

    def _trade(self, api_key: str, ex: Execution) -> None:
        o = self.engine.orders_by_id.get(ex.order_id)
        if o is None:
            return
        if o.order_id not in self._announced:  # filled on arrival: Binance still says NEW first
            self._announced.add(o.order_id)
            self._user(api_key, self._order_msg(o, "NEW"))
        self._user(api_key, self._order_msg(o, "TRADE", ex))

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        for key, d in dirty.items():
            acct = self.engine.accounts.get(key)
            if acct is not None:
                self._account_update(acct, d)

    def _state(self, acct: Account) -> tuple[dict[str, Decimal], dict[InstKey, tuple[Decimal, Decimal]]]:
        """Wallet balance per coin and (size, entry) per COIN-M position: what an ACCOUNT_UPDATE reports."""
        insts = self.engine.instruments_in(Category.INVERSE.value)
        coins = sorted(set(acct.wallet) | {i.base for i in insts if i.key in acct.positions})
        wallets = {c: self.engine.coin_summary(acct, c).wallet for c in coins}
        positions = {i.key: (p.size, p.entry) for i in insts if (p := acct.positions.get(i.key)) is not None}
        return wallets, positions

    def _account_update(self, acct: Account, d: _Dirty) -> None:
        eng = self.engine
        insts = eng.instruments_in(Category.INVERSE.value)
        wallets, positions = self._state(acct)
        seen_w = self._wallets.get(acct.api_key, {})
        seen_p = self._positions.get(acct.api_key, {})
        self._wallets[acct.api_key], self._positions[acct.api_key] = wallets, positions
        changed_coins = {c for c, w in wallets.items() if seen_w.get(c) != w}
        changed_pos = {k for k, v in positions.items() if seen_p.get(k, (ZERO, ZERO)) != v}
        changed_pos |= {k for k in seen_p if k not in positions and seen_p[k][0] != 0}
        changed_pos |= d.order
        if d.order:
            reason = "ORDER"
            changed_coins |= {i.base for i in insts if i.key in d.order}
        elif d.funding:
            reason = "FUNDING_FEE"
        elif changed_coins:
            up = any(wallets[c] > seen_w.get(c, ZERO) for c in changed_coins)
            reason = "DEPOSIT" if up else "WITHDRAW"
        elif changed_pos:
            reason = "ORDER"
        else:
            return  # a price move or a margin hold: no wallet balance changed, Binance sends nothing
        now = eng.now_ms()
        balances = [{"a": c, "wb": fmt(wallets.get(c, ZERO)), "cw": fmt(wallets.get(c, ZERO)), "bc": "0"}
                    for c in sorted(changed_coins)]
        rows = []
        for inst in insts:
            if inst.key not in changed_pos:
                continue
            pos = acct.positions.get(inst.key) or Position(inst)
            isolated = eng.margin_mode_of(acct, inst) == "isolated"
            rows.append({"s": bv.symbol_id(inst), "pa": fmt(pos.size), "ep": fmt(pos.entry) if pos.size else "0.0",
                         "bep": fmt(pos.entry) if pos.size else "0.0", "cr": fmt(pos.cum_realised),
                         "up": fmt(pos.upnl(inst.price)), "mt": "isolated" if isolated else "cross",
                         "iw": fmt(eng.isolated_margin(acct, pos)) if isolated and pos.size else "0",
                         "ps": "BOTH", "ma": inst.base})
        self._user(acct.api_key, {"e": "ACCOUNT_UPDATE", "E": now, "T": now, "i": "SfsR",
                                  "a": {"m": reason, "B": balances, "P": rows}})


def _kind(tail: str) -> str | None:
    """The stream kind of `<symbol>@<tail>`: markPrice, bookTicker, aggTrade, ticker, depth; None if unknown."""
    parts = tail.split("@")
    head, speed = parts[0], parts[1:]
    if head == "markPrice" and speed in ([], ["1s"]):
        return "markPrice"
    if head in ("bookTicker", "aggTrade", "ticker", "miniTicker") and not speed:
        return head
    if head.startswith("depth") and head[5:] in ("", "5", "10", "20") and speed in ([], ["100ms"], ["250ms"],
                                                                                    ["500ms"]):
        return "depth"
    return None
