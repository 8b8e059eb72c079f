"""`hedged config show` and `hedged config schema`: the effective config, and its JSON Schema.

Why: an operator reading a 10-line TOML cannot see the 60 defaults it implies; `show` prints them all.
The config never holds a secret, only the names of the variables or files that do, so `show` prints
those names as they are (with whether each variable is set, never its value).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from hedged.config import Config


def effective(cfg: Config) -> dict[str, Any]:
    """The config as plain JSON values, defaults included (Decimals as strings, exactly)."""
    out = cfg.model_dump(mode="json", exclude={"base_dir"})
    assert isinstance(out, dict)
    return out


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float | Decimal):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _note(key: str, value: Any) -> str:
    """A comment for secret names: which variable or file, and whether the variable is set."""
    if not value or not isinstance(value, str):
        return ""
    if key.endswith("_env"):
        return "  # secret from environment variable " + value + (" (set)" if os.environ.get(value) else
                                                                   " (NOT SET)")
    if key.endswith("_file") and key != "ca_file":
        return f"  # secret read from file {value}"
    return ""


def _table(lines: list[str], header: str, body: Mapping[str, Any]) -> None:
    lines.append(header)
    for k, v in body.items():
        if v is None:
            lines.append(f"# {k} is not set")
            continue
        lines.append(f"{_key(k)} = {_value(v)}{_note(k, v)}")
    lines.append("")


# Numbers that pydantic dumps as strings (Decimals) are numbers in the TOML file; write them unquoted.
def _numbers(cfg: Config, data: dict[str, Any]) -> dict[str, Any]:
    def walk(model: Any, dumped: Any) -> Any:
        if isinstance(dumped, dict) and hasattr(model, "model_fields"):
            return {k: walk(getattr(model, k), v) for k, v in dumped.items()}
        if isinstance(dumped, dict) and isinstance(model, Mapping):
            return {k: walk(model[k], v) for k, v in dumped.items()}
        if isinstance(dumped, list) and isinstance(model, list | tuple):
            return [walk(m, d) for m, d in zip(model, dumped, strict=True)]
        if isinstance(model, Decimal):
            return model
        return dumped

    out = walk(cfg, data)
    assert isinstance(out, dict)
    return out


def effective_toml(cfg: Config) -> str:
    """The effective config as a TOML document that `hedged config check` accepts."""
    data = _numbers(cfg, effective(cfg))
    lines = [f"# effective configuration, every default filled in; relative paths resolve against {cfg.base_dir}", ""]
    _table(lines, "[keeper]", data["keeper"])
    for name, venue in data["venues"].items():
        _table(lines, f"[venues.{_key(name)}]", venue)
    for h in data["hedge"]:
        _table(lines, "[[hedge]]", h)
    for section in ("limits", "execution", "audit", "mqtt", "monitors"):
        _table(lines, f"[{section}]", data[section])
    return "\n".join(lines)


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the config file, from the pydantic models."""
    schema = Config.model_json_schema(mode="validation")
    schema.get("properties", {}).pop("base_dir", None)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "hedged configuration (TOML)", **{k: v for k, v in schema.items() if k != "title"}}
