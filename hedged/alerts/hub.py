"""Where alerts go: the structured log and the audit store always, MQTT (through the bridge) when enabled.

The keeper hands the hub each cycle's observation; the pure monitors decide what to say; the hub says it.
An alert is audited before the bridge is poked, so the audit store is the one source the MQTT bridge
publishes from — an alert is on MQTT only if it is in the audit log, and exactly as it is there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from hedged.alerts.commands import Verdict
from hedged.alerts.dedupe import iso
from hedged.alerts.monitors import (
    Alert,
    Level,
    MonitorState,
    Observation,
    evaluate,
    event_alert,
    instrument_risks,
    venue_risks,
)
from hedged.alerts.mqtt import MqttBridge
from hedged.audit.store import AuditStore, EventKind
from hedged.config import Config
from hedged.log import get_logger
from hedged.model import Decision, Snapshot, TradingState

log = get_logger("hedged.alerts")


def state_message(keeper: str, state: TradingState, now: datetime, cycle: int | None,
                  snapshot: Snapshot | None, decisions: Sequence[Decision]) -> dict[str, Any]:
    """The retained `state` JSON: trading state and, per instrument, exposure, hedge, target, drift, mark,
    funding and liquidation distance (Decimals as strings)."""
    instruments: dict[str, Any] = {}
    venues: dict[str, Any] = {}
    if snapshot is not None:
        instruments = {r.key: r.as_json() for r in instrument_risks(snapshot, decisions)}
        venues = {v.venue: v.as_json() for v in venue_risks(snapshot, decisions)}
    return {"ts": iso(now), "keeper": keeper, "state": state.value, "halted": state is TradingState.HALTED,
            "cycle": cycle, "instruments": instruments, "venues": venues}


PENDING_MAX = 100  # alerts raised while the store was unwritable, kept to be audited when it is back


class AlertHub:
    def __init__(self, config: Config, store: AuditStore, bridge: MqttBridge | None = None) -> None:
        self.config, self.store, self.bridge = config, store, bridge
        self.memory = MonitorState()
        self.pending: list[Alert] = []
        self.store_error = ""  # why the store cannot be written, while it cannot

    def store_failed(self, error: str, now: datetime) -> None:
        """The audit store cannot be written: alert NOW, straight to MQTT (the store is the usual road), and
        keep the alert to audit once the store is back. Once per outage; never raises."""
        if self.store_error:
            return
        self.store_error = error or "audit store cannot be written"
        alert = event_alert(self.config.keeper.name, "audit_store", "critical",
                            f"audit store cannot be written: trading halted ({self.store_error})"[:500],
                            {"status": "firing", "key": "audit_store"}, now)
        log.critical("alert", code=alert.code, message=alert.message, alert_id=alert.id)
        if len(self.pending) < PENDING_MAX:
            self.pending.append(alert)
        if self.bridge is not None:
            self.bridge.publish_alert_direct(alert.as_json())

    async def store_recovered(self, now: datetime) -> None:
        """A probe write succeeded: audit what was raised meanwhile, then say it is resolved."""
        pending, self.pending = self.pending, []
        for a in pending:
            await self.emit(a, logged=True)
        error, self.store_error = self.store_error, ""
        await self.event("audit_store", "info", f"audit store writable again (was: {error})"[:500],
                         {"status": "resolved", "key": "audit_store"}, now)

    async def observe(self, obs: Observation) -> tuple[Alert, ...]:
        self.memory, alerts = evaluate(self.config.monitors, obs, self.memory)
        for a in alerts:
            await self.emit(a)
        return alerts

    async def event(self, code: str, level: Level, message: str, data: Mapping[str, Any], now: datetime) -> Alert:
        alert = event_alert(self.config.keeper.name, code, level, message, data, now)
        await self.emit(alert)
        return alert

    async def emit(self, alert: Alert, *, logged: bool = False) -> None:
        if not logged:
            getattr(log, alert.level)("alert", code=alert.code, message=alert.message, alert_id=alert.id,
                                      **{k: v for k, v in alert.data.items() if k in ("venue", "symbol")})
        await self.store.append(EventKind.ALERT, alert.as_json(), venue=alert.data.get("venue"),
                                symbol=alert.data.get("symbol"))
        if self.bridge is not None:
            self.bridge.notify()

    def publish_state(self, state: TradingState, now: datetime, snapshot: Snapshot | None,
                      decisions: Sequence[Decision]) -> None:
        if self.bridge is not None:
            message = state_message(self.config.keeper.name, state, now, self.store.cycle, snapshot, decisions)
            message["audit"] = {"writable": not self.store_error, "error": self.store_error or None,
                                "head": self.store.head or None}  # retained: the anchor `audit verify --head` takes
            self.bridge.publish_state(message)

    def notify(self) -> None:
        """Order events were audited: let the bridge follow."""
        if self.bridge is not None:
            self.bridge.notify()


async def record_command(store: AuditStore, verdict: Verdict) -> None:
    """Audit a remote command: accepted ones as a `command` (the keeper obeys it from its next cycle),
    refused ones as `command_refused` (never acted on)."""
    detail = verdict.as_json()
    if verdict.accepted and verdict.state is not None:
        await store.command(verdict.state, via="mqtt", reason=verdict.reason, by=detail)
        log.warning("command.accepted", command=verdict.command, nonce=verdict.nonce)
    else:
        await store.append(EventKind.COMMAND_REFUSED, detail)
        log.warning("command.refused", reason=verdict.reason, command=verdict.command)
