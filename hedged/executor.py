"""The limit-order lifecycle: write-ahead intent, send once, resolve ambiguity by client id, follow, reprice.

The exchange and the audit store are the only state. An order is written as an intent (committed) before
the request leaves; when the reply is lost the order is looked up by its client id, never sent again.
Following happens once per keeper cycle from the open orders it fetched anyway: orders that left the book
are queried for their final state and fills. Which resting orders to cancel and re-post is the core's
decision (decide.reprices_due); the next plan re-posts what is still missing at the new touch (so partial
fills, already in the position, are never counted twice).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hedged.audit.store import AuditStore, OrderRecord
from hedged.config import ExecutionConfig
from hedged.errors import Ambiguous, RateLimited, Rejected, VenueError
from hedged.log import get_logger
from hedged.model import Cancel, Code, OrderIntent, VenueOrder, VenueTrade
from hedged.order_state import LIVE, UNRESOLVED, IllegalTransition, OrderStatus, advance, from_ccxt
from hedged.snapshot import to_decimal
from hedged.venue import CcxtVenue

log = get_logger("hedged.executor")


def order_status(raw: Mapping[str, Any]) -> OrderStatus:
    """A raw ccxt order's status in ours (the mapping itself is hedged/order_state.py's, once)."""
    amount, filled = (to_decimal(raw.get(k), f"order.{k}", optional=True) for k in ("amount", "filled"))
    return from_ccxt(str(raw.get("status") or "open"), amount, filled)


@dataclass
class Outcome:
    """What happened to one placed order, for the keeper's log line and alerts."""

    client_id: str
    status: OrderStatus
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
    # complete trade reads an order may come up short of its filled before it is settled anyway (sync)
    fill_retries: int = 3
    short_reads: dict[str, int] = field(default_factory=dict)  # client id -> reads short so far

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
            order_id = await venue.create_order(order)
        except RateLimited as exc:
            # refused at the door (HTTP 429 / 10006), before any matching: definitive, not ambiguous
            await self.store.reject(order.client_id, reason=f"{exc.cause}: rate limited")
            return Outcome(order.client_id, OrderStatus.REJECTED, "rate limited")
        except Ambiguous as exc:
            await self.store.error(f"create_order ambiguous: {exc}"[:500], client_order_id=order.client_id,
                                   venue=order.venue, symbol=order.symbol, error_type=exc.cause)
            return await self.resolve(order.venue, order.client_id, order.symbol)
        except VenueError as exc:
            # refused (or failed before it could be sent): the exchange holds no such order
            await self.store.reject(order.client_id, reason=f"{exc.cause}: {exc}"[:300])
            return Outcome(order.client_id, OrderStatus.REJECTED, exc.cause)
        await self.store.ack(order.client_id, exchange_order_id=order_id)
        # bybit's create reply carries no status: ask for it
        try:
            full = await venue.fetch_order(order_id, order.symbol)
        except VenueError as exc:
            log.warning("executor.ack_query_failed", client_id=order.client_id, error=exc.cause)
            return Outcome(order.client_id, OrderStatus.OPEN)
        rec = await self.sync(order.venue, order.client_id, full)
        return Outcome(order.client_id, OrderStatus(rec.status))

    async def resolve(self, venue_name: str, client_id: str, symbol: str, *, lost_if_missing: bool = False) -> Outcome:
        """After an ambiguous send or a crash: find the order by client id. Missing → lost (only when told)."""
        venue = self.venues[venue_name]
        try:
            found = await venue.find_order(client_id, symbol)
        except VenueError as exc:
            log.warning("executor.lookup_failed", client_id=client_id, error=exc.cause)
            return Outcome(client_id, OrderStatus.SENT, "lookup failed; will retry before anything else is sent")
        if found is None:
            if lost_if_missing and await self._may_still_arrive(client_id):
                # a request sent moments ago (by us, or by a keeper killed mid-request) can still be executed
                # within the receive window: calling it lost now would let the next plan send it again
                return Outcome(client_id, OrderStatus.SENT, "not found yet; may still arrive")
            if lost_if_missing:
                await self.store.update_order(client_id, status=OrderStatus.LOST,
                                              reason="not on the exchange after lookup by client id")
                return Outcome(client_id, OrderStatus.LOST)
            return Outcome(client_id, OrderStatus.SENT, "not found yet")
        rec = await self.sync(venue_name, client_id, found)
        return Outcome(client_id, OrderStatus(rec.status))

    async def _may_still_arrive(self, client_id: str) -> bool:
        """Sent (not merely an intent: `place` writes `sent` before the request leaves) less than lost_after ago."""
        rec = await self.store.get_order(client_id)
        if rec is None or rec.status != OrderStatus.SENT:
            return False
        age = now_utc() - rec.created_at.replace(tzinfo=rec.created_at.tzinfo or UTC)
        return age <= timedelta(seconds=self.lost_after)

    # --- following -----------------------------------------------------------------------------------
    async def sync(self, venue_name: str, client_id: str, o: VenueOrder) -> OrderRecord:
        """Bring the store's order row up to the exchange's view: first the order's new trades, then the row.

        Whether trades are missing is decided by the fills the store holds, not by the row's filled (a row
        written ahead of its trades would hide them). Trades are recorded by trade id, so asking again is
        harmless; a keeper that dies between the trades and the row leaves the row at what its fills
        account for, unsettled, and the next sync records the rest. While the recorded fills are short of
        the exchange's filled (the read failed, or the exchange does not list them all yet) the order stays
        followed that way, and its trades are asked for again at every sync; after `fill_retries` complete
        reads that still come up short it is settled as the exchange says and the gap recorded as an error.
        """
        before = await self.store.get_order(client_id)
        if before is None:
            return await self._write_view(client_id, None, o)  # AuditWriteError: no intent recorded
        try:
            advance(before.status, o.status)
        except IllegalTransition as exc:
            return await self._contradicted(client_id, before, exc)
        held = await self.store.fills_total(client_id) if o.filled > 0 else Decimal(0)
        if held >= o.filled:
            self.short_reads.pop(client_id, None)
            return await self._write_view(client_id, before, o)
        if o.id and not before.exchange_order_id:
            # found by client id (after an ambiguous create or a restart): its exchange id first, so a crash
            # among the trades below leaves an order that can be looked up and cancelled by it
            before = await self.store.update_order(client_id, status=OrderStatus.OPEN, exchange_order_id=o.id)
        added = await self._record_fills(venue_name, before, o.id or before.exchange_order_id or "", o.filled)
        held += added or Decimal(0)
        if held >= o.filled:
            self.short_reads.pop(client_id, None)
            # the row's average and fee stay the ones its fills were just summed into
            return await self._write_view(client_id, before, o, from_fills=bool(added))
        if added is not None:  # a complete read, and still short
            tries = self.short_reads.get(client_id, 0) + 1
            self.short_reads[client_id] = tries
            if tries >= self.fill_retries:
                self.short_reads.pop(client_id, None)
                log.error("executor.fills_missing", client_id=client_id, recorded=str(held), filled=str(o.filled))
                await self.store.error(
                    f"{client_id}: the exchange's listed trades account for {held} of the {o.filled} it says "
                    f"filled, after {tries} reads; settled as the exchange says", client_order_id=client_id,
                    venue=venue_name, symbol=before.symbol, error_type="FillsMissing")
                return await self._write_view(client_id, before, o)
        log.warning("executor.fills_short", client_id=client_id, recorded=str(held), filled=str(o.filled),
                    read=added is not None)
        # unsettled at what its fills account for: followed, and its trades asked for at the next sync
        rec = await self.store.get_order(client_id) or before
        if advance(rec.status, OrderStatus.PARTIALLY_FILLED) == rec.status:
            return rec
        return await self.store.update_order(client_id, status=OrderStatus.PARTIALLY_FILLED)

    async def _write_view(self, client_id: str, before: OrderRecord | None, o: VenueOrder, *,
                          from_fills: bool = False) -> OrderRecord:
        """The exchange's view of the order into its row (its average and fee too, unless `from_fills`)."""
        try:
            return await self.store.update_order(
                client_id, status=o.status, exchange_order_id=o.id or None, filled=o.filled,
                average=None if from_fills else o.average, fee=None if from_fills else o.fee,
                fee_currency=None if from_fills else o.fee_currency, reason=o.reason,
            )
        except IllegalTransition as exc:
            assert before is not None
            return await self._contradicted(client_id, before, exc)

    async def _contradicted(self, client_id: str, before: OrderRecord, exc: IllegalTransition) -> OrderRecord:
        """The exchange contradicts a final state we recorded: keep ours, say so loudly, let a person look."""
        log.error("executor.illegal_transition", client_id=client_id, error=str(exc))
        await self.store.error(f"{client_id}: {exc}"[:500], client_order_id=client_id,
                               error_type="IllegalTransition")
        return before

    async def _record_fills(self, venue_name: str, rec: OrderRecord, order_id: str, filled: Decimal) -> Decimal | None:
        """Read the order's trades (paged until they add up to `filled`) and record the new ones; how much
        those add, or None when the read failed."""
        venue = self.venues[venue_name]
        since = int((rec.created_at.replace(tzinfo=rec.created_at.tzinfo or UTC)).timestamp() * 1000) - 60_000
        try:
            trades = await venue.fetch_order_trades(rec.symbol, order_id, since, filled)
        except VenueError as exc:
            log.warning("executor.trades_failed", client_id=rec.client_order_id, error=exc.cause)
            return None
        added = Decimal(0)
        for t in trades:
            if t.order_id == order_id and await self.record_trade(venue_name, t, rec.client_order_id):
                added += t.amount
        return added

    async def record_trade(self, venue_name: str, t: VenueTrade, client_id: str | None) -> bool:
        recorded = await self.store.fill(
            client_id, venue=venue_name, trade_id=t.id, amount=t.amount, price=t.price, fee=t.fee,
            fee_currency=t.fee_currency, ts=t.time, symbol=t.symbol, side=t.side,
        )
        if recorded:
            self.new_fills.append({"venue": venue_name, "symbol": t.symbol, "side": t.side, "amount": t.amount,
                                   "price": t.price, "trade_id": t.id, "client_order_id": client_id,
                                   "fee": t.fee, "fee_currency": t.fee_currency})
        return recorded

    async def follow(self, venue_name: str, open_orders: Sequence[VenueOrder], now: datetime) -> set[str]:
        """Reconcile our unsettled orders on a venue with its open orders; cancel the timed-out ones.

        Returns the symbols where something changed this cycle (a fill landed or an order was cancelled):
        the snapshot's position there is stale, so the keeper re-plans them next cycle, not now.
        """
        touched: set[str] = set()
        on_book = {o.client_id: o for o in open_orders}
        venue = self.venues[venue_name]
        for rec in await self.store.unsettled_orders(venue_name):
            cid = rec.client_order_id
            if rec.status in UNRESOLVED:
                if cid in on_book:
                    await self.sync(venue_name, cid, on_book[cid])
                else:
                    age = now - rec.created_at.replace(tzinfo=rec.created_at.tzinfo or UTC)
                    out = await self.resolve(venue_name, cid, rec.symbol,
                                             lost_if_missing=age > timedelta(seconds=self.lost_after))
                    if out.status is not OrderStatus.SENT:
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
            if raw.filled != rec.filled:
                await self.sync(venue_name, cid, raw)
                touched.add(rec.symbol)
        return touched

    async def cancel_for_reprice(self, c: Cancel) -> bool:
        """A cancel the core decided (decide.reprices_due); a re-price counts against `max_reprices`."""
        rec = await self.store.get_order(c.client_id)
        if rec is None or rec.status not in LIVE:
            return False
        await self.cancel(c.venue, rec, reason=str(c.reason))
        if c.reason.code is Code.REPRICE:
            key = (c.venue, c.symbol)
            self.reprices[key] = self.reprices.get(key, 0) + 1
        return True

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
        if final.status in LIVE:
            await self.store.cancel(rec.client_order_id, reason=reason, confirmed=False)
            return
        synced = await self.sync(venue_name, rec.client_order_id, final)
        if final.status is OrderStatus.CANCELLED:
            if synced.status == OrderStatus.CANCELLED:
                await self.store.cancel(rec.client_order_id, reason=reason, filled=final.filled)
            else:  # its trades are not all recorded yet: cancel requested, and followed until they are
                await self.store.cancel(rec.client_order_id, reason=reason, confirmed=False)

    async def cancel_all(self, reason: str, *, resolve_unresolved: bool = False) -> int:
        """Cancel every live order of ours (halt, shutdown). Best effort per order; returns how many.

        With `resolve_unresolved` (shutdown), orders still `intent`/`sent` are first looked up by client id
        until they show up (then they are cancelled like the rest) or can no longer arrive (lost): a create
        in flight when the keeper stops must not leave an order on the book.
        """
        n = 0
        for name in self.venues:
            for rec in await self.store.unsettled_orders(name):
                if rec.status in UNRESOLVED and resolve_unresolved:
                    rec = await self._settle_unresolved(name, rec, reason)
                if rec.status in LIVE:
                    try:
                        await self.cancel(name, rec, reason=reason)
                        n += 1
                    except VenueError as exc:
                        log.warning("executor.cancel_failed", client_id=rec.client_order_id,
                                    error=exc.cause)
        return n

    async def _settle_unresolved(self, venue_name: str, rec: OrderRecord, reason: str) -> OrderRecord:
        """Look an unconfirmed order up until it is found or lost; past lost_after (+ a margin), say so."""
        cid = rec.client_order_id
        deadline = _monotonic() + self.lost_after + 2.0
        while _monotonic() < deadline:
            out = await self.resolve(venue_name, cid, rec.symbol, lost_if_missing=True)
            if out.status not in UNRESOLVED:
                break
            await asyncio.sleep(0.25)
        current = await self.store.get_order(cid) or rec
        if current.status in UNRESOLVED:
            message = f"{reason}: {cid} could not be resolved (it may still rest on the exchange)"
            log.critical("executor.unresolved_at_stop", client_id=cid)
            await self.store.error(message, client_order_id=cid, venue=venue_name, symbol=rec.symbol,
                                   error_type="UnresolvedAtStop")
        return current

    def settled(self, venue: str, symbol: str) -> None:
        """The instrument is back inside its band: the next episode starts with a fresh reprice budget."""
        self.reprices.pop((venue, symbol), None)


def _monotonic() -> float:
    return time.monotonic()


def now_utc() -> datetime:
    return datetime.now(UTC)
