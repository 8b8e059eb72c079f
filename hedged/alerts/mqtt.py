"""The MQTT bridge: status, state, alerts, events, Home Assistant discovery and signed commands.

Why it is shaped like this: trading must never wait on a broker. The keeper only ever calls two
non-blocking methods — `publish_state` (a bounded deque: with the broker down the oldest states are
dropped first, and only the newest is worth sending on reconnect) and `notify` (an event). Alerts and
order events are not queued in memory at all: their source is the audit store, which already holds
every one of them durably and in order. The bridge follows the store with a cursor (the last event id it
delivered) and advances it only after the broker acknowledged the message (QoS 1), so whatever was
raised while the broker was down arrives after reconnect, in order, exactly as audited — and memory
stays bounded however long the outage.

Topics under `{prefix}/{name}/`: `status` (retained `online`; the last will, retained, is `offline`),
`state` (retained JSON), `alerts` and `events` (QoS 1), `cmd` and `cmd/result` (see commands.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import aiomqtt

from hedged.alerts.commands import CommandVerifier, RefusalBudget, Verdict
from hedged.audit.store import AuditStore, EventKind, EventRecord
from hedged.config import Config
from hedged.log import get_logger
from hedged.shutdown import within

log = get_logger("hedged.mqtt")

ORDER_EVENTS: Mapping[str, str] = {  # audit kind -> what the events topic calls it
    EventKind.SENT: "sent", EventKind.ACK: "acknowledged", EventKind.FILL: "filled",
    EventKind.CANCEL: "cancelled", EventKind.REJECT: "rejected", EventKind.ORDER: "updated",
}
FOLLOWED = (EventKind.ALERT, *ORDER_EVENTS)
BATCH = 200  # events read from the store per query
CLOSE_TIMEOUT = 2.0  # seconds close() may spend flushing, and again waiting for the task: shutdown is bounded


@dataclass(frozen=True, slots=True)
class Topics:
    base: str
    discovery_prefix: str

    @classmethod
    def of(cls, config: Config) -> Topics:
        return cls(f"{config.mqtt.prefix.rstrip('/')}/{config.keeper.name}", config.mqtt.discovery_prefix)

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def alerts(self) -> str:
        return f"{self.base}/alerts"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def cmd(self) -> str:
        return f"{self.base}/cmd"

    @property
    def cmd_result(self) -> str:
        return f"{self.base}/cmd/result"

    @property
    def ha_status(self) -> str:
        return f"{self.discovery_prefix}/status"


def event_message(rec: EventRecord) -> tuple[str, bytes] | None:
    """The (topic suffix, payload) an audit event becomes on MQTT, or None if it is not published."""
    payload = rec.payload if isinstance(rec.payload, dict) else {}
    if rec.kind == EventKind.ALERT:
        return "alerts", _dumps(payload)  # the alert exactly as audited
    event = ORDER_EVENTS.get(rec.kind)
    if event is None:
        return None
    return "events", _dumps({"audit_id": rec.id, "ts": rec.ts.isoformat(), "keeper": rec.keeper, "event": event,
                             "venue": rec.venue, "symbol": rec.symbol, "data": payload})


def discovery_messages(config: Config, topics: Topics) -> list[tuple[str, bytes]]:
    """Home Assistant MQTT discovery: per instrument drift, hedge ratio, funding/day, liquidation distance;
    one binary sensor for halted. All read the retained state topic; availability follows status."""
    name = config.keeper.name
    node = _slug(f"hedged_{name}")
    device = {"identifiers": [node], "name": f"hedged {name}", "manufacturer": "hedged", "model": "hedge keeper"}
    common = {"state_topic": topics.state, "availability_topic": topics.status, "payload_available": "online",
              "payload_not_available": "offline", "device": device}
    out: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for h in config.hedge:
        key = f"{h.venue}:{h.instrument}"
        if key in seen:
            continue
        seen.add(key)
        ref = f"value_json.instruments[{json.dumps(key)}]"
        for metric, label, unit, field, scale in (
            ("drift", "drift", h.instrument.split("/")[0], "drift", ""),
            ("hedge_ratio", "hedge ratio", "%", "hedge_ratio", " * 100"),
            ("funding_cost", "funding cost per day", "USD", "funding_cost_usd_per_day", ""),
            ("liquidation_distance", "liquidation distance", "%", "liquidation_distance_pct", ""),
        ):
            obj = _slug(f"{key}_{metric}")
            template = (f"{{% set i = {ref} if value_json.instruments is defined else none %}}"
                        f"{{{{ ((i.{field} | float){scale}) | round(6) if i and i.{field} is not none "
                        f"else none }}}}")
            body = {**common, "name": f"{h.instrument} {label}", "unique_id": f"{node}_{obj}",
                    "object_id": f"{node}_{obj}", "value_template": template, "unit_of_measurement": unit,
                    "state_class": "measurement"}
            out.append((f"{topics.discovery_prefix}/sensor/{node}/{obj}/config", _dumps(body)))
    halted = {**common, "name": "halted", "unique_id": f"{node}_halted", "object_id": f"{node}_halted",
              "value_template": "{{ 'ON' if value_json.halted else 'OFF' }}", "payload_on": "ON",
              "payload_off": "OFF", "device_class": "problem"}
    out.append((f"{topics.discovery_prefix}/binary_sensor/{node}/halted/config", _dumps(halted)))
    return out


class MqttBridge:
    """One aiomqtt client in a background task; reconnects with backoff; never blocks its callers."""

    def __init__(
        self,
        config: Config,
        store: AuditStore,
        *,
        password: str | None = None,
        command_secret: str | None = None,
        on_command: Callable[[Verdict], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
        backoff: tuple[float, float] = (0.5, 15.0),
    ) -> None:
        self.config, self.store, self.topics = config, store, Topics.of(config)
        self._password = password
        self._on_command = on_command
        self.verifier = CommandVerifier(command_secret, clock) if command_secret and config.mqtt.commands else None
        self.refusals = RefusalBudget()
        self._clock = clock
        self._states: deque[bytes] = deque(maxlen=config.mqtt.queue_size)
        self._direct: deque[bytes] = deque(maxlen=100)  # alerts that cannot go through the store (it is down)
        self._wake = asyncio.Event()
        self._drain_lock = asyncio.Lock()  # close() and the pump may both drain: never deliver twice
        self._stopping = False
        self._intake = True  # False once the keeper is stopping: commands are no longer taken
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._backoff = backoff
        self.cursor = 0
        self.connected = asyncio.Event()

    # --- what the keeper calls (never awaits the broker) --------------------------------------------
    def publish_state(self, state: Mapping[str, Any]) -> None:
        self._states.append(_dumps(state))  # full: deque(maxlen) drops the oldest
        self._wake.set()

    def notify(self) -> None:
        """New alerts or order events are in the store."""
        self._wake.set()

    def publish_alert_direct(self, alert: Mapping[str, Any]) -> None:
        """An alert about the store itself: published without it (the keeper audits it later)."""
        self._direct.append(_dumps(alert))
        self._wake.set()

    # --- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Follow the store from its current head: what happens from now on is published."""
        self.cursor = await self.store.head_id()
        if self.verifier is not None:
            await self._remember_recent_commands()
        self._task = asyncio.create_task(self._run(), name="mqtt-bridge")

    def stop_intake(self) -> None:
        """The first step of shutdown: take no more commands (what is already being audited finishes)."""
        self._intake = False

    async def close(self) -> None:
        """Flush what we can, publish `offline` (retained), disconnect — in a few seconds at most."""
        self._stopping = True
        self._wake.set()
        client = self._client
        if client is not None and self.connected.is_set():
            with contextlib.suppress(Exception):
                await within(self._last_words(client), CLOSE_TIMEOUT)
        if self._task is not None:
            # asyncio.wait, not wait_for: a task stuck in a cancelled store query is left, not waited on
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT)

    async def _last_words(self, client: aiomqtt.Client) -> None:
        await self._drain(client)
        await client.publish(self.topics.status, b"offline", qos=1, retain=True)

    # --- the background task ------------------------------------------------------------------------
    async def _run(self) -> None:
        low, high = self._backoff
        delay = low
        while not self._stopping:
            try:
                async with self._make_client() as client:
                    self._client = client
                    await self._on_connect(client)
                    self.connected.set()
                    delay = low
                    log.info("mqtt.connected", host=self.config.mqtt.host, port=self.config.mqtt.port)
                    await _first_failure(self._pump(client), self._listen(client))
            except aiomqtt.MqttError as exc:
                if self.connected.is_set():
                    log.warning("mqtt.disconnected", error=str(exc)[:200])
                else:
                    log.debug("mqtt.connect_failed", error=str(exc)[:200], retry_in=round(delay, 2))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug or a store hiccup must not kill alerting for good
                log.error("mqtt.bridge_error", error=f"{type(exc).__name__}: {exc}"[:300])
            finally:
                self.connected.clear()
                self._client = None
            if self._stopping:
                return
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(high, delay * 2)

    def _make_client(self) -> aiomqtt.Client:
        m = self.config.mqtt
        tls: ssl.SSLContext | None = None
        if m.tls:
            tls = ssl.create_default_context(cafile=str(self.config.resolve(m.ca_file)) if m.ca_file else None)
        return aiomqtt.Client(
            m.host, m.port, username=m.username or None, password=self._password,
            identifier=f"hedged-{self.config.keeper.name}", keepalive=m.keepalive, timeout=10,
            will=aiomqtt.Will(self.topics.status, b"offline", qos=1, retain=True), tls_context=tls,
            clean_session=True,
        )

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        await client.publish(self.topics.status, b"online", qos=1, retain=True)
        if self.config.mqtt.homeassistant:
            await self._discovery(client)
            await client.subscribe(self.topics.ha_status, qos=1)
        if self.verifier is not None:
            await client.subscribe(self.topics.cmd, qos=1)
        self._wake.set()

    async def _discovery(self, client: aiomqtt.Client) -> None:
        for topic, body in discovery_messages(self.config, self.topics):
            await client.publish(topic, body, qos=1, retain=True)

    async def _pump(self, client: aiomqtt.Client) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            await self._drain(client)

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Deliver followed store events after the cursor, in order; then the newest state."""
        async with self._drain_lock:
            while self._direct:
                await client.publish(self.topics.alerts, self._direct[0], qos=1)
                self._direct.popleft()  # only after the broker acknowledged it
            try:
                await self._drain_events(client)
            except aiomqtt.MqttError:
                raise
            except Exception as exc:  # the store cannot be read: the state (which says so) still goes out
                log.warning("mqtt.store_unreadable", error=f"{type(exc).__name__}: {exc}"[:200])
            await self._drain_state(client)

    async def _drain_events(self, client: aiomqtt.Client) -> None:
        while True:
            batch = await self.store.events_after(self.cursor, BATCH, kinds=FOLLOWED)
            for rec in batch:
                msg = event_message(rec)
                if msg is not None:
                    await client.publish(f"{self.topics.base}/{msg[0]}", msg[1], qos=1)
                self.cursor = rec.id  # only after the broker acknowledged it
            if len(batch) < BATCH:
                break

    async def _drain_state(self, client: aiomqtt.Client) -> None:
        if not self._states:
            return
        newest = self._states[-1]  # retained: only the newest matters; older ones are dropped
        await client.publish(self.topics.state, newest, qos=1, retain=True)
        while self._states and self._states.popleft() is not newest:
            pass  # older states are dropped; any that arrived during the publish stay for the next drain

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            if topic == self.topics.ha_status and payload.strip() == b"online":
                log.info("mqtt.ha_online")
                await self._discovery(client)
            elif topic == self.topics.cmd and self.verifier is not None:
                if not self._intake:
                    log.info("mqtt.command_ignored", reason="keeper is stopping")
                    continue
                verdict = await self.handle_command(payload)
                await client.publish(self.topics.cmd_result, _dumps(verdict.as_json()), qos=1)

    async def handle_command(self, payload: bytes) -> Verdict:
        """Verify one `cmd` message and hand it on to be audited (refusals within their budget)."""
        assert self.verifier is not None
        verdict = self.verifier.check(payload)
        audited = verdict if verdict.accepted else self.refusals.admit(verdict, self._clock())
        if audited is not None and self._on_command is not None:
            try:
                await self._on_command(audited)
            except Exception as exc:  # the store is down: the keeper obeys only audited commands, so say so
                log.error("mqtt.command_not_audited", error=f"{type(exc).__name__}: {exc}"[:300])
                if verdict.accepted:
                    return replace(verdict, accepted=False, state=None,
                                   reason="not obeyed: the audit store could not record it")
        return verdict

    async def _remember_recent_commands(self) -> None:
        """Commands audited within twice the window stay refused across a restart (by their replay id)."""
        assert self.verifier is not None
        since = datetime.fromtimestamp(self._clock() - 2 * self.verifier.window - 60, tz=UTC)
        after = 0
        while True:
            batch = await self.store.events_after(after, 1000, since=since,
                                                  kinds=(EventKind.COMMAND, EventKind.COMMAND_REFUSED))
            for rec in batch:
                about = rec.payload.get("by") if isinstance(rec.payload, dict) else None
                about = about if isinstance(about, dict) else rec.payload
                if not isinstance(about, dict):
                    continue
                rid, ts = about.get("replay_id"), about.get("ts")
                if isinstance(rid, str) and rid:
                    with contextlib.suppress(ValueError, TypeError):  # ts is audited as a string
                        self.verifier.remember_id(rid, float(ts))  # type: ignore[arg-type]
            if len(batch) < 1000:
                return
            after = batch[-1].id


async def _first_failure(*coros: Awaitable[None]) -> None:
    """Run together; when one fails (a disconnect), cancel the others and raise its error."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for t in tasks:
            t.cancel()
    for t in done:
        t.result()


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]+", "_", text).strip("_").lower()


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode()


__all__: Sequence[str] = ("MqttBridge", "Topics", "discovery_messages", "event_message")
