"""The CLI stays fast and honest: importing it loads no database, HTTP or exchange library; --version;
every config problem in one run; a closed pipe ends `audit export` quietly; piped plans keep symbols whole.
Timing is printed by bench/cli_startup.py, not asserted here."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

from hedged import __version__
from hedged.alerts.cli import ACTIONS
from hedged.alerts.commands import COMMANDS
from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore, NewEvent

HEAVY = ("sqlalchemy", "aiohttp", "ccxt", "aiomqtt", "asyncpg", "hedged.audit.store", "hedged.sim.server")


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


def test_importing_the_cli_loads_no_heavy_library() -> None:
    loaded = json.loads(_python(
        "import json, sys, hedged.cli; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"))
    assert loaded == []


def test_config_check_loads_neither_ccxt_nor_sqlalchemy(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[venues.x]\nexchange = "bybit"\n[[hedge]]\nasset = "BTC"\nvenue = "x"\n'
                   'instrument = "BTC/USD:BTC"\n')
    loaded = json.loads(_python(
        "import json, sys\nfrom hedged.config import load_config\n"
        f"load_config({str(cfg)!r})\n"
        "print(json.dumps([m for m in ('ccxt', 'sqlalchemy', 'aiohttp') if m in sys.modules]))"))
    assert loaded == []


def test_the_help_text_lists_every_command_action() -> None:
    assert ACTIONS.split(", ") == list(COMMANDS)


def hedged(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hedged", *args], capture_output=True, text=True, timeout=120,
                          check=False, input=stdin)


def test_version_and_plain_flag_help() -> None:
    out = hedged("--version")
    assert out.returncode == 0 and out.stdout == f"hedged {__version__}\n"
    help_text = hedged("plan", "--help").stdout
    assert "--json" in help_text and "<bool>" not in help_text and "\x1b[" not in help_text


FIVE_PROBLEMS = """
[keeper]
interval = 0

[venues.perp]
exchange = "bybitt"
secret = "inline-value"

[[hedge]]
asset = "BTC"
venue = "prep"
instrument = "BTC/USD:BTC"
ratio = 2
"""


def test_five_independent_problems_five_lines_in_one_run(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(FIVE_PROBLEMS)
    out = hedged("config", "check", str(cfg))
    assert out.returncode == 2
    assert out.stdout.splitlines() == [
        "keeper.interval: Input should be greater than 0",
        "venues.perp.exchange: unknown exchange 'bybitt': expected a ccxt exchange id such as bybit or binance "
        "(did you mean bybit, bybitid, bybiteu?)",
        "venues.perp: inline secret 'secret' refused: use api_key_env/secret_env (environment variable names) "
        "or api_key_file/secret_file",
        "hedge[0].venue: unknown venue 'prep', expected one of ['perp']",
        "hedge[0].ratio: 2 exceeds limits.max_ratio 1.05",
    ]
    assert "secret" not in out.stderr and "inline-value" not in out.stdout + out.stderr


def test_the_inline_secret_line_is_the_one_in_the_docs(tmp_path: Path) -> None:
    docs = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[venues.bybit]\nexchange = "bybit"\nsecret = "x"\n[[hedge]]\nasset = "BTC"\nvenue = "bybit"\n'
                   'instrument = "BTC/USD:BTC"\n')
    (line,) = hedged("config", "check", str(cfg)).stdout.splitlines()
    assert f"    {line}\n" in docs


def test_show_is_a_valid_config_and_schema_is_json(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[venues.x]\nexchange = "bybit"\napi_key_env = "NOT_SET_ANYWHERE"\n[[hedge]]\nasset = "BTC"\n'
                   'venue = "x"\ninstrument = "BTC/USD:BTC"\n')
    shown = hedged("config", "show", str(cfg))
    assert shown.returncode == 0 and "max_ratio = 1.05" in shown.stdout
    assert 'api_key_env = "NOT_SET_ANYWHERE"  # secret from environment variable NOT_SET_ANYWHERE (NOT SET)' \
        in shown.stdout
    again = tmp_path / "shown.toml"
    again.write_text(shown.stdout)
    assert hedged("config", "check", str(again)).stdout == "ok\n"
    schema = json.loads(hedged("config", "schema").stdout)
    assert set(schema["required"]) == {"venues", "hedge"} and "base_dir" not in schema["properties"]


def test_export_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    url = f"sqlite:///{db}"

    async def fill() -> None:
        await upgrade(url)
        async with await AuditStore.open(url, "main") as store:
            await store.append_many(NewEvent("error", {"message": "x" * 200}) for _ in range(3000))

    asyncio.run(fill())
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[venues.x]\nexchange = "bybit"\n[[hedge]]\nasset = "BTC"\nvenue = "x"\n'
                   f'instrument = "BTC/USD:BTC"\n[audit]\nurl = "{url}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "hedged", "audit", "export", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert json.loads(first)["kind"] == "error"
    assert err == "" and proc.returncode == 1  # click's exit for a closed pipe: quiet, and not "ok"


def test_a_piped_plan_keeps_symbols_and_client_ids_whole() -> None:
    root = Path(__file__).resolve().parent.parent
    out = hedged("plan", "--config", str(root / "examples" / "hedged.toml"),
                 "--snapshot", str(root / "examples" / "snapshot.json"))
    assert out.returncode == 0, out.stderr
    assert "bybit BTC/USD:BTC" in out.stdout and "…" not in out.stdout
    assert re.search(r"main_[0-9a-z]+-1 ", out.stdout), out.stdout
