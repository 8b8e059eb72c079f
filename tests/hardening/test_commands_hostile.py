"""Hostile MQTT commands (issue 17, items 4-7): replay across a restart, NaN timestamps, nesting bombs,
and junk that would grow the audit store without bound."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from hedged.alerts.commands import CommandVerifier, RefusalBudget, Verdict, sign, signed_command
from hedged.alerts.hub import record_command
from hedged.alerts.mqtt import MqttBridge
from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore, EventKind
from tests.keeper.conftest import keeper_config

SECRET = "hostile-cmd-secret-3Jx"


def signed_body(body: str) -> bytes:
    return json.dumps({"body": body, "sig": sign(SECRET, body)}).encode()


async def open_bridge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[AuditStore, MqttBridge]:
    monkeypatch.setenv("HOSTILE_SECRET", SECRET)
    cfg = keeper_config("http://127.0.0.1:9", tmp_path / "k.db", mqtt={
        "enabled": True, "commands": True, "command_secret_env": "HOSTILE_SECRET"})
    await upgrade(cfg.audit_url)
    store = await AuditStore.open(cfg.audit_url, cfg.keeper.name)

    async def on_command(v: Verdict) -> None:
        await record_command(store, v)

    bridge = MqttBridge(cfg, store, command_secret=SECRET, on_command=on_command)
    await bridge._remember_recent_commands()  # what start() does before connecting
    return store, bridge


async def test_a_replay_after_a_restart_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, bridge = await open_bridge(tmp_path, monkeypatch)
    resume = signed_command(SECRET, "resume", ts=time.time(), reason="before the restart")
    assert (await bridge.handle_command(resume)).accepted
    await store.close()
    # the keeper restarts: a new bridge, its memory only what the audit store kept
    store, bridge = await open_bridge(tmp_path, monkeypatch)
    try:
        again = await bridge.handle_command(resume)
        assert not again.accepted and again.reason.startswith("replayed"), again
    finally:
        await store.close()


NOW = 1_800_000_000.0


@pytest.mark.parametrize("ts", ["NaN", "nan", "Infinity", '"NaN"', '"inf"', "true", '"1800000000"', "null",
                                '"2027-01-15"', "[1800000000]", "1e400"])
def test_ts_that_is_not_a_finite_time_is_refused(ts: str) -> None:
    body = '{"command": "resume", "ts": ' + ts + ', "nonce": "n"}'
    v = CommandVerifier(SECRET, clock=lambda: NOW).check(signed_body(body))
    assert not v.accepted and v.reason.startswith(("malformed body", "stale")), v


def test_ts_as_rfc3339_is_accepted() -> None:
    body = '{"command": "resume", "ts": "2027-01-15T08:00:00Z", "nonce": "n"}'
    now = 1800000000.0  # 2027-01-15T08:00:00Z
    v = CommandVerifier(SECRET, clock=lambda: now).check(signed_body(body))
    assert v.accepted, v


@pytest.mark.parametrize("payload", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"body": ' + b"[" * 50_000 + b"]" * 50_000 + b', "sig": "00"}',
    b'{"body": "x", "sig": "' + b"a" * 100_000 + b'"}',
    b"\xff\xfe\x00garbage",
])
def test_nesting_bombs_and_junk_never_escape_the_verifier(payload: bytes) -> None:
    v = CommandVerifier(SECRET, clock=lambda: NOW).check(payload)
    assert not v.accepted and v.reason.startswith("malformed"), v


def test_a_signed_nesting_bomb_in_the_body_is_refused() -> None:
    body = '{"command": "resume", "ts": 1800000000, "x": ' + "[" * 3000 + "]" * 3000 + "}"
    v = CommandVerifier(SECRET, clock=lambda: NOW).check(signed_body(body))
    assert not v.accepted and v.reason.startswith("malformed"), v


async def test_a_valid_command_right_after_a_bomb_is_obeyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, bridge = await open_bridge(tmp_path, monkeypatch)
    try:
        await bridge.handle_command(b"[" * 100_000)
        assert (await bridge.handle_command(signed_command(SECRET, "halt", ts=time.time()))).accepted
        assert (await store.requested_state()).value == "HALTED"
    finally:
        await store.close()


async def count(store: AuditStore, kind: str) -> list[Any]:
    return [e for e in await store.events_after(0, 100_000, kinds=(kind,))]


async def test_junk_commands_do_not_grow_the_audit_store_but_accepted_ones_are_all_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, bridge = await open_bridge(tmp_path, monkeypatch)
    try:
        accepted = 0
        for i in range(300):
            if i % 30 == 0:
                cmd = "halt" if (i // 30) % 2 == 0 else "resume"
                assert (await bridge.handle_command(signed_command(SECRET, cmd, ts=time.time()))).accepted
                accepted += 1
            else:
                await bridge.handle_command(b'{"body": "{}", "sig": "' + b"0" * 64 + b'"}')
        refused = await count(store, EventKind.COMMAND_REFUSED)
        commands = await count(store, EventKind.COMMAND)
        assert len(commands) == accepted == 10
        assert len(refused) <= bridge.refusals.burst, len(refused)  # 290 refusals within one window
    finally:
        await store.close()


def test_the_refusal_budget_reports_what_it_suppressed() -> None:
    budget = RefusalBudget(burst=3, window=60)
    junk = Verdict(False, "bad signature")
    audited = [budget.admit(junk, t) for t in range(10)]
    assert [a is not None for a in audited] == [True] * 3 + [False] * 7
    later = budget.admit(junk, 61)
    assert later is not None and later.suppressed == 7 and later.as_json()["suppressed"] == 7
