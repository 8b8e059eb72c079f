"""Signed remote commands: only a fresh, correctly signed, never-seen command is accepted."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hedged.alerts.commands import COMMANDS, CommandVerifier, sign, signed_command
from hedged.model import TradingState

SECRET = "s3cret-for-tests"
NOW = 1_800_000_000.0


def verifier(now: float = NOW) -> CommandVerifier:
    return CommandVerifier(SECRET, clock=lambda: now)


@pytest.mark.parametrize(("command", "state"), [
    ("halt", TradingState.HALTED), ("resume", TradingState.RUNNING), ("pause", TradingState.PAUSED),
    ("reduce-only", TradingState.REDUCING),
])
def test_each_command_maps_to_its_state(command: str, state: TradingState) -> None:
    v = verifier().check(signed_command(SECRET, command, ts=NOW - 5, reason="why"))
    assert v.accepted and v.state is state and v.command == command and v.reason == "why"


def test_signature_is_over_the_body_text_so_any_language_can_sign() -> None:
    body = '{"command": "halt", "ts": 1800000000, "nonce": "n1"}'  # not our serialisation: spaces, no reason
    payload = json.dumps({"body": body, "sig": sign(SECRET, body).upper()}).encode()
    assert verifier().check(payload).accepted


@pytest.mark.parametrize(("payload", "why"), [
    (b"halt", "malformed"),
    (b'{"command": "halt", "ts": 1800000000}', "malformed"),  # unsigned
    (json.dumps({"body": '{"command":"halt","ts":1800000000}', "sig": "00" * 32}).encode(), "bad signature"),
    (signed_command("other-secret", "halt", ts=NOW), "bad signature"),
    (signed_command(SECRET, "halt", ts=NOW - 31), "stale"),
    (signed_command(SECRET, "halt", ts=NOW + 31), "stale"),  # from the future
    (signed_command(SECRET, "sell-everything", ts=NOW), "unknown command"),
])
def test_refusals_say_why(payload: bytes, why: str) -> None:
    v = verifier().check(payload)
    assert not v.accepted and v.state is None
    assert v.reason.startswith(why), v.reason


def test_the_same_signed_message_is_refused_the_second_time() -> None:
    ver = verifier()
    msg = signed_command(SECRET, "resume", ts=NOW)
    assert ver.check(msg).accepted
    again = ver.check(msg)
    assert not again.accepted and again.reason.startswith("replayed")


def test_a_signature_remembered_from_the_audit_log_stays_refused() -> None:
    msg = signed_command(SECRET, "resume", ts=NOW)
    ver = verifier()
    ver.remember(json.loads(msg)["sig"], NOW)  # what the bridge does at start-up
    assert ver.check(msg).reason.startswith("replayed")


@given(st.text(max_size=20), st.sampled_from(sorted(COMMANDS)))
def test_a_tampered_body_never_passes(extra: str, command: str) -> None:
    outer = json.loads(signed_command(SECRET, command, ts=NOW))
    outer["body"] = outer["body"].replace(command, command + extra + "x", 1)
    assert not verifier().check(json.dumps(outer).encode()).accepted
