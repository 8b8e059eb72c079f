"""JSON from outside (snapshots, MQTT commands) with its size and nesting bounded before it is parsed.

Why: `json.loads` recurses once per nesting level, so a few kilobytes of `[[[[…` raise RecursionError
wherever they are parsed — out of the verifier, out of `plan`. Checking size, then depth with a linear scan,
means no input reaches the parser that it cannot handle, and every refusal is one line.
"""

from __future__ import annotations

import json
from typing import Any


class JsonInputError(ValueError):
    """Input that is not acceptable JSON; the message is one line."""


def depth(text: str) -> int:
    """Deepest nesting of arrays/objects in JSON text (brackets inside strings do not count)."""
    deepest = level = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            deepest = max(deepest, level)
        elif ch in "]}":
            level -= 1
    return deepest


def loads(data: bytes | str, *, max_bytes: int, max_depth: int) -> Any:
    """Parse JSON no larger than `max_bytes` (UTF-8) and no deeper than `max_depth`; else JsonInputError."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise JsonInputError(f"too large: {len(raw)} bytes, at most {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonInputError(f"not UTF-8 text (byte {exc.start})") from None
    if (d := depth(text)) > max_depth:
        raise JsonInputError(f"nested too deeply: {d} levels, at most {max_depth}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonInputError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # unreachable after the depth check; kept so nothing escapes
        raise JsonInputError("nested too deeply") from None
