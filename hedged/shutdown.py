"""Bounded shutdown: after SIGTERM the process ends within `LIMIT` seconds, whatever is in flight.

Why: a database connection whose query was cancelled with its task (an MQTT command being audited as the
bridge stopped) can leave its driver thread — aiosqlite's is not a daemon — waiting forever, and both
asyncio's final cancellation and the interpreter's exit wait for it, with the account lock held. So every
teardown step has a share of one deadline (`Deadline`), `run` bounds asyncio's last cancellation of
leftover tasks, `exit_when_stuck` ends the process once our own work is done if a foreign thread would keep
it alive, and `arm` is the last resort should the loop itself stop making progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from hedged.log import get_logger

log = get_logger("hedged.shutdown")
T = TypeVar("T")

LIMIT = 13.0  # seconds from SIGTERM to the end of the teardown (the unit's TimeoutStopSec is larger)
WATCHDOG = 14.0  # seconds from SIGTERM after which the process is ended whatever it is doing
GRACE = 2.0  # seconds leftover tasks and threads get once the teardown is done


class Deadline:
    """One budget shared by the teardown steps: each gets its cap, or what is left if that is less."""

    def __init__(self, limit: float = LIMIT) -> None:
        self.end = time.monotonic() + limit

    def share(self, cap: float) -> float:
        return max(0.05, min(cap, self.end - time.monotonic()))


async def within(work: Awaitable[T], seconds: float) -> T:
    """`work`'s result, or TimeoutError after `seconds` — never later. Unlike `asyncio.wait_for`, which on
    timeout waits (unbounded) for the cancelled work to finish cancelling, the late work is cancelled and
    left behind."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        raise TimeoutError(f"not done within {seconds:.1f}s")
    return task.result()


_armed: threading.Timer | None = None
_early = threading.Event()


def catch_early_signals() -> None:
    """Until the event loop takes them over, SIGTERM/SIGINT only note that a stop was asked for."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: _early.set())


def stop_requested() -> bool:
    """A stop signal arrived before the loop's handlers were installed."""
    return _early.is_set()


def arm(limit: float = WATCHDOG) -> None:
    """Start the watchdog (once): if the process still runs `limit` seconds from now, end it (exit 1)."""
    global _armed
    if _armed is not None:
        return

    def force() -> None:
        log.critical("shutdown.forced", error=f"teardown did not finish within {limit:.0f}s of the stop signal")
        _flush()
        os._exit(1)

    _armed = threading.Timer(limit, force)
    _armed.daemon = True
    _armed.start()


def disarm() -> None:
    global _armed
    if _armed is not None:
        _armed.cancel()
        _armed = None


def run(main: Coroutine[Any, Any, T], *, grace: float = GRACE) -> T:
    """`asyncio.run`, except that leftover tasks get `grace` seconds to finish cancelling, not forever."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_leftovers(loop, grace)
            loop.run_until_complete(_bounded(loop.shutdown_asyncgens(), grace))
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop, grace: float) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not tasks:
        return
    for t in tasks:
        t.cancel()
    loop.run_until_complete(asyncio.wait(tasks, timeout=grace))
    stuck = [t.get_name() for t in tasks if not t.done()]
    if stuck:
        log.warning("shutdown.tasks_left", tasks=stuck[:10])
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            log.warning("shutdown.task_failed", task=t.get_name(), error=type(t.exception()).__name__)


async def _bounded(coro: Coroutine[Any, Any, None], grace: float) -> None:
    try:
        await within(coro, grace)
    except (TimeoutError, Exception):
        log.warning("shutdown.asyncgens_left")


def exit_when_stuck(code: int, grace: float = GRACE) -> None:
    """Our work is done: if non-daemon threads (a driver's worker) outlive `grace`, exit now with `code`."""
    end = time.monotonic() + grace
    main = threading.main_thread()
    for t in threading.enumerate():
        if t is not main and not t.daemon:
            t.join(max(0.0, end - time.monotonic()))
    left = [t.name for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()]
    if left:
        log.warning("shutdown.threads_left", threads=left[:10], detail="a driver thread would keep the process alive")
        _flush()
        os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # the process is ending; nothing to tell
            stream.flush()
