"""structlog set-up: pretty on a terminal, JSON lines otherwise (production, systemd, CI).

Every log line — event, values, rendered exception — and any traceback that escapes passes through the
audit store's secret scrubber (`hedged.audit.scrub`), so an exchange error that quotes the API key (as
Bybit's older "error sign! origin_string[…]" did) never reaches a log. The service registers the secret
values it read with `register_secrets` before it talks to anyone.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterable, MutableMapping
from types import TracebackType
from typing import Any

import structlog

from hedged.audit.scrub import Scrubber

_scrubber = Scrubber()


def register_secrets(values: Iterable[str]) -> None:
    """Values that must never appear in a log line or a traceback (API keys, secrets, passwords)."""
    _scrubber.register_secrets(values)


def scrub_text(text: str) -> str:
    """`text` with registered secrets and `key=value` secret pairs redacted."""
    return _scrubber.text(text)


def _scrub_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _scrubber.text(value)
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {k: _scrub_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v, depth + 1) for v in value]
    if isinstance(value, BaseException):
        return _scrubber.text(f"{type(value).__name__}: {value}")
    return value


def scrub_secrets(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: runs after exceptions are rendered, before the renderer."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _scrub_value(value)
    return event_dict


def _excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.write(scrub_text("".join(traceback.format_exception(kind, exc, tb))))


def configure(level: str = "info", json: bool | None = None) -> None:
    """Configure structlog once for the process; `json=None` picks JSON unless stderr is a TTY."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=True)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            scrub_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    sys.excepthook = _excepthook  # a traceback that escapes is scrubbed too


get_logger = structlog.get_logger
