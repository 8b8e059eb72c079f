"""The limit-order lifecycle: write-ahead intent, send once, resolve ambiguity by client id, follow, reprice.

The exchange and the audit store are the only state. An order is written as an intent (committed) before
the request leaves; when the reply is lost the order is looked up by its client id, never sent again.
Following happens once per keeper cycle from the open orders it fetched anyway: orders that left the book
are queried for their final state and fills; orders older than `order_timeout` are cancelled, and the
next plan re-posts what is still missing at the new touch (so partial fills, already in the position, are
never counted twice).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hedged.audit.store import AuditStore, OrderRecord, OrderStatus
from hedged.config import ExecutionConfig
from hedged.errors import Ambiguous, RateLimited, Rejected, VenueError
from hedged.log import get_logger
from hedged.model import OrderIntent
from hedged.snapshot import to_decimal
from hedged.venue import CcxtVenue

log = get_logger("hedged.executor")

CCXT_STATUS = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
}


def order_status(raw: Mapping[str, Any]) -> OrderStatus:
    """ccxt status → ours; an open order with fills is partially filled.

    ccxt calls bybit's PartiallyFilledCanceled "closed" (ccxt issue 18685), the word it uses for filled:
    a closed order with less filled than its amount was cancelled after a partial fill, not filled.
    """
    status = str(raw.get("status") or "open")
    filled = _dec(raw, "filled") or Decimal(0)
    if status == "closed":
        amount = _dec(raw, "amount")
        return OrderStatus.CANCELLED if amount is not None and filled < amount else OrderStatus.FILLED
    if status in CCXT_STATUS:
        return CCXT_STATUS[status]
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN


def _dec(raw: Mapping[str, Any], key: str) -> Decimal | None:
    try:
        return to_decimal(raw.get(key), f"order.{key}", optional=True)
    except ValueError:
        return None


def trade_client_id(t: Mapping[str, Any]) -> str:
    """ccxt leaves a trade's client order id in `info` on bybit (orderLinkId)."""
    info = t.get("info")
    fallback = info.get("orderLinkId") if isinstance(info, Mapping) else None
    return str(t.get("clientOrderId") or fallback or "")


def _fee(raw: Mapping[str, Any]) -> tuple[Decimal | None, str | None]:
    fee = raw.get("fee")
    if isinstance(fee, Mapping) and fee.get("cost") is not None:
        return _dec(fee, "cost"), fee.get("currency")
    return None, None


@dataclass
class Outcome:
    """What happened to one placed order, for the keeper's log line and alerts."""

    client_id: str
    status: str
    detail: str = ""


@dataclass
class Executor:
    venues: Mapping[str, CcxtVenue]
    store: AuditStore
    config: ExecutionConfig
    reprices: dict[tuple[str, str], int] = field(default_factory=dict)
    # How long a sent order may stay unseen before it is declared lost: past the client timeout plus the
    # exchange's receive window, a request that never arrived can no longer be accepted.
    lost_after: float = 10.0
    # trades newly written to the store, until the keeper takes them for fill alerts
    new_fills: list[dict[str, Any]] = field(default_factory=list)

    # --- placing ---------------------------------------------------------------------------------------
    async def place(self, order: OrderIntent, *, notional_usd: Decimal, reason: str) -> Outcome:
        """Write-ahead, send once, then learn the order's state. AuditWriteError propagates: do not send."""
        venue = self.venues[order.venue]
        await self.store.intent(
            client_order_id=order.client_id, venue=order.venue, symbol=order.symbol, side=order.side,
            amount=order.amount, price=order.price, reduce_only=order.reduce_only, post_only=order.post_only,
            reason=reason, notional_usd=notional_usd,
        )
        await self.store.sent(order.client_id)
        try:
            reply = await venue.create_order(order)
        except RateLimited as exc:
            # refused at the door (HTTP 429 / 10006), before any matching: definitive, not ambiguous
            await self.store.reject(order.client_id, reason=f"{exc.cause}: rate limited")
            return Outcome(order.client_id, "rejected", "rate limited")
        except Ambiguous as exc:
            await self.store.error(f"create_order ambiguous: {exc}"[:500], client_order_id=order.client_id,
                                   venue=order.venue, symbol=order.symbol, error_type=exc.cause)
            return await self.resolve(order.venue, order.client_id, order.symbol)
        except VenueError as exc:
            # refused (or failed before it could be sent): the exchange holds no such order
            await self.store.reject(order.client_id, reason=f"{exc.cause}: {exc}"[:300])
            return Outcome(order.client_id, "rejected", exc.cause)
        order_id = str(reply.get("id") or "")
        await self.store.ack(order.client_id, exchange_order_id=order_id)
        # bybit's create reply carries no status: ask for it
        try:
            full = await venue.fetch_order(order_id, order.symbol)
        except VenueError as exc:
            log.warning("executor.ack_query_failed", client_id=order.client_id, error=exc.cause)
            return Outcome(order.client_id, "open")
        rec = await self.sync(order.venue, order.client_id, full)
        return Outcome(order.client_id, rec.status)

    async def resolve(self, venue_name: str, client_id: str, symbol: str, *, lost_if_missing: bool = False) -> Outcome:
        """After an ambiguous send or a crash: find the order by client id. Missing → lost (only when told)."""
        venue = self.venues[venue_name]
        try:
            found = await venue.find_order(client_id, symbol)
        except VenueError as exc:
            log.warning("executor.lookup_failed", client_id=client_id, error=exc.cause)
            return Outcome(client_id, "sent", "lookup failed; will retry before anything else is sent")
        if found is None:
            if lost_if_missing and await self._may_still_arrive(client_id):
                # a request sent moments ago (by us, or by a keeper killed mid-request) can still be executed
                # within the receive window: calling it lost now would let the next plan send it again
                return Outcome(client_id, "sent", "not found yet; may still arrive")
            if lost_if_missing:
                await self.store.update_order(client_id, status=OrderStatus.LOST,
                                              reason="not on the exchange after lookup by client id")
                return Outcome(client_id, "lost")
            return Outcome(client_id, "sent", "not found yet")
        rec = await self.sync(venue_name, client_id, found)
        return Outcome(client_id, rec.status)

    async def _may_still_arrive(self, client_id: str) -> bool:
        """Sent (not merely an intent: `place` writes `sent` before the request leaves) less than lost_after ago."""
        rec = await self.store.get_order(client_id)
        if rec is None or rec.status != OrderStatus.SENT:
            return False
        age = now_utc() - rec.created_at.replace(tzinfo=rec.created_at.tzinfo or UTC)
        return age <= timedelta(seconds=self.lost_after)

    # --- following -----------------------------------------------------------------------------------
    async def sync(self, venue_name: str, client_id: str, raw: Mapping[str, Any]) -> OrderRecord:
        """Bring the store's order row up to the exchange's view, recording new fills by trade id."""
        status = order_status(raw)
        filled = _dec(raw, "filled")
        fee, fee_ccy = _fee(raw)
        before = await self.store.get_order(client_id)
        rec = await self.store.update_order(
            client_id, status=status, exchange_order_id=str(raw.get("id") or "") or None, filled=filled,
            average=_dec(raw, "average"), fee=fee, fee_currency=fee_ccy,
            reason=self._reason(raw, status),
        )
        if filled is not None and filled > 0 and (before is None or before.filled < filled):
            await self._record_fills(venue_name, rec)
        return rec

    @staticmethod
    def _reason(raw: Mapping[str, Any], status: OrderStatus) -> str | None:
        if status not in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
            return None
        info = raw.get("info")
        if isinstance(info, Mapping):
            r = info.get("rejectReason") or info.get("cancelType")
            if r and r != "EC_NoError":
                return str(r)[:200]
        return None

    async def _record_fills(self, venue_name: str, rec: OrderRecord) -> None:
        venue = self.venues[venue_name]
        since = int((rec.created_at.replace(tzinfo=rec.created_at.tzinfo or UTC)).timestamp() * 1000) - 60_000
        try:
            trades = await venue.fetch_my_trades(rec.symbol, since)
        except VenueError as exc:
            log.warning("executor.trades_failed", client_id=rec.client_order_id, error=exc.cause)
            return
        for t in trades:
            if str(t.get("order")) != rec.exchange_order_id:
                continue
            await self.record_trade(venue_name, t, rec.client_order_id)

    async def record_trade(self, venue_name: str, t: Mapping[str, Any], client_id: str | None) -> bool:
        fee, fee_ccy = _fee(t)
        amount, price = _dec(t, "amount"), _dec(t, "price")
        if amount is None or price is None or not t.get("id"):
            return False
        ts = t.get("timestamp")
        recorded = await self.store.fill(
            client_id, venue=venue_name, trade_id=str(t["id"]), amount=amount, price=price, fee=fee,
            fee_currency=fee_ccy, ts=datetime.fromtimestamp(ts / 1000, tz=UTC) if isinstance(ts, int | float) else None,
            symbol=t.get("symbol"), side=t.get("side"),
        )
        if recorded:
            self.new_fills.append({"venue": venue_name, "symbol": t.get("symbol"), "side": t.get("side"),
                                   "amount": amount, "price": price, "trade_id": str(t["id"]),
                                   "client_order_id": client_id, "fee": fee, "fee_currency": fee_ccy})
        return recorded

    async def follow(self, venue_name: str, open_orders: list[dict[str, Any]], now: datetime) -> set[str]:
        """Reconcile our unsettled orders on a venue with its open orders; cancel the timed-out ones.

        Returns the symbols where something changed this cycle (a fill landed or an order was cancelled):
        the snapshot's position there is stale, so the keeper re-plans them next cycle, not now.
        """
        touched: set[str] = set()
        on_book = {str(o.get("clientOrderId") or ""): o for o in open_orders}
        venue = self.venues[venue_name]
        for rec in await self.store.unsettled_orders(venue_name):
            cid = rec.client_order_id
            if rec.status in (OrderStatus.INTENT, OrderStatus.SENT):
                if cid in on_book:
                    await self.sync(venue_name, cid, on_book[cid])
                else:
                    age = now - rec.created_at.replace(tzinfo=rec.created_at.tzinfo or UTC)
                    out = await self.resolve(venue_name, cid, rec.symbol,
                                             lost_if_missing=age > timedelta(seconds=self.lost_after))
                    if out.status != "sent":
                        touched.add(rec.symbol)
                continue
            raw = on_book.get(cid)
            if raw is None:
                # left the book: filled or cancelled; ask for the final word
                try:
                    final = await venue.fetch_order(rec.exchange_order_id or "", rec.symbol)
                except Rejected as exc:
                    if exc.reason != "not_found":
                        raise
                    found = await venue.find_order(cid, rec.symbol)
                    if found is None:
                        await self.store.update_order(cid, status=OrderStatus.LOST, reason="left the book, not found")
                        continue
                    final = found
                await self.sync(venue_name, cid, final)
                touched.add(rec.symbol)
                continue
            filled = _dec(raw, "filled") or Decimal(0)
            if filled != rec.filled:
                await self.sync(venue_name, cid, raw)
                touched.add(rec.symbol)
            age = now - rec.created_at.replace(tzinfo=rec.created_at.tzinfo or UTC)
            key = (venue_name, rec.symbol)
            timed_out = age > timedelta(seconds=self.config.order_timeout)
            if timed_out and self.reprices.get(key, 0) < self.config.max_reprices:
                await self.cancel(venue_name, rec, reason="order_timeout: reprice at the new touch")
                self.reprices[key] = self.reprices.get(key, 0) + 1
                touched.add(rec.symbol)
        return touched

    async def cancel(self, venue_name: str, rec: OrderRecord, *, reason: str) -> None:
        venue = self.venues[venue_name]
        if not rec.exchange_order_id:
            return
        await venue.cancel_order(rec.exchange_order_id, rec.symbol)
        try:
            final = await venue.fetch_order(rec.exchange_order_id, rec.symbol)
        except VenueError:
            await self.store.cancel(rec.client_order_id, reason=reason, confirmed=False)
            return
        status = order_status(final)
        if status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED):
            await self.store.cancel(rec.client_order_id, reason=reason, confirmed=False)
            return
        await self.sync(venue_name, rec.client_order_id, final)
        if status is OrderStatus.CANCELLED:
            await self.store.cancel(rec.client_order_id, reason=reason, filled=_dec(final, "filled"))

    async def cancel_all(self, reason: str) -> int:
        """Cancel every live order of ours (halt, shutdown). Best effort per order; returns how many."""
        n = 0
        for name in self.venues:
            for rec in await self.store.unsettled_orders(name):
                if rec.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED):
                    try:
                        await self.cancel(name, rec, reason=reason)
                        n += 1
                    except VenueError as exc:
                        log.warning("executor.cancel_failed", client_id=rec.client_order_id,
                                    error=exc.cause)
        return n

    def escalation_due(self, venue: str, symbol: str) -> bool:
        return self.config.escalate and self.reprices.get((venue, symbol), 0) >= self.config.max_reprices

    def settled(self, venue: str, symbol: str) -> None:
        """The instrument is back inside its band: the next episode starts with a fresh reprice budget."""
        self.reprices.pop((venue, symbol), None)


def now_utc() -> datetime:
    return datetime.now(UTC)
