"""Fuzzers for `config check` and `plan --snapshot` (issue 17, item 9), bounded by example counts.

Oracles: never an exception out of the command (no traceback); exit 0 or exit 2; on exit 2 every line of
the output names what is wrong (a key path, or the file for unreadable input) — `plan` prints exactly one.
"Wrong value": a value of another kind than the field's declared type (a boolean for a number, a string
for a boolean, a bare number for a time, inf/nan anywhere) must be refused, naming that field.

The config fields and their kinds come from the models' declared Python types (float/int/Decimal/bool/
str/datetime), not from the validators under test. `HEDGED_FUZZ_EXAMPLES=N` runs more examples.
"""

from __future__ import annotations

import json
import math
import os
import typing
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner

from hedged import config as cfgmod
from hedged.cli import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("HEDGED_FUZZ_EXAMPLES") or 200)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
runner = CliRunner()

# --- config: the fields and their declared kinds -------------------------------------------------------

SECTIONS: dict[str, type[BaseModel]] = {
    "keeper": cfgmod.KeeperConfig, "limits": cfgmod.LimitsConfig, "execution": cfgmod.ExecutionConfig,
    "audit": cfgmod.AuditConfig, "mqtt": cfgmod.MqttConfig, "monitors": cfgmod.MonitorsConfig,
    "venues.bybit": cfgmod.VenueConfig, "hedge[0]": cfgmod.HedgeConfig,
}


def _kind(annotation: Any) -> str | None:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return _kind(args[0])
    if type(None) in args:  # Optional[X]
        return _kind(next(a for a in args if a is not type(None)))
    return {float: "number", Decimal: "number", int: "int", bool: "bool", str: "str", datetime: "time"}.get(
        annotation)


FIELDS: list[tuple[str, str, str]] = sorted(
    (section, name, kind)
    for section, model in SECTIONS.items()
    for name, f in model.model_fields.items()
    if (kind := _kind(f.annotation)) is not None
)
assert len(FIELDS) > 60, FIELDS  # every scalar field of every section

BASE: dict[str, dict[str, Any]] = {
    "keeper": {"name": "main", "interval": 10},
    "venues.bybit": {"exchange": "bybit", "api_key_env": "BYBIT_KEY", "secret_env": "BYBIT_SECRET"},
    "hedge[0]": {"asset": "BTC", "venue": "bybit", "instrument": "BTC/USD:BTC"},
}

# values of every TOML kind, each tagged with what it is
UTC2 = timezone(timedelta(hours=2))
VALUES = st.one_of(
    st.booleans().map(lambda v: ("bool", v)),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda v: ("int", v)),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: ("float", v)),
    st.text(max_size=20).map(lambda v: ("str", v)),
    st.sampled_from(["2026-12-31T00:00:00Z", "2026-12-31", "1700000000", "yes", "true", "1", "NaN"]).map(
        lambda v: ("str", v)),
    st.datetimes(timezones=st.just(UTC2)).map(lambda v: ("offset-datetime", v)),
    st.datetimes().map(lambda v: ("local-datetime", v)),
    st.dates().map(lambda v: ("date", v)),
    st.lists(st.integers(0, 9), max_size=3).map(lambda v: ("array", v)),
    st.integers(1, 300).map(lambda d: ("deep-array", d)),
    st.just(("table", {"x": 1})),
)


def fits(kind: str, tag: str, value: Any) -> bool:
    """Whether a value of this TOML kind may be right for a field of this declared kind."""
    if tag == "float" and not math.isfinite(value):
        return False
    if kind == "number":
        return tag in ("int", "float")
    if kind == "int":
        return tag == "int"
    if kind == "bool":
        return tag == "bool"
    if kind == "str":
        return tag == "str" and "\x00" not in value
    if kind == "time":
        return tag in ("offset-datetime", "str")
    raise AssertionError(kind)


def toml_value(tag: str, v: Any) -> str:
    if tag == "bool":
        return "true" if v else "false"
    if tag == "int":
        return str(v)
    if tag == "float":
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(float(v))
    if tag == "str":
        return json.dumps(v)  # a TOML basic string (JSON escapes are valid TOML escapes)
    if tag == "offset-datetime":
        return datetime.isoformat(v)
    if tag == "local-datetime":
        return datetime.isoformat(v.replace(tzinfo=None))
    if tag == "date":
        return date.isoformat(v)
    if tag == "array":
        return "[" + ", ".join(map(str, v)) + "]"
    if tag == "deep-array":
        return "[" * int(v) + "1" + "]" * int(v)
    if tag == "table":
        return "{ x = 1 }"
    raise AssertionError(tag)


def render(sections: dict[str, dict[str, str]]) -> str:
    out = []
    for section, fields in sections.items():
        header = "[[hedge]]" if section == "hedge[0]" else f"[{section}]"
        out.append(header)
        out.extend(f"{k} = {v}" for k, v in fields.items())
        out.append("")
    return "\n".join(out)


def base_rendered() -> dict[str, dict[str, str]]:
    return {s: {k: toml_value("str" if isinstance(v, str) else "int", v) for k, v in f.items()}
            for s, f in BASE.items()}


def check(tmp: Path, text: bytes) -> tuple[int, list[str]]:
    p = tmp / "fuzz.toml"
    p.write_bytes(text)
    result = runner.invoke(app, ["config", "check", str(p)])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"exception {type(result.exception).__name__}: {result.exception!r} for:\n{text[:600]!r}")
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
    return result.exit_code, result.output.splitlines()


def test_the_base_config_is_ok(tmp_path: Path) -> None:
    assert check(tmp_path, render(base_rendered()).encode()) == (0, ["ok"])


STATS: dict[str, int] = {"config_examples": 0, "config_wrong_refused": 0, "snapshot_examples": 0}


@FUZZ
@given(field=st.sampled_from(FIELDS), value=VALUES)
def test_config_fuzz_field_values(tmp_path_factory: Any, field: tuple[str, str, str], value: tuple[str, Any]) -> None:
    tmp = tmp_path_factory.mktemp("cfg")
    section, name, kind = field
    tag, v = value
    sections = base_rendered()
    sections.setdefault(section, {})[name] = toml_value(tag, v)
    code, lines = check(tmp, render(sections).encode())
    STATS["config_examples"] += 1
    path = f"{section}.{name}"
    if code == 2:
        assert lines and all(":" in ln for ln in lines), lines
    wrong = not fits(kind, tag, v)
    if wrong:
        STATS["config_wrong_refused"] += 1
        # a wrong value is refused, and the refusal names the field (a deep array may be refused as TOML)
        assert code == 2, f"accepted {path} = {toml_value(tag, v)[:80]} (declared {kind})"
        assert any(ln.startswith(path) or "nested too deeply" in ln or "not valid TOML" in ln for ln in lines), (
            path, lines)


@FUZZ
@given(data=st.data())
def test_config_fuzz_bytes(tmp_path_factory: Any, data: st.DataObject) -> None:
    """Byte-level damage: invalid UTF-8, truncation, stray brackets, NULs — never a traceback."""
    tmp = tmp_path_factory.mktemp("cfgb")
    text = bytearray(render(base_rendered()).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "cut", "brackets"]))
        at = data.draw(st.integers(0, max(0, len(text) - 1)))
        if op == "flip" and text:
            text[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            text[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "cut":
            del text[at:]
        else:
            text[at:at] = b"x = " + b"[" * data.draw(st.integers(50, 2000))
    code, lines = check(tmp, bytes(text))
    STATS["config_examples"] += 1
    if code == 2:
        assert lines and all(":" in ln for ln in lines), lines


# --- plan --snapshot -------------------------------------------------------------------------------------

SNAP = json.loads((ROOT / "examples" / "snapshot.json").read_text())
EXAMPLE_CFG = ROOT / "examples" / "hedged.toml"
# numbers the plan is computed from: any non-number there must be refused, not read as something
NUMERIC = [
    ("venues", "bybit", "tickers", "BTC/USD:BTC", "markPrice"),
    ("venues", "bybit", "positions", 0, "contracts"),
    ("venues", "bybit", "markets", "BTC/USD:BTC", "contractSize"),
    ("venues", "bybit", "balance", "BTC", "total"),
]


def leaf_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(leaf_paths(v, (*prefix, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(leaf_paths(v, (*prefix, i)))
    return out


PATHS = leaf_paths(SNAP)
JSONS = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
              st.text(max_size=10)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def put(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        doc = doc[step]
    doc[path[-1]] = value


def plan(tmp: Path, raw: bytes) -> tuple[int, str, str]:
    p = tmp / "snap.json"
    p.write_bytes(raw)
    result = runner.invoke(app, ["plan", "--config", str(EXAMPLE_CFG), "--snapshot", str(p), "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"exception {type(result.exception).__name__}: {result.exception!r} for {raw[:300]!r}")
    assert result.exit_code in (0, 2), (result.exit_code, result.stderr)
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, lines
    return result.exit_code, result.stdout, result.stderr


@FUZZ
@given(path=st.sampled_from(PATHS), value=JSONS | st.integers(1, 5000).map(lambda d: ["deep", d]))
# what hypothesis found now and then (an empty string was read as "absent"): run on every run, not by chance
@example(path=("venues", "bybit", "balance", "BTC", "total"), value="")
@example(path=("venues", "bybit", "positions", 0, "contracts"), value="")
@example(path=("venues", "bybit", "tickers", "BTC/USD:BTC", "markPrice"), value=" ")
def test_snapshot_fuzz_values(tmp_path_factory: Any, path: tuple[Any, ...], value: Any) -> None:
    tmp = tmp_path_factory.mktemp("snap")
    doc = json.loads(json.dumps(SNAP))
    if isinstance(value, list) and value[:1] == ["deep"] and len(value) == 2 and isinstance(value[1], int):
        value = json.loads("[" * value[1] + "]" * value[1]) if value[1] < 900 else "[" * value[1]
        if isinstance(value, str):  # too deep for json.dumps: splice it in as raw text
            raw = json.dumps(doc).replace('"version": 1', '"version": 1, "x": ' + value, 1).encode()
            plan(tmp, raw)
            STATS["snapshot_examples"] += 1
            return
    put(doc, path, value)
    code, _out, err = plan(tmp, json.dumps(doc).encode())
    STATS["snapshot_examples"] += 1
    # (null is ccxt's "absent": a missing mark falls back to last, so it is not a wrong value here)
    if path in NUMERIC and value is not None and not (isinstance(value, int | float) and not isinstance(value, bool)):
        assert code == 2 and (str(path[-1]) in err or "nested too deeply" in err), (path, value, err)


@FUZZ
@given(data=st.data())
def test_snapshot_fuzz_bytes(tmp_path_factory: Any, data: st.DataObject) -> None:
    tmp = tmp_path_factory.mktemp("snapb")
    raw = bytearray(json.dumps(SNAP).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        op = data.draw(st.sampled_from(["flip", "insert", "cut", "neg-time"]))
        if op == "flip" and raw:
            raw[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=6))
        elif op == "cut":
            del raw[at:]
        else:
            raw = bytearray(bytes(raw).replace(b"1795262400000", str(-data.draw(st.integers(1, 10**20))).encode(), 1))
    plan(tmp, bytes(raw))
    STATS["snapshot_examples"] += 1


def test_fuzz_counts_are_reported() -> None:
    """Runs last in this file: the figures the issue asks for (examples run, wrong values refused)."""
    print(f"\n[fuzz] {STATS}")
