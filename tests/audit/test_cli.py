"""The audit CLI: db upgrade, audit verify|tail|export, status, halt/resume/reduce-only, error lines."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from hedged.audit.store import AuditStore, TradingState
from hedged.cli import app

from .test_lock import HEDGED, env, write_config

pytestmark = pytest.mark.timeout(60)
runner = CliRunner()


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """The CLI configures structlog onto the runner's (soon closed) stderr; undo that after each test."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def cfg(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for k, v in env().items():
        if k.startswith("HT_"):
            monkeypatch.setenv(k, v)
    url = "sqlite:///audit.db" if db_url.startswith("sqlite") else db_url  # relative: resolved by config
    return write_config(tmp_path, url)


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


async def arun(*args: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(run, *args)


async def _fill(url: str) -> None:
    async with await AuditStore.open(url, "main") as store:
        store.start_cycle()
        await store.record_cycle(venue="perp", symbol="BTC/USD:BTC", action="trade", reasons=["drift"],
                                 exposure=D("10"), hedge=D("-9"), target=D("-10"), drift=D("1"), mark=D(65000))
        await store.intent("hk-c1", venue="perp", symbol="BTC/USD:BTC", side="sell", amount=D(1000),
                           price=D("65000.5"), post_only=True, reason="drift")
        await store.error("rate limited")


def _url(cfg: Path, db_url: str) -> str:
    return f"sqlite:///{cfg.parent / 'audit.db'}" if db_url.startswith("sqlite") else db_url


def test_full_cli_round(cfg: Path, db_url: str) -> None:
    asyncio.run(_full_cli_round(cfg, db_url))


async def _requested(url: str) -> TradingState:
    async with await AuditStore.open(url, "main") as store:
        return await store.requested_state()


async def _tamper(url: str) -> int:
    from sqlalchemy import text

    async with await AuditStore.open(url, "main") as store:
        victim = (await store.tail(10))[1]
        async with store.engine.begin() as conn:
            await conn.execute(text(f"UPDATE events SET kind = 'sent' WHERE id = {victim.id}"))
    return victim.id


async def _full_cli_round(cfg: Path, db_url: str) -> None:
    """Async only for helpers; the CLI runs asyncio.run itself, so it is called via a thread."""
    code, out, err = await arun("audit", "verify", "--config", str(cfg))
    if db_url.startswith("sqlite"):
        assert code == 1 and "hedged db upgrade" in err and "Traceback" not in err
    code, out, _ = await arun("db", "upgrade", "--config", str(cfg))
    assert code == 0 and "at revision 0001" in out
    url = _url(cfg, db_url)
    await _fill(url)

    code, out, _ = await arun("audit", "verify", "--config", str(cfg))
    # the first line: the chain; then the head published outside the store it was checked against (SQLite:
    # the head file beside it), or a warning that none was found (Postgres without [audit] head_file)
    assert code == 0 and out.splitlines()[0].startswith("ok 3 events"), out
    assert ("(head file " in out) if db_url.startswith("sqlite") else ("warning: not checked against" in out), out
    code, out, _ = await arun("halt", "--config", str(cfg), "--reason", "maintenance")
    assert code == 0 and "requested HALTED" in out
    assert await _requested(url) == TradingState.HALTED
    assert (await arun("reduce-only", "--config", str(cfg)))[0] == 0
    assert await _requested(url) == TradingState.REDUCING
    assert (await arun("resume", "--config", str(cfg)))[0] == 0

    code, out, _ = await arun("status", "--config", str(cfg), "--json")
    data = json.loads(out)
    assert code == 0 and data["requested_state"] == "RUNNING"
    assert data["instruments"][0]["drift"] == "1" and data["orders"][0]["client_order_id"] == "hk-c1"
    assert data["last_error"]["message"] == "rate limited"
    code, out, _ = await arun("status", "--config", str(cfg))
    assert code == 0 and "BTC/USD:BTC" in out and "hk-c1" in out and "rate limited" in out

    code, out, _ = await arun("audit", "tail", "--config", str(cfg), "-n", "2")
    assert code == 0 and len(out.splitlines()) == 2 and "command" in out
    code, out, _ = await arun("audit", "export", "--config", str(cfg), "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["kind"] for r in rows][:3] == ["cycle", "intent", "error"] and len(rows) == 6
    code, out, _ = await arun("audit", "export", "--config", str(cfg), "--format", "csv", "--since", "1h")
    table = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(table) == 6 and json.loads(table[1]["payload"])["client_order_id"] == "hk-c1"
    code, out, _ = await arun("audit", "export", "--config", str(cfg), "--since", "2999-01-01T00:00:00Z")
    assert code == 0 and out == ""
    assert (await arun("audit", "export", "--config", str(cfg), "--since", "yesterday"))[0] == 2

    # Tamper: verify names the row and exits 1.
    victim = await _tamper(url)
    code, out, _ = await arun("audit", "verify", "--config", str(cfg))
    assert code == 1 and out.startswith(f"bad event {victim} ")


def test_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[keeper]\nname = 'BAD NAME'\n")
    for args in (["status"], ["audit", "verify"], ["halt"], ["db", "upgrade"]):
        code, _, err = run(*args, "--config", str(bad))
        assert code == 2 and err.startswith("error: ") and "Traceback" not in err


def test_db_upgrade_from_another_directory(tmp_path: Path) -> None:
    """Installed entry point, run from a folder with no migrations/ or alembic.ini in it."""
    cfg = write_config(tmp_path, "sqlite:///audit.db")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([HEDGED, "db", "upgrade", "--config", str(cfg)], cwd=elsewhere, env=env(),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "audit.db").exists() and not (elsewhere / "audit.db").exists()
    r = subprocess.run([HEDGED, "audit", "verify", "--config", str(cfg)], cwd=elsewhere, env=env(),
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.splitlines()[0] == "ok 0 events"  # then a warning: no head file yet (nothing written)


def test_tail_follow_prints_new_events(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "sqlite:///audit.db")
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    from hedged.audit import migrate

    asyncio.run(migrate.upgrade(url))
    proc = subprocess.Popen([HEDGED, "audit", "tail", "--config", str(cfg), "--follow", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        time.sleep(1.0)
        asyncio.run(_append(url))
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert json.loads(line)["payload"]["name"] == "followed"
    finally:
        proc.terminate()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


async def _append(url: str) -> None:
    async with await AuditStore.open(url, "main") as store:
        await store.append("alert", {"name": "followed"})


def test_help_stays_light() -> None:
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", "import hedged.audit.cli"],
                       capture_output=True, text=True, timeout=30)
    assert "sqlalchemy" not in r.stderr
