"""systemd's notify protocol: READY=1, WATCHDOG=1, STATUS=, STOPPING=1 as datagrams to $NOTIFY_SOCKET.

Why a few lines and no library: the protocol is one datagram per message to a Unix socket (a path, or an
abstract name written with a leading '@'); the `sdnotify` package adds nothing over that and is barely
maintained. Why WATCHDOG=1 is gated: systemd restarts a unit whose pings stop, and a ping from a timer alone
would keep a hung keeper alive forever, so a ping is sent only while a cycle has completed within the
watchdog period (docs: deploy/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Mapping

from hedged.log import get_logger

log = get_logger("hedged.sdnotify")


class SdNotify:
    """Sends to $NOTIFY_SOCKET when systemd set it; does nothing otherwise (and never raises)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        self.address = ("\0" + path[1:]) if path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog: float | None = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *lines: str) -> bool:
        if not self.address:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.sendto("\n".join(lines).encode(), self.address)
            return True
        except OSError as exc:  # systemd gone or socket unusable: log, keep trading
            log.warning("sdnotify.failed", error=f"{type(exc).__name__}: {exc}"[:200])
            return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def alive(last_cycle: float | None, now: float, period: float) -> bool:
    """May we ping? Only when a cycle completed within `period`. Before the first cycle (start-up retrying an
    unreachable exchange, reconciliation) every step is bounded by request timeouts, so the loop being able
    to run this check is the sign of life; from the first cycle on, a cycle must keep completing."""
    return last_cycle is None or now - last_cycle <= period


async def watchdog(notify: SdNotify, last_cycle: Callable[[], float | None], status: Callable[[], str],
                   stop: asyncio.Event) -> None:
    """Every half watchdog period (or 5 s without one): STATUS=…, and WATCHDOG=1 only while alive."""
    period = notify.watchdog
    tick = period / 2 if period else 5.0
    while not stop.is_set():
        now = time.monotonic()
        lines = [f"STATUS={status()}"]
        if period is not None and alive(last_cycle(), now, period):
            lines.insert(0, "WATCHDOG=1")
        notify.send(*lines)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick)
