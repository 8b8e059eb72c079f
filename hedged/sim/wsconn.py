"""What the local exchange's WebSocket fronts (Bybit hedged/sim/ws.py, Binance COIN-M hedged/sim/binance_ws.py)
share: a connection with its send queue and writer task, the read loop, the faults tests inject (silent drop,
reset, stalled topics) and the per-loop-turn coalescing of pushes. Each front keeps its own message shapes.

Engine events arrive synchronously: a push only queues a `Frame`; one writer task per connection sends them in
order, and counts each in the front's `sent` under the frame's kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiohttp import WSMsgType, web


@dataclass(frozen=True)
class Frame:
    body: dict[str, Any]  # the JSON sent
    kind: str  # what `sent` counts it under
    last: bool = False  # the connection is closed once it is written


@dataclass(eq=False, kw_only=True)
class WsConn:
    ws: web.WebSocketResponse
    api_key: str | None = None
    queue: asyncio.Queue[Frame | None] = field(default_factory=asyncio.Queue)
    silent: bool = False  # dropped without a close frame: nothing in or out, the socket stays open
    stalled: frozenset[str] = frozenset()  # prefixes (or kinds) withheld while the others flow

    def enqueue(self, frame: Frame) -> None:
        if not self.silent:
            self.queue.put_nowait(frame)

    def _transport(self) -> asyncio.Transport | None:
        return self.ws._req.transport if self.ws._req is not None else None

    def silence(self) -> None:
        self.silent = True
        transport = self._transport()
        if transport is not None:
            transport.pause_reading()

    def abort(self) -> bool:
        transport = self._transport()
        if transport is None:
            return False
        transport.abort()
        return True


C = TypeVar("C", bound=WsConn)


class WsConns(Generic[C]):
    """The live connections of a front, the faults on them, and pushes coalesced per loop turn (`_flush`)."""

    def __init__(self) -> None:
        self.conns: set[C] = set()
        self.sent: Counter[str] = Counter()  # frames written, by kind
        self._flush_scheduled = False

    def _channel(self, conn: C) -> str:
        raise NotImplementedError

    def _matching(self, channel: str | None, api_key: str | None) -> list[C]:
        return [c for c in list(self.conns)
                if (channel is None or self._channel(c) == channel) and (api_key is None or c.api_key == api_key)]

    # ---- faults (tests and the admin API) ---------------------------------------------------------
    def drop_silently(self, *, channel: str | None = None, api_key: str | None = None) -> int:
        """Black-hole matching connections as a dead NAT or cable would: no close frame, no pong, no
        data; the TCP socket stays open until the client gives up. Returns how many were dropped."""
        conns = self._matching(channel, api_key)
        for c in conns:
            c.silence()
        return len(conns)

    def stall(self, prefix: str, *, api_key: str | None = None) -> None:
        """Withhold what `prefix` names on live connections; pings and the rest keep flowing."""
        for c in self.conns:
            if api_key is None or c.api_key == api_key:
                c.stalled = c.stalled | {prefix}

    def unstall(self) -> None:
        for c in self.conns:
            c.stalled = frozenset()

    async def close(self) -> None:
        for c in list(self.conns):
            if c.silent:  # nobody reads it: abort rather than wait for a close handshake
                c.abort()
            c.queue.put_nowait(None)
            await c.ws.close()

    # ---- one connection ---------------------------------------------------------------------------
    async def serve(self, conn: C, on_message: Callable[[C, dict[str, Any]], None]) -> None:
        """Until the socket closes: text frames that parse as JSON objects go to `on_message`; the queue is
        written meanwhile."""
        self.conns.add(conn)
        writer = asyncio.create_task(self._writer(conn))
        try:
            async for msg in conn.ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                if isinstance(data, dict):
                    on_message(conn, data)
        finally:
            self.conns.discard(conn)
            conn.queue.put_nowait(None)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _writer(self, conn: C) -> None:
        while True:
            frame = await conn.queue.get()
            if frame is None or conn.ws.closed:
                return
            try:
                await conn.ws.send_str(json.dumps(frame.body))
            except (ConnectionError, RuntimeError):
                return
            self.sent[frame.kind] += 1
            if frame.last:
                await conn.ws.close()
                return

    # ---- coalescing -------------------------------------------------------------------------------
    def _schedule_flush(self) -> None:
        if self._flush_scheduled:
            return
        self._flush_scheduled = True
        try:
            asyncio.get_running_loop().call_soon(self._run_flush)
        except RuntimeError:
            self._run_flush()

    def _run_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        raise NotImplementedError
