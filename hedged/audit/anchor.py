"""Where `audit verify` finds the chain head published outside the store: the head file and the retained
MQTT state. Why: a chain proves order and integrity, but deleting its newest rows leaves a valid shorter
chain; only a head kept elsewhere (HASH:COUNT after every commit) shows the truncation.

Each source gives an `Anchor` or a one-line reason it could not (`Missing`): a missing anchor is a
warning the operator must see, never a silent pass. A head file that exists but is not one is tampering
evidence as much as a wrong hash: `Bad`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hedged.config import Config

MQTT_WAIT = 5.0  # seconds to wait for the broker and its retained state message


@dataclass(frozen=True, slots=True)
class Anchor:
    source: str  # "--head", "head file PATH", "MQTT retained TOPIC"
    keeper: str
    hash: str
    count: int

    @property
    def text(self) -> str:
        return f"head {self.hash[:16]}…:{self.count} ({self.source})"


@dataclass(frozen=True, slots=True)
class Missing:
    source: str
    why: str


@dataclass(frozen=True, slots=True)
class Bad:
    source: str
    why: str


def parse_head(text: str) -> tuple[str, int] | None:
    """HASH:COUNT → (hash, count); None when it is not that."""
    hash_, _, count = text.partition(":")
    if re.fullmatch(r"[0-9a-f]{64}", hash_) and count.isdigit():
        return hash_, int(count)
    return None


def from_head_file(config: Config) -> Anchor | Missing | Bad:
    from hedged.audit.store import default_head_file, read_head_file

    path = config.head_file or default_head_file(config.audit_url)
    if path is None:
        return Missing("head file", "none for a Postgres store unless [audit] head_file names one")
    source = f"head file {path}"
    if not path.exists():
        return Missing(source, "absent")
    try:
        keeper, digest, count = read_head_file(path)
    except ValueError as exc:
        return Bad(source, str(exc))
    return Anchor(source, keeper, digest, count)


async def from_mqtt(config: Config, wait: float = MQTT_WAIT) -> Anchor | Missing | Bad | None:
    """The `audit.head` of the keeper's retained state topic; None when [mqtt] is not enabled."""
    if not config.mqtt.enabled:
        return None
    import aiomqtt

    from hedged.alerts.mqtt import Topics

    m = config.mqtt
    topic = Topics.of(config).state
    source = f"MQTT retained {topic} on {m.host}:{m.port}"
    password = m.password(config.base_dir)
    tls = ssl.create_default_context(cafile=str(config.resolve(m.ca_file)) if m.ca_file else None) if m.tls else None
    payload: bytes | None = None
    try:
        async with asyncio.timeout(wait):
            async with aiomqtt.Client(m.host, m.port, username=m.username or None,
                                      password=password.get_secret_value() if password else None,
                                      identifier=None, keepalive=m.keepalive, timeout=wait, tls_context=tls,
                                      clean_session=True) as client:
                await client.subscribe(topic, qos=1)
                async for message in client.messages:  # the broker sends the retained one at once
                    if isinstance(message.payload, bytes | bytearray):
                        payload = bytes(message.payload)
                    break
    except TimeoutError:
        if payload is None:
            return Missing(source, f"no retained state within {wait:g} s (no keeper published one here)")
    except aiomqtt.MqttError as exc:
        return Missing(source, f"broker not reachable: {str(exc)[:120]}")
    if payload is None:
        return Missing(source, "no retained state")
    head: object = None
    with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
        head = json.loads(payload)["audit"]["head"]
    if head is None:
        return Missing(source, "the retained state carries no audit.head")
    parsed = parse_head(head) if isinstance(head, str) else None
    if parsed is None:
        return Bad(source, f"audit.head is not HASH:COUNT: {str(head)[:80]!r}")
    return Anchor(source, config.keeper.name, *parsed)
