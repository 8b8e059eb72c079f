"""StreamedVenue: a CcxtVenue whose per-cycle read comes from ccxt.pro streams while they are alive.

Streams (balance, positions, our orders, our trades, tickers of the configured symbols) keep an in-memory
view; each event asks hedged.wake whether it warrants a cycle and, through a min-spacing coalescer, sets
the keeper's wake event. REST stays the source of truth: `fetch_state` reads REST at start, after every
reconnect or stream gap, every `resync` seconds, and whenever a stream is silent for longer than
`heartbeat` (then the venue is polled until the stream is back). A resync compares REST with the view;
a difference while the streams were healthy throughout is a lost message or a bug: logged and counted in
`differences` (a plain counter for metrics). Every part of the view is stamped with the last moment the
stream proved it current, so the guard's max_data_age check applies to streamed data as to REST data.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hedged.config import VenueConfig
from hedged.log import get_logger
from hedged.streamflavour import FLAVOURS
from hedged.venue import CcxtVenue, now_ms, wallet_totals
from hedged.wake import Event, Headroom, Spacing, warrants_cycle

if TYPE_CHECKING:
    from hedged.alerts.dedupe import Level
    from hedged.keeper import CycleResult, Keeper
    from hedged.model import Snapshot

log = get_logger("hedged.stream")
PARTS = ("balance", "positions", "orders", "tickers")
RESYNC_GRACE = 0.5  # seconds a differing view gets to catch up with messages still in flight
QUIET_TURNS, MAX_TURNS = 10, 200  # event-loop turns a read waits for received messages to reach the view
PRIVATE = frozenset({"balance", "positions", "orders", "trades"})


def _d(v: Any) -> Decimal:
    return Decimal(str(v)) if v is not None else Decimal(0)


class StreamedVenue(CcxtVenue):
    """One account, read from streams when they are alive, from REST otherwise (and at every resync)."""

    def __init__(self, name: str, config: VenueConfig, exchange: Any, symbols: Iterable[str],
                 price_symbols: Iterable[str] = (), *, pro: Any, resync: float = 60.0,
                 heartbeat: float | None = None, sensitive: Iterable[str] = (), min_spacing: float = 0.1,
                 clock: Callable[[], float] = time.monotonic, markets_refresh: float = 3600.0) -> None:
        super().__init__(name, config, exchange, symbols, price_symbols, markets_refresh=markets_refresh)
        self.pro = pro
        self.flavour = FLAVOURS.get(config.exchange, FLAVOURS["bybit"])
        self.listen_key_keepalive = 1200.0  # seconds between listen key keepalives (ccxt's 20 min; valid 60)
        self.resync = resync
        self.heartbeat = heartbeat if heartbeat is not None else config.stream_heartbeat
        self.sensitive = frozenset(sensitive)  # instruments whose drift a price move alone can change
        self.clock = clock
        self.spacing = Spacing(min_spacing)
        self.wake: asyncio.Event | None = None
        self.alert: Callable[[str, str], Awaitable[None]] | None = None
        # the view: REST-shaped parts, and when a stream last changed each one
        self.balance: dict[str, Any] = {}
        self.positions: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.tickers: dict[str, dict[str, Any]] = {}
        self.changed: dict[str, float] = dict.fromkeys(PARTS, 0.0)
        self.moved: dict[str, float] = dict.fromkeys(PARTS, 0.0)  # when a part's compared content last changed
        # wall ms each ticker last arrived: the venue streams tickers continuously, so a ticker is only as
        # fresh as its last message (a stalled topic ages it; a connection that still pongs does not help)
        self.ticker_at: dict[str, int] = {}
        self.alert_after = 3 * self.heartbeat  # seconds down before a stream_down alert
        # an order filled more than the view knew: its position (and wallet) messages may still be on the wire
        # while the executor already counts the fill, so the next read confirms positions over REST
        self.fills_pending = False
        self.filled: dict[str, Decimal] = {}  # order id -> filled amount last streamed
        # ccxt.pro hands a watch loop only the message that resolved its wait: a second position message read
        # in the same turn (the venue pushes one per symbol) is only in ccxt's cache. The view takes every
        # cache entry that changed since it last looked (what each was then, by (symbol, side))
        self.position_seen: dict[tuple[str, str], tuple[Any, ...]] = {}
        self.position_moved: dict[str, float] = {}  # per symbol: when its streamed size or side last changed
        self.coin_moved: dict[str, float] = {}  # per coin: when its streamed wallet total last changed
        # the same holds for tickers (three or more buffered on one connection are handled in one turn): per
        # ticker loop, the ccxt.pro cache it fills and its symbols; per (cache, symbol), the entry last taken
        # (ccxt stores a new dict per message, so identity says whether one arrived since)
        self.ticker_loops: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.ticker_seen: dict[tuple[str, str], Any] = {}
        # symbols whose position the last read could not confirm over REST (the stream moved them during the
        # read): the keeper does not plan them on this read
        self.unconfirmed: frozenset[str] = frozenset()
        self.was_up = False
        self.synced_at: float | None = None  # last REST resync (clock seconds)
        self.gap = True  # a stream failed or reconnected since the last resync: the view may be wrong
        # The order stream shows every order of the account as it changes (ours, a person's, another keeper's;
        # filled at once or not): while it has not broken since the foreign-keeper search last ran, its client
        # ids stand in for that search's REST trade read (hedged/foreign.py, Keeper._search_foreign)
        self.order_stream_broken = True
        self._order_ids_checked: set[str] = set()
        self.healthy: dict[str, bool] = {}  # per watch loop: subscribed and not failed since
        self.differences = 0  # REST/stream differences found while streams were healthy throughout
        self.resyncs = 0
        self.resyncing = False  # a REST resync is in flight (it counts in `resyncs` once it has landed)
        self.reconnects = 0
        self.messages: Counter[str] = Counter()  # stream updates applied, per kind (tickers: per ticker)
        self.down_since: float | None = None
        self.alerted = False
        self.headroom: dict[str, Headroom] = {}
        self.ref_price: dict[str, Decimal] = {}  # price each ticker had when the last cycle read the view
        self._tasks: list[asyncio.Task[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._connections = 0

    # --- lifecycle ----------------------------------------------------------------------------------
    async def load_markets(self, reload: bool = False) -> dict[str, Any]:
        markets = await super().load_markets(reload)
        self.pro.set_markets(self.exchange.markets, self.exchange.currencies)  # no second download
        if not self._tasks:
            self.start_streams()
        return markets

    def start_streams(self) -> None:
        symbols = (*self.symbols, *self.price_symbols)
        loops: dict[str, Callable[[], Awaitable[Any]]] = {
            "balance": lambda: self.pro.watch_balance(),  # no subType on a unified account (it hangs)
            "positions": lambda: self.pro.watch_positions(),
            "orders": lambda: self.pro.watch_orders(),
            "trades": lambda: self.pro.watch_my_trades(),
        }
        categories: dict[str, list[str]] = {}  # one public connection per category, whatever the settle coin
        for (cat, _), syms in self._groups(symbols).items():
            categories.setdefault(cat, []).extend(s for s in syms if s in symbols)
        for cat, group in categories.items():
            for suffix, watch in self.flavour.tickers(self.pro, group).items():
                loops[f"tickers.{cat}.{group[0]}{suffix}"] = watch
                self.ticker_loops[f"tickers.{cat}.{group[0]}{suffix}"] = (self.flavour.ticker_caches[suffix],
                                                                          tuple(group))
        self._connections = 1 + sum(n.startswith("tickers.") for n in loops)  # private + one per ticker loop
        for name, watch in loops.items():
            self.healthy[name] = False
            self._tasks.append(asyncio.create_task(self._loop(name, watch)))
        if self.flavour.keepalive is not None:
            self._tasks.append(asyncio.create_task(self._keepalive_loop()))

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        if self._timer is not None:
            self._timer.cancel()
        with contextlib.suppress(Exception):
            await self.pro.close()
        await super().close()

    async def _loop(self, name: str, watch: Callable[[], Awaitable[Any]]) -> None:
        """Watch forever; on any failure mark the gap and come back with backoff and jitter."""
        failures = 0
        while True:
            # healthy while subscribed and not failed: a quiet topic never answers, and that is fine;
            # a silent connection is caught by the heartbeat (alive) and by ccxt's ping timeout
            self.healthy[name] = True
            try:
                got = await watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.healthy[name] = False
                self.gap = True
                if name in PRIVATE:
                    self.order_stream_broken = True
                failures += 1
                if name in PRIVATE and self.flavour.forget is not None:
                    self.flavour.forget(self.pro)  # expired or not: a fresh listen key, then reconnect
                delay = min(5.0, 0.1 * 2 ** min(failures, 6)) * random.uniform(0.5, 1.0)
                log.warning("stream.error", venue=self.name, stream=name, error=type(exc).__name__,
                            retry_in=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            if failures:
                self.reconnects += 1
                log.info("stream.reconnected", venue=self.name, stream=name)
                self._event(Event.RESYNC)  # plan on a fresh REST read
                failures = 0
            self._apply(name, got)

    async def _keepalive_loop(self) -> None:
        while True:
            await asyncio.sleep(self.listen_key_keepalive)
            await self.keep_listen_key_alive()

    async def keep_listen_key_alive(self) -> bool:
        """Extend the user-data listen key (ccxt.pro renews it once only, 20 min after creating it). A key the
        venue no longer knows is forgotten: the private stream is reconnected on a new one and resynced."""
        if self.flavour.keepalive is None:
            return False
        try:
            await self.flavour.keepalive(self.pro)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("stream.keepalive_failed", venue=self.name, error=type(exc).__name__)
            if self.flavour.forget is not None:
                self.flavour.forget(self.pro)
            self.gap = True
            self.order_stream_broken = True
            return False
        return True

    def streamed_order_ids(self) -> tuple[list[str], list[int]]:
        """Client ids of the orders the order stream has shown that are not yet `checked_order_ids`, and their
        exchange times (ms). Read from ccxt.pro's order cache, which keeps every update, also those a watch's
        answer skipped when several were handled in one turn. Offered again until checked, so a check that
        fails (the store unreadable or a halt unwritable) misses none."""
        ids: dict[str, None] = {}
        times: list[int] = []
        for o in [*list(getattr(self.pro, "orders", None) or []), *self.orders.values()]:
            cid = o.get("clientOrderId") if isinstance(o, Mapping) else None
            if not cid or cid in self._order_ids_checked or cid in ids:
                continue
            ids[str(cid)] = None
            at = o.get("lastUpdateTimestamp") or o.get("timestamp")
            if at:
                times.append(int(at))
        return list(ids), times

    def checked_order_ids(self, ids: Iterable[str]) -> None:
        self._order_ids_checked.update(ids)

    # --- applying stream messages --------------------------------------------------------------------
    def _apply(self, name: str, got: Any) -> None:
        now = self.clock()
        if name.startswith("tickers."):
            got = self._ticker_updates(name, got)
        self.messages[name.split(".")[0]] += len(got) if name.startswith("tickers.") else 1
        if name == "balance":
            new = self.flavour.balance(self.exchange, got, self.balance)
            if new is not None:
                before = _balances(self.balance)
                self.balance = new
                self.changed["balance"] = now
                moved = _stamp_moves(before, _balances(self.balance), self.coin_moved, now)
                if moved:
                    self.moved["balance"] = now
                # a price move changes equity and margin, not wallet totals: that is a price event
                self._event(Event.BALANCE if moved else Event.PRICE)
        elif name == "positions":
            held = _positions(self.positions.values())
            for p in self._position_updates(got):
                sym = p.get("symbol")
                if sym not in self.symbols:
                    continue
                if p.get("contracts"):  # a copy: ccxt updates its cached dicts in place, under the view
                    self.positions[sym] = self.flavour.position(dict(p), self.positions.get(sym))
                else:
                    self.positions.pop(sym, None)
            self.changed["positions"] = now
            moved = _stamp_moves(held, _positions(self.positions.values()), self.position_moved, now)
            if moved:
                self.moved["positions"] = now
            self._event(Event.POSITION if moved else Event.PRICE)
        elif name == "orders":
            ids = _order_ids(self.orders.values())
            for o in got or []:
                if o.get("symbol") not in self.symbols:
                    continue
                oid, filled = str(o.get("id")), _d(o.get("filled"))
                if filled > self.filled.get(oid, Decimal(0)):
                    self.fills_pending = True
                if o.get("status") == "open":
                    self.filled[oid] = filled
                else:
                    self.filled.pop(oid, None)
                if o.get("status") == "open":
                    self.orders[str(o.get("id"))] = dict(o)
                else:
                    self.orders.pop(str(o.get("id")), None)
            self.changed["orders"] = now
            if _order_ids(self.orders.values()) != ids:
                self.moved["orders"] = now
            self._event(Event.ORDER)
        elif name == "trades":
            if any(t.get("symbol") in self.symbols for t in got or []):
                self.fills_pending = True
                self._event(Event.FILL)
        elif name.startswith("tickers."):
            move = Decimal(0)
            at = now_ms()
            for t in got:
                sym = t.get("symbol")
                if sym is None:
                    continue
                t = self.tickers[sym] = self.flavour.ticker(t, self.tickers.get(sym))
                self.ticker_at[sym] = at
                price = t.get("markPrice") or t.get("last")
                ref = self.ref_price.get(sym)
                if price and ref:
                    move = max(move, abs(_d(price) / ref - 1))
            self.changed["tickers"] = now
            self._event(Event.PRICE, move)

    def _position_updates(self, got: Any) -> list[dict[str, Any]]:
        """The positions streamed since the last look: ccxt's cache entries that changed (in the order they were
        updated), or the watch's answer where ccxt keeps no cache."""
        cache = getattr(self.pro, "positions", None)
        if isinstance(cache, Mapping):  # binance: one cache per account type
            cache = [p for c in cache.values() for p in c]
        if not isinstance(cache, list) or not cache:
            return list(got or [])
        out: list[dict[str, Any]] = []
        for p in cache:
            key = (str(p.get("symbol")), str(p.get("side")))
            seen = (p.get("contracts"), p.get("side"), p.get("entryPrice"), p.get("unrealizedPnl"),
                    p.get("markPrice"), p.get("timestamp"), p.get("lastUpdateTimestamp"))
            if self.position_seen.get(key) != seen:
                self.position_seen[key] = seen
                out.append(p)
        return out

    def _ticker_updates(self, name: str, got: Any) -> list[dict[str, Any]]:
        """The tickers streamed to one loop since its last look: ccxt's cache entries of its symbols that are new
        (the latest per symbol, also where the watch answered an older one), or the watch's answer where ccxt
        keeps no cache."""
        answer = [dict(t) for t in got.values() if isinstance(t, Mapping)] if isinstance(got, Mapping) else []
        attr, group = self.ticker_loops.get(name, ("", ()))
        cache = getattr(self.pro, attr, None) if attr else None
        if not isinstance(cache, Mapping):
            return answer
        out: list[dict[str, Any]] = []
        for sym in group:
            t = cache.get(sym)
            if isinstance(t, Mapping) and self.ticker_seen.get((attr, sym)) is not t:
                self.ticker_seen[(attr, sym)] = t  # a reference: the id of a collected dict could be reused
                out.append(dict(t))
        return out

    def _event(self, event: Event, move: Decimal = Decimal(0)) -> None:
        if event is Event.PRICE:
            # a ratio of two prices that each moved by ≤ move has moved by ≤ ~2·move
            wakes = any(warrants_cycle(event, sensitive=True, move=2 * move, headroom=self.headroom.get(s))
                        for s in self.sensitive)
        else:
            wakes = warrants_cycle(event)
        self.spacing = self.spacing.event(wakes)
        self._schedule()

    def _schedule(self) -> None:
        at = self.spacing.fire_at()
        if at is None or self.wake is None or self._timer is not None:
            return
        delay = max(0.0, at - self.clock())
        if delay == 0:
            self._fire()
        else:
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self.wake is not None and self.spacing.pending:
            self.wake.set()

    # --- what the keeper calls ----------------------------------------------------------------------
    def alive(self) -> bool:
        """Every watch loop answered, every connection spoke and every ticker arrived within the heartbeat
        (a topic stalled while its connection still pongs is as dead as a silent connection)."""
        if not self.healthy or not all(self.healthy.values()):
            return False
        clients = _dialed(self.pro)
        if len(clients) < self._connections:  # one went away and is not back yet
            return False
        limit = now_ms() - self.heartbeat * 1000
        # a topic has no ping of its own and streams at the venue's cadence: one heartbeat of margin
        if any(self.ticker_at.get(s, 0) < limit - self.heartbeat * 1000 for s in (*self.symbols, *self.price_symbols)):
            return False
        return all(_last_heard(c) >= limit for c in clients)

    def _confirmed_ms(self) -> int:
        """The last moment every connection was heard: the view was current then."""
        heard = [_last_heard(c) for c in _dialed(self.pro)]
        return min(heard) if heard else now_ms()

    async def fetch_state(self, *, with_orders: bool = True) -> dict[str, Any]:
        # messages already received (or on the loopback) take a few loop turns to reach the view: let them
        # land before reading, until the view has been still for QUIET_TURNS turns (at most MAX_TURNS)
        applied, still = sum(self.messages.values()), 0
        for _ in range(MAX_TURNS):
            await asyncio.sleep(0)
            now_applied = sum(self.messages.values())
            still = 0 if now_applied != applied else still + 1
            applied = now_applied
            if still >= QUIET_TURNS:
                break
        now = self.clock()
        self.unconfirmed = frozenset()
        self.spacing = self.spacing.cycle_started(now)
        self.ref_price = {s: _d(t.get("markPrice") or t.get("last")) for s, t in self.tickers.items()
                          if t.get("markPrice") or t.get("last")}
        alive = self.alive()
        if not alive:
            self.gap = True
            self.order_stream_broken = True
            await self._note_down(now)
        elif self.down_since is not None:
            log.info("stream.up", venue=self.name, down_for=round(now - self.down_since, 2))
            self.was_up = True
            if self.alerted and self.alert is not None:
                await self.alert("stream_up", f"{self.name}: streams are back after {now - self.down_since:.0f} s")
            self.down_since, self.alerted = None, False
        if not alive:
            return await super().fetch_state(with_orders=with_orders)  # polling fallback
        self.was_up = True
        if self.gap or self.fills_pending or self.synced_at is None or now - self.synced_at >= self.resync:
            await self._resync(with_orders)
        stamp = self._confirmed_ms()
        balance = {**self.balance, "timestamp": stamp}
        positions = [{**p, "timestamp": stamp} for p in self.positions.values()]
        if self.flavour.reprice:
            positions = [self._at_mark(p) for p in positions]
        tickers = {s: {**t, "timestamp": min(stamp, self.ticker_at.get(s, 0))} for s, t in self.tickers.items()}
        return {
            "markets": {s: self.market(s) for s in (*self.symbols, *self.price_symbols)},
            "tickers": tickers,
            "balance": balance,
            "positions": positions,
            "open_orders": list(self.orders.values()) if with_orders else [],
        }

    async def _note_down(self, now: float) -> None:
        if self.down_since is None:
            self.down_since = now
            if self.was_up:
                log.warning("stream.down", venue=self.name, healthy=dict(self.healthy))
            else:  # the first read at start comes before the streams have subscribed: not news
                log.info("stream.connecting", venue=self.name)
        if not self.alerted and now - self.down_since >= self.alert_after and self.alert is not None:
            self.alerted = True
            await self.alert("stream_down", f"{self.name}: streams down for {now - self.down_since:.0f} s; "
                             "polling REST meanwhile")

    async def _resync(self, with_orders: bool) -> None:
        """REST balance, positions (and open orders when ours are in flight): the truth the view must match."""
        self.resyncing = True
        try:
            await self._resync_now(with_orders)
        finally:
            self.resyncing = False

    async def _resync_now(self, with_orders: bool) -> None:
        trusted = not self.gap and self.synced_at is not None
        started = self.clock()
        self.fills_pending = False  # a fill streamed from now on asks for another confirmation
        jobs: list[Awaitable[Any]] = [self._call("fetch_balance", self.exchange.fetch_balance),
                                      self.fetch_positions()]
        if with_orders:
            jobs.append(self.fetch_open_orders())
        got = await asyncio.gather(*jobs)
        balance, positions = got[0], got[1]
        if self.profile.wallet_from_info:  # as CcxtVenue.fetch_state: the wallet, not wallet + uPnL
            balance = wallet_totals(balance)
        rest: dict[str, Any] = {"balance": _balances(balance), "positions": _positions(positions)}
        if with_orders:
            rest["orders"] = _order_ids(got[2])
        view = rest if self.synced_at is None else self._comparable(with_orders)  # the first read: no view yet
        if view != rest:  # messages about the same change may still be on the wire: give them a moment
            await asyncio.sleep(RESYNC_GRACE)
            view = self._comparable(with_orders)
        for part, truth in rest.items():
            if truth == view[part]:
                continue
            raced = self.moved[part] >= started  # the streamed part changed since the read: order unknown
            counted = trusted and not raced
            if counted:
                self.differences += 1
            # a counted difference is a lost message or a bug; an uncounted one (a gap, or a race with a fill
            # still streaming in) is expected while an order fills: debug, not a warning at every hedge
            (log.warning if counted else log.debug)("stream.difference", venue=self.name, part=part,
                                                     counted=counted, rest=str(truth), view=str(view[part]))
        # REST replaces a part only if no stream update reached it since the read began: such an update is
        # newer than the REST answer (a fill's position still streaming in); that part is confirmed again
        # at the next read instead of being rolled back to the older REST state
        # balances per coin, as positions: a wallet message streamed during the read (a fill's fee, a deposit)
        # keeps that coin's newer streamed total, and REST is still the truth for every other coin (Binance
        # streams only the coins that changed: kept whole, a view that began without a coin never got it)
        self.balance = _merge_coins(balance, self.balance,
                                    {c for c, at in self.coin_moved.items() if at >= started})
        # positions per symbol: a fill streamed on one instrument during the read must not keep the REST answer
        # out for the others (their streamed message may be the one that was lost); the raced symbols are not
        # planned on this read (`unconfirmed`: the keeper holds them) and are confirmed at the next one
        moving = frozenset(sym for sym, at in self.position_moved.items() if at >= started)
        fresh = {p["symbol"]: p for p in positions if p["symbol"] not in moving}
        self.positions = {**fresh, **{s: p for s, p in self.positions.items() if s in moving}}
        self.unconfirmed = moving
        if with_orders and self.moved["orders"] < started:
            self.orders = {str(o.get("id")): o for o in got[2]}
        parts = ("balance", "positions", "orders") if with_orders else ("balance", "positions")
        if any(self.moved[part] >= started for part in parts):
            self.fills_pending = True
        self.synced_at, self.gap = started, False
        self.resyncs += 1

    def _comparable(self, with_orders: bool) -> dict[str, Any]:
        view: dict[str, Any] = {"balance": _balances(self.balance), "positions": _positions(self.positions.values())}
        if with_orders:
            view["orders"] = _order_ids(self.orders.values())
        return view

    def planned(self, result: CycleResult) -> None:
        """Remember each instrument's headroom so price updates know whether the band could be crossed."""
        for d in result.decisions:
            p = d.plan
            if p.venue == self.name:
                self.headroom[p.symbol] = Headroom(p.drift, p.band, max(abs(p.target), abs(p.hedge)))


    def _at_mark(self, p: dict[str, Any]) -> dict[str, Any]:
        """A position priced at the streamed mark: uPnL as the venue computes it (inverse: size × contract
        size × (1/entry − 1/mark), in coins; linear: size × contract size × (mark − entry))."""
        t = self.tickers.get(str(p.get("symbol"))) or {}
        mark, entry = t.get("markPrice"), p.get("entryPrice")
        if not mark or not entry:
            return {**p, "markPrice": None}
        m = self.market(str(p["symbol"]))
        size = _d(p.get("contracts")) * _d(m.get("contractSize") or 1) * (-1 if p.get("side") == "short" else 1)
        upnl = size * (1 / _d(entry) - 1 / _d(mark)) if m.get("inverse") else size * (_d(mark) - _d(entry))
        return {**p, "markPrice": mark, "unrealizedPnl": float(upnl)}


def _dialed(pro: Any) -> list[Any]:
    """The connections ccxt.pro opened (binance also keeps a never-dialed client for its auth flights)."""
    return [c for c in pro.clients.values() if str(getattr(c, "url", "")).startswith("ws")]


def _last_heard(client: Any) -> int:
    return int(getattr(client, "last_message_at", None) or getattr(client, "lastPong", None) or 0)


def _stamp_moves(before: Mapping[str, Any], after: Mapping[str, Any], stamps: dict[str, float], now: float) -> bool:
    """Stamp `now` on every key (coin, symbol) whose value differs between the two; whether any did."""
    moved = False
    for key in {*before, *after}:
        if before.get(key) != after.get(key):
            stamps[key] = now
            moved = True
    return moved


def _merge_coins(rest: Mapping[str, Any], view: Mapping[str, Any], keep: set[str]) -> dict[str, Any]:
    """REST's balance, with the view's entries for the coins in `keep`."""
    out = dict(rest)
    if not keep:
        return out
    total = dict(out.get("total") or {})
    streamed = view.get("total") or {}
    for coin in keep:
        if coin in streamed:
            total[coin] = streamed[coin]
            out[coin] = view.get(coin) or {"total": streamed[coin]}
        else:  # the stream says the coin is gone
            total.pop(coin, None)
            out.pop(coin, None)
    out["total"] = total
    return out


def _balances(b: Mapping[str, Any]) -> dict[str, Decimal]:
    totals = b.get("total") if isinstance(b, Mapping) else None
    return {c: _d(v) for c, v in (totals or {}).items() if v}


def _positions(ps: Iterable[Mapping[str, Any]]) -> dict[str, tuple[Decimal, str]]:
    return {str(p["symbol"]): (_d(p.get("contracts")), str(p.get("side"))) for p in ps if p.get("contracts")}


def _order_ids(os: Iterable[Mapping[str, Any]]) -> set[str]:
    return {str(o.get("id")) for o in os}


def attach(keeper: Keeper) -> None:
    """Connect a keeper's streamed venues to it: their events set `keeper.wake`, cycles feed headroom,
    and outages raise alerts through the keeper's hub."""
    streamed = [v for v in keeper.venues.values() if isinstance(v, StreamedVenue)]
    if not streamed:
        return
    previous = keeper.on_cycle

    def on_cycle(result: CycleResult, snap: Snapshot | None) -> None:
        for v in streamed:
            v.planned(result)
        if previous is not None:
            previous(result, snap)

    keeper.on_cycle = on_cycle
    for v in streamed:
        v.wake = keeper.wake

        async def alert(code: str, message: str, v: StreamedVenue = v) -> None:
            level: Level = "warning" if code == "stream_down" else "info"
            await keeper.hub.event(code, level, message, {"venue": v.name}, keeper.clock())

        v.alert = alert
