"""Smaller edges (issue 17, item 14): store and lock files 0600 whatever the umask; a secret file others can
read is warned about; config and store agree on database URLs (see test_strict_config)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hedged.audit.lock import AccountLock
from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


async def test_store_and_lock_files_are_created_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)  # what a shell gives someone running it by hand
    try:
        url = f"sqlite:///{tmp_path / 'audit.db'}"
        await upgrade(url)
        store = await AuditStore.open(url, "m")
        await store.append("start", {})
        async with AccountLock(url, "bybit", "KEY-123456789", directory=tmp_path / "locks") as lock:
            modes = {p.name: mode(p) for p in [*tmp_path.glob("audit.db*"), lock.path]}  # noqa: ASYNC240
            assert mode(lock.path.parent) == 0o700
        await store.close()
    finally:
        os.umask(old)
    assert "audit.db" in modes and len(modes) >= 2
    assert modes == {name: 0o600 for name in modes}


def test_a_secret_file_readable_by_others_is_warned_about(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hedged import log
    from hedged.config import read_secret

    log.configure(json=True)
    f = tmp_path / "secret"
    f.write_text("the-secret-value\n")
    f.chmod(0o644)
    secret = read_secret("secret_env", "", "secret_file", str(f), None)
    assert secret is not None and secret.get_secret_value() == "the-secret-value"
    err = capsys.readouterr().err
    assert "config.secret_file_readable" in err and "chmod 600" in err and "the-secret-value" not in err
    f.chmod(0o600)
    read_secret("secret_env", "", "secret_file", str(f), None)
    assert "secret_file_readable" not in capsys.readouterr().err


def test_config_check_warns_of_a_secret_file_others_may_read(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hedged.cli import app

    (tmp_path / "bybit.secret").write_text("the-secret-value\n")
    (tmp_path / "bybit.key").write_text("the-key-value\n")
    (tmp_path / "bybit.secret").chmod(0o644)
    (tmp_path / "bybit.key").chmod(0o600)
    cfg = tmp_path / "hedged.toml"
    cfg.write_text('[venues.bybit]\nexchange = "bybit"\napi_key_file = "bybit.key"\nsecret_file = "bybit.secret"\n'
                   '[[hedge]]\nasset = "BTC"\nvenue = "bybit"\ninstrument = "BTC/USD:BTC"\n')
    result = CliRunner().invoke(app, ["config", "check", str(cfg)])
    lines = result.output.splitlines()
    assert result.exit_code == 0 and lines[-1] == "ok", result.output
    assert lines[:-1] == [f"warning: venues.bybit.secret_file: {tmp_path / 'bybit.secret'} is readable by group or "
                          f"others (mode 0644); run: chmod 600 {tmp_path / 'bybit.secret'}"]
    assert "the-secret-value" not in result.output
    (tmp_path / "bybit.secret").chmod(0o600)
    result = CliRunner().invoke(app, ["config", "check", str(cfg)])
    assert result.exit_code == 0 and result.output == "ok\n"
