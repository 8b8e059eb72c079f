"""`hedged demo` end to end: emulator + keeper in one process, then the audit it leaves behind."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path


def _hedged(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hedged", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_demo_runs_trades_and_leaves_a_verifiable_audit(tmp_path: Path) -> None:
    state = tmp_path / "state"
    run = _hedged("demo", "--duration", "12", "--state-dir", str(state), timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "deposited" in run.stdout
    assert "audit verify" in run.stdout
    config = state / "hedged.toml"
    db = state / "hedged.db"
    assert config.is_file()
    assert db.is_file()

    verify = _hedged("audit", "verify", "--config", str(config))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    words = verify.stdout.split()
    assert words[0] == "ok" and words[2] == "events", verify.stdout
    assert int(words[1]) > 0

    status = _hedged("status", "--config", str(config), "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["keeper"] == "demo"
    assert data["instruments"] and data["alive"]["verdict"] == "stopped"

    with sqlite3.connect(db) as conn:
        sent = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        filled = conn.execute("SELECT count(*) FROM orders WHERE status = 'filled'").fetchone()[0]
        live = conn.execute(
            "SELECT count(*) FROM orders WHERE status NOT IN ('filled', 'cancelled', 'rejected')").fetchone()[0]
    assert sent >= 1
    assert filled >= 1
    assert live == 0  # the stop cancelled whatever was still open
