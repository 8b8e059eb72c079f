"""The imperative shell around the keeper: credentials, account locks, the store, venues, signals."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from hedged import shutdown
from hedged.alerts.commands import Verdict
from hedged.alerts.hub import AlertHub, record_command
from hedged.alerts.mqtt import MqttBridge
from hedged.audit.lock import config_locks, hold_locks
from hedged.audit.migrate import ensure_schema
from hedged.audit.store import AuditStore
from hedged.config import Config, ConfigError
from hedged.keeper import CycleResult, Keeper
from hedged.log import get_logger, register_secrets
from hedged.metrics import Metrics
from hedged.model import Snapshot
from hedged.sdnotify import SdNotify, watchdog
from hedged.snapshot import VERSION
from hedged.stream import StreamedVenue, attach
from hedged.venue import CcxtVenue, build_exchange, build_pro, streams_on
from hedged.wake import price_sensitive

log = get_logger("hedged.service")


def secrets_of(config: Config) -> list[str]:
    """Every secret value the config points at, so the store can refuse to write any of them."""
    out: list[str] = []
    for v in config.venues.values():
        out.extend(s.get_secret_value() for s in v.credentials(config.base_dir).values())
    if config.mqtt.enabled:
        for secret in (config.mqtt.password(config.base_dir), config.mqtt.command_secret()):
            if secret is not None:
                out.append(secret.get_secret_value())
    return [s for s in out if s]


def make_venues(config: Config) -> dict[str, CcxtVenue]:
    venues: dict[str, CcxtVenue] = {}
    for name, vc in config.venues.items():
        creds = {k: s.get_secret_value() for k, s in vc.credentials(config.base_dir).items()}
        symbols = [h.instrument for h in config.hedge if h.venue == name]
        prices = [h.price_symbol for h in config.hedge if h.price_symbol and h.venue == name]
        try:
            if streams_on(vc):
                venues[name] = streamed_venue(config, name, creds, symbols, prices)
                continue
            exchange = build_exchange(vc, creds)  # no connection yet: nothing to close if a later one fails
        except ValueError as exc:  # e.g. an exchange id ccxt does not know: the config, not a crash
            raise ConfigError([f"venues.{name}.{exc}"]) from None
        venues[name] = CcxtVenue(name, vc, exchange, symbols, prices, markets_refresh=config.keeper.markets_refresh)
    return venues


def streamed_venue(config: Config, name: str, creds: dict[str, str], symbols: list[str],
                   prices: list[str]) -> StreamedVenue:
    vc = config.venues[name]
    # only price-sensitive hedges (hedged/wake.py) can be woken by a ticker alone
    sensitive = []
    for h in config.hedge:
        if h.venue != name:
            continue
        inverse = h.instrument.endswith(":" + h.instrument_base)
        if price_sensitive(inverse=inverse, own_coin=h.asset == h.instrument_base,
                           collateral_counted=h.include_collateral):
            sensitive.append(h.instrument)
    return StreamedVenue(name, vc, build_exchange(vc, creds), symbols, prices, pro=build_pro(vc, creds),
                         resync=config.keeper.resync, sensitive=sensitive, min_spacing=config.keeper.wake_spacing,
                         markets_refresh=config.keeper.markets_refresh)


def make_bridge(config: Config, store: AuditStore, wake: asyncio.Event) -> MqttBridge:
    """The MQTT bridge; an accepted remote command is audited, then wakes the keeper to obey it."""
    password = config.mqtt.password(config.base_dir)
    secret = config.mqtt.command_secret()

    async def on_command(verdict: Verdict) -> None:
        await record_command(store, verdict)
        if verdict.accepted:
            wake.set()

    return MqttBridge(config, store, password=password.get_secret_value() if password else None,
                      command_secret=secret.get_secret_value() if secret else None, on_command=on_command)


@asynccontextmanager
async def opened_venues(config: Config) -> AsyncIterator[dict[str, CcxtVenue]]:
    venues = make_venues(config)
    try:
        yield venues
    finally:
        closing = asyncio.gather(*(v.close() for v in venues.values()), return_exceptions=True)
        try:
            await shutdown.within(closing, 3.0)  # a hung HTTP session must not hold up the exit
        except TimeoutError:
            log.warning("venues.close_timeout")


async def raw_snapshot(venues: dict[str, CcxtVenue]) -> dict[str, Any]:
    """Live state as a snapshot v1 dict (docs/snapshot.md): what `hedged snapshot` prints."""
    await asyncio.gather(*(v.load_markets() for v in venues.values()))
    names = list(venues)
    states = await asyncio.gather(*(venues[n].fetch_state() for n in names))
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"version": VERSION, "time": now, "venues": dict(zip(names, states, strict=True))}


async def _on_stop(stop: asyncio.Event, notify: SdNotify) -> None:
    await stop.wait()
    notify.send("STOPPING=1", "STATUS=stopping: no new orders")


@asynccontextmanager
async def serve_metrics(config: Config) -> AsyncIterator[Metrics | None]:
    """`[metrics] enabled`: /metrics and /health from before reconciliation until the keeper has stopped."""
    if not config.metrics.enabled:
        yield None
        return
    from hedged.metrics_server import MetricsServer

    metrics = Metrics(config)
    server = MetricsServer(metrics, config.metrics.host, config.metrics.port)
    await server.start()
    try:
        yield metrics
    finally:
        await server.stop()


async def _bounded(what: str, work: Awaitable[None], seconds: float) -> None:
    try:
        await shutdown.within(work, seconds)
    except TimeoutError:
        log.error("shutdown.step_timeout", step=what, seconds=round(seconds, 1))
    except Exception as exc:
        log.error("shutdown.step_failed", step=what, error=type(exc).__name__)


async def _live_until_stopped(keeper: Keeper, bridge: MqttBridge | None, stop: asyncio.Event,
                              notify: SdNotify) -> shutdown.Deadline:
    """Start and run the keeper until `stop`; then stop command intake and make sure Keeper.shutdown ran
    (cancelling our orders) within its share of the deadline, even if a cycle or the start is stuck."""

    async def live() -> None:
        await keeper.start()
        notify.send("READY=1", f"STATUS={keeper.status_line()}")  # reconciled: trading from now
        log.info("keeper.started", name=keeper.config.keeper.name, mode=keeper.config.keeper.mode,
                 instruments=[h.instrument for h in keeper.config.hedge])
        await keeper.run(stop)  # ends with Keeper.shutdown once `stop` is set

    task = asyncio.create_task(live(), name="keeper")
    stopped = asyncio.create_task(stop.wait(), name="keeper-stop")
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        stopped.cancel()
    deadline = shutdown.Deadline()
    if bridge is not None:
        bridge.stop_intake()
    if not task.done():
        # the cycle in flight may finish (then run() calls shutdown itself); a stuck one is cancelled
        await asyncio.wait({task}, timeout=deadline.share(3.0))
        if not task.done() and not keeper.stopping:
            task.cancel()
            await asyncio.wait({task}, timeout=deadline.share(1.0))
            log.warning("keeper.cycle_abandoned", reason="stop signal: the cycle in flight did not finish")
            await keeper.shutdown(deadline)
        elif not task.done():
            await asyncio.wait({task}, timeout=deadline.share(8.0))
            if not task.done():
                task.cancel()
                log.error("shutdown.step_timeout", step="keeper")
    failed = task.exception() if task.done() and not task.cancelled() else None
    if failed is not None:
        raise failed
    return deadline


async def run_keeper(config: Config, *, stop: asyncio.Event | None = None,
                     on_cycle: Callable[[CycleResult, Snapshot | None], None] | None = None,
                     install_signals: bool = True) -> None:
    """Lock the accounts, open (and upgrade) the store, reconcile, then cycle until stopped.

    Raises AccountLocked (exit 3 at the CLI) when another keeper trades one of the accounts.
    """
    stop = stop or asyncio.Event()
    register_secrets(secrets_of(config))  # never in a log line or a traceback, like never in the store
    loop = asyncio.get_running_loop()
    if install_signals:
        def on_signal() -> None:
            stop.set()
            shutdown.arm()  # the last resort: the teardown below is bounded step by step

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        if shutdown.stop_requested():
            on_signal()
    async with hold_locks(config_locks(config)) as locks, serve_metrics(config) as metrics:
        await ensure_schema(config.audit_url, config.audit.auto_upgrade)
        store = await AuditStore.open(config.audit_url, config.keeper.name, secrets=secrets_of(config),
                                      allow_keys=config.venues.keys(), write_timeout=config.audit.write_timeout,
                                      quiet_every=config.audit.quiet_every, head_file=config.head_file)
        bridge: MqttBridge | None = None
        deadline: shutdown.Deadline | None = None
        try:
            async with opened_venues(config) as venues:
                wake = asyncio.Event()
                if config.mqtt.enabled:
                    bridge = make_bridge(config, store, wake)
                    await bridge.start()
                keeper = Keeper(config, store, venues, on_cycle=on_cycle, wake=wake,
                                alerts=AlertHub(config, store, bridge), locks=locks)
                attach(keeper)  # streamed venues wake it; no-op when none streams
                if metrics is not None:
                    keeper.on_cycle = metrics.attach(keeper, store, venues, bridge, keeper.on_cycle)
                notify = SdNotify()
                done = asyncio.Event()
                pinger = asyncio.create_task(watchdog(notify, lambda: keeper.last_cycle_done,
                                                      keeper.status_line, done))
                stopping = asyncio.create_task(_on_stop(stop, notify))
                try:
                    deadline = await _live_until_stopped(keeper, bridge, stop, notify)
                finally:
                    if not stop.is_set():  # stopping for another reason (lock lost, an error)
                        notify.send("STOPPING=1")
                    done.set()
                    stopping.cancel()
                    await asyncio.gather(pinger, stopping, return_exceptions=True)
                    notify.close()
        finally:
            # the teardown, in order, each step within its share of one deadline: stop intake (done above),
            # cancel our orders (Keeper.shutdown, done above), close the bridge, close the store
            deadline = deadline or shutdown.Deadline()
            if bridge is not None:
                await _bounded("bridge", bridge.close(), deadline.share(5.0))
            await _bounded("store", store.close(), deadline.share(3.0))
    # leaving hold_locks released the account lock
    log.info("keeper.stopped")
