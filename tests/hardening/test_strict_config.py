"""Strict config models (issue 17, item 8): a typo is refused by `config check`, never read as something else,
and `run` never prints a traceback for input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hedged.cli import app
from tests.core.test_bad_input import MINIMAL

runner = CliRunner()
HEDGE_LINE = 'instrument = "BTC/USD:BTC"'


def with_hedge(extra: str) -> str:
    return MINIMAL.replace(HEDGE_LINE, f"{HEDGE_LINE}\n{extra}")


REFUSED = [
    ("until = 5 (1970)", with_hedge("until = 5"), "hedge[0].until: expected an RFC 3339 time with a UTC offset"),
    ("until as a float", with_hedge("until = 1.5e9"), "hedge[0].until: expected an RFC 3339"),
    ("until as local date", with_hedge("until = 2026-12-31"), "hedge[0].until: expected an RFC 3339"),
    ("until date string", with_hedge('until = "2026-12-31"'), "hedge[0].until: expected an RFC 3339"),
    ("until unix string", with_hedge('until = "1700000000"'), "hedge[0].until: expected an RFC 3339"),
    ("interval = true", MINIMAL + "\n[keeper]\ninterval = true\n", "keeper.interval: expected a number, got true"),
    ("keepalive = true", MINIMAL + "\n[mqtt]\nkeepalive = true\n", "mqtt.keepalive: expected a whole number"),
    ("queue_size = true", MINIMAL + "\n[mqtt]\nqueue_size = true\n", "mqtt.queue_size: expected a whole number"),
    ("drift_cycles = true", MINIMAL + "\n[monitors]\ndrift_cycles = true\n", "monitors.drift_cycles: expected a whole"),
    ("offset_ticks = false", MINIMAL + "\n[execution]\noffset_ticks = false\n", "execution.offset_ticks: expected a"),
    ("write_timeout = true", MINIMAL + "\n[audit]\nwrite_timeout = true\n", "audit.write_timeout: expected a number"),
    ("ratio = true", with_hedge("ratio = true"), "hedge[0].ratio: expected a number, got true"),
    ("ratio as string", with_hedge('ratio = "1"'), "hedge[0].ratio: expected a number, got a string"),
    ("max_failures = 2.5", MINIMAL + "\n[keeper]\nmax_failures = 2.5\n", "keeper.max_failures: expected a whole"),
    ("bool as 1", MINIMAL + "\n[keeper]\nkeep_orders_on_exit = 1\n", "keeper.keep_orders_on_exit: expected true or"),
    ("bool as string", MINIMAL + '\n[mqtt]\nenabled = "yes"\n', "mqtt.enabled: expected true or false"),
    ("timeout = inf", MINIMAL.replace('exchange = "bybit"', 'exchange = "bybit"\ntimeout = inf'),
     "venues.bybit.timeout: expected a finite number"),
    ("interval = nan", MINIMAL + "\n[keeper]\ninterval = nan\n", "keeper.interval: expected a finite number"),
    ("band = inf", with_hedge("band = inf"), "hedge[0].band: expected a finite number"),
    ("NUL in kill_file", MINIMAL + '\n[keeper]\nkill_file = "/tmp/k\\u0000x"\n', "keeper.kill_file: NUL byte"),
    ("url on a non-local exchange", MINIMAL.replace('exchange = "bybit"', 'exchange = "okx"\nurl = "http://127.0.0.1:9"'),
     "venues.bybit: url: a REST override is only for the local exchange"),
    ("postgresql+psycopg", MINIMAL + '\n[audit]\nurl = "postgresql+psycopg://u@h/db"\n', "audit.url: expected"),
    ("name as a number", MINIMAL + "\n[keeper]\nname = 5\n", "keeper.name: expected a string"),
]


@pytest.mark.parametrize(("name", "text", "expected"), REFUSED, ids=[c[0] for c in REFUSED])
def test_config_check_refuses(tmp_path: Path, name: str, text: str, expected: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    result = runner.invoke(app, ["config", "check", str(cfg)])
    assert result.exit_code == 2, result.output
    assert expected in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("url", ["postgres://u@127.0.0.1/db", "postgresql://u@127.0.0.1/db",
                                 "postgresql+asyncpg://u@127.0.0.1/db", "sqlite+aiosqlite:///x.db"])
def test_config_accepts_every_url_the_store_opens(tmp_path: Path, url: str) -> None:
    from hedged.audit.store import async_url

    async_url(url)  # the store opens it ...
    cfg = tmp_path / "ok.toml"
    cfg.write_text(MINIMAL + f'\n[audit]\nurl = "{url}"\n')
    result = runner.invoke(app, ["config", "check", str(cfg)])
    assert (result.exit_code, result.output) == (0, "ok\n")  # ... so config check accepts it


def test_offset_times_are_accepted(tmp_path: Path) -> None:
    from hedged.config import load_config

    for until in ('"2026-12-31T00:00:00Z"', '"2026-12-31T00:00:00+02:00"', "2026-12-31T00:00:00Z"):
        cfg = tmp_path / "ok.toml"
        cfg.write_text(with_hedge(f"until = {until}"))
        assert load_config(cfg).hedge[0].until is not None


def run_cli(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "run.toml"
    cfg.write_text(text)
    env = {**os.environ, "K": "demo-key", "S": "demo-secret"}
    return subprocess.run([sys.executable, "-m", "hedged", "run", "--config", str(cfg)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)


def test_run_with_an_unknown_exchange_id_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    text = MINIMAL.replace('exchange = "bybit"', 'exchange = "nosuchexchange"\napi_key_env = "K"\nsecret_env = "S"')
    proc = run_cli(tmp_path, text)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error")]  # the rest are JSON log lines
    assert len(lines) == 1 and lines[0].startswith("error: venues.bybit.exchange: unknown exchange 'nosuchexchange'"), \
        proc.stderr
