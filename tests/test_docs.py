"""Docs and packaging say what the code does: example configs load and fit the shipped ACL, no pointer to a
file that is not in the repository, no machine paths, one name per environment variable, every trading
command documented, and the packaging metadata that `pip install .` reads without deprecation warnings."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from hedged.config import load_config

ROOT = Path(__file__).resolve().parent.parent
TEXT = [p for d in ("hedged", "docs", "deploy", "bench") for p in (ROOT / d).rglob("*")
        if p.is_file() and p.suffix in (".py", ".md", ".toml", ".conf", ".service", "")] + [ROOT / "README.md"]


@pytest.mark.parametrize("example", sorted((ROOT / "deploy" / "examples").glob("*.toml")), ids=lambda p: p.name)
def test_example_configs_load_and_fit_the_acl(example: Path) -> None:
    cfg = load_config(example)
    acl = (ROOT / "deploy" / "mosquitto" / "acl").read_text()
    if cfg.mqtt.enabled:
        # the ACL grants {prefix}/{name}/...: with the shipped prefix, only the keeper name needs editing
        assert re.search(rf"^topic write {re.escape(cfg.mqtt.prefix)}/main/state$", acl, re.MULTILINE), \
            f"{example.name}: [mqtt] prefix {cfg.mqtt.prefix!r} does not fit deploy/mosquitto/acl"


def test_no_pointers_outside_the_repository() -> None:
    for path in TEXT:
        text = path.read_text(errors="replace")
        assert "DESIGN.md" not in text and "DESIGN §" not in text, path
        assert "/work/" not in text, path


def test_one_name_for_the_command_secret() -> None:
    for path in TEXT:
        assert "HEDGED_CMD_SECRET" not in path.read_text(errors="replace"), path


def test_every_trading_command_is_in_the_audit_docs() -> None:
    table = (ROOT / "docs" / "audit.md").read_text()
    assert "`hedged halt\\|pause\\|resume\\|reduce-only --config FILE" in table


def test_packaging_metadata() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
    deps = {re.split(r"[<>=\[ ]", d, maxsplit=1)[0]: d for d in project["dependencies"]}
    assert "pydantic-settings" not in deps
    assert "<3" in deps["aiomqtt"]  # aiomqtt 3 removes MqttError, Client.messages and tls_context
