"""audit prune: old rows go behind a checkpoint; verify passes after, and still catches edits and deletions."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from hedged.audit.store import TradingState

from .conftest import T0, filled, pg_execute


async def sql(url: str, statement: str) -> None:
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as c:
            c.execute(statement)
    else:
        await pg_execute(url, statement)


async def test_prune_keeps_verify_and_the_requested_state(url: str) -> None:
    store, _ = await filled(url)
    try:
        before = await store.verify()
        assert before.ok and before.events == 21
        n, checkpoint = await store.prune(T0 + timedelta(days=5))
        assert n == 11 and checkpoint is not None  # the command and days 0–4 (2 events a day)
        result = await store.verify()
        assert result.ok and result.pruned == 11, result
        assert result.events == 21 - 11 + 2  # the checkpoint and the carried-over command
        assert await store.requested_state() is TradingState.HALTED  # the halt survives its pruning
        assert {c.cycle for c in await store.last_cycles()} == {10}
        again, cp2 = await store.prune(T0 + timedelta(days=7))
        assert again == 4 and cp2 is not None
        assert (await store.verify()).pruned == 15
        assert await store.prune(T0) == (0, None)
    finally:
        await store.close()


async def test_edit_or_delete_in_the_kept_range_is_still_detected(url: str) -> None:
    store, _ = await filled(url)
    try:
        await store.prune(T0 + timedelta(days=5))
        kept = [e.id for e in await store.tail(100)]
        await sql(url, f"UPDATE events SET kind = 'stop' WHERE id = {kept[3]}")
        bad = await store.verify()
        assert not bad.ok and bad.bad_id == kept[3] and "edited" in bad.problem
        await sql(url, f"UPDATE events SET kind = 'start' WHERE id = {kept[3]}")
        assert (await store.verify()).ok
        await sql(url, f"DELETE FROM events WHERE id = {kept[0]}")  # the first kept row
        bad = await store.verify()
        assert not bad.ok and bad.bad_id == kept[1] and "pruned to start at event" in bad.problem
    finally:
        await store.close()


async def test_deleting_a_middle_row_after_prune_is_detected(url: str) -> None:
    store, _ = await filled(url)
    try:
        await store.prune(T0 + timedelta(days=5))
        kept = [e.id for e in await store.tail(100)]
        await sql(url, f"DELETE FROM events WHERE id = {kept[4]}")
        bad = await store.verify()
        assert not bad.ok and bad.bad_id == kept[5] and "deleted" in bad.problem
    finally:
        await store.close()


def test_cli_prune_then_verify(tmp_path: Path) -> None:
    cfg = tmp_path / "k.toml"
    cfg.write_text('[keeper]\nname = "main"\n[venues.sim]\nexchange = "bybit"\n'
                   '[[hedge]]\nasset = "BTC"\nvenue = "sim"\ninstrument = "BTC/USD:BTC"\n'
                   '[audit]\nurl = "sqlite:///audit.db"\n')

    def hedged(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hedged", *args, "--config", str(cfg)], capture_output=True,
                              text=True, timeout=120)

    import asyncio

    from hedged.audit.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    asyncio.run(upgrade(url))

    async def fill() -> None:
        store, _ = await filled(url)
        await store.close()

    asyncio.run(fill())
    assert hedged("audit", "verify").stdout.startswith("ok 21 events matching head ")  # and its head file
    out = hedged("audit", "prune", "--before", "2026-01-06T00:00:00Z")
    assert out.returncode == 0 and out.stdout.startswith("pruned 11 events before 2026-01-06 00:00:00Z"), out
    out = hedged("audit", "verify")
    # the head file the prune rewrote counts the pruned events too (23 = 21 + the checkpoint + the carried halt)
    first = out.stdout.splitlines()[0]
    assert out.returncode == 0 and first.startswith("ok 12 events (11 pruned before a checkpoint) matching head "), out
    assert ":23 (head file " in out.stdout and "warning" not in out.stdout, out
    bad = hedged("audit", "prune", "--before", "yesterday")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
