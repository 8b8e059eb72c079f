"""The chain head anchored outside the store (issue 17, item 11): `audit verify --config` finds it by itself
(the head file — beside SQLite, or `[audit] head_file` for Postgres — and, with [mqtt] enabled, the keeper's
retained state), names the anchor it used, warns when there is none, and agrees with `audit prune` on counts:
a pruned store with a published head verifies, a truncated one fails."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sqlite3
import uuid
from pathlib import Path

import aiomqtt
import pytest
from typer.testing import CliRunner

from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore
from hedged.cli import app
from hedged.service import run_keeper
from hedged.sim.server import Emulator
from tests.audit.conftest import filled, pg_execute, reset_pg
from tests.keeper.conftest import keeper_config, keeper_data, to_toml
from tests.mqtt.brokers import MACHINE_BROKER, need, port_open

HEDGE = '[[hedge]]\nasset = "BTC"\nvenue = "sim"\ninstrument = "BTC/USD:BTC"\n'


def write_config(folder: Path, audit: str) -> Path:
    cfg = folder / "hedged.toml"
    cfg.write_text(f'[keeper]\nname = "main"\n[venues.sim]\nexchange = "bybit"\n{HEDGE}[audit]\n{audit}\n')
    return cfg


def verify_sync(cfg: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "verify", "--config", str(cfg), *extra])
    return result.exit_code, result.output


async def cli(*args: str) -> tuple[int, str]:
    """The commands run their own event loop: off this test's loop, in a thread."""
    def go() -> tuple[int, str]:
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.output
    return await asyncio.to_thread(go)


async def fill(url: str, days: int = 10, head_file: Path | None = None) -> str:
    """Two events a day for `days` days from T0 (tests/audit/conftest.py `filled`), then the head (HASH:COUNT)
    the store published."""
    store, _ = await filled(url, days, head_file)
    try:
        return store.head
    finally:
        await store.close()


def head_in(path: Path) -> str:
    return str(json.loads(path.read_text())["head"])


def delete_newest_sqlite(db: Path, n: int = 1) -> None:
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute(f"DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id DESC LIMIT {n})")
        con.commit()


async def test_verify_reads_the_head_file_by_itself_and_warns_without_one(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    cfg = write_config(tmp_path, f'url = "sqlite:///{db}"')
    await upgrade(f"sqlite:///{db}")
    head = await fill(f"sqlite:///{db}")
    code, out = await cli("audit", "verify", "--config", str(cfg))
    assert code == 0 and out.startswith(f"ok 21 events matching head {head[:16]}…:21 (head file {db}.head)"), out
    assert "warning" not in out
    delete_newest_sqlite(db)
    code, out = await cli("audit", "verify", "--config", str(cfg))  # no --head needed
    assert code == 1 and "truncated" in out and "21" in out, out
    (tmp_path / "audit.db.head").unlink()  # the anchor gone too: the chain alone passes, and says so
    code, out = await cli("audit", "verify", "--config", str(cfg))
    assert code == 0 and out.splitlines()[0] == "ok 20 events", out
    assert f"warning: no published head from the head file {db}.head: absent" in out
    assert "warning: not checked against any head published outside the store" in out
    code, out = await cli("audit", "verify", "--config", str(cfg), "--head", head)
    assert code == 1 and "truncated" in out, out
    (tmp_path / "audit.db.head").write_text("{not a head")  # an anchor that is not one is not ignored
    code, out = await cli("audit", "verify", "--config", str(cfg))
    assert code == 1 and out.startswith("bad head file "), out


async def test_prune_then_verify_agree_on_counts(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    cfg = write_config(tmp_path, f'url = "sqlite:///{db}"')
    await upgrade(f"sqlite:///{db}")
    before_prune = await fill(f"sqlite:///{db}")  # 21 events: published (MQTT, a copy) before the prune
    code, out = await cli("audit", "prune", "--config", str(cfg), "--before", "2026-01-06T00:00:00Z")
    assert code == 0 and out.startswith("pruned 11 events"), out
    after_prune = head_in(tmp_path / "audit.db.head")
    assert after_prune.endswith(":23")  # 21 + the checkpoint + the carried-over halt: pruned ones count
    for head in (before_prune, after_prune):
        code, out = await cli("audit", "verify", "--config", str(cfg), "--head", head)
        assert code == 0 and out.startswith("ok 12 events (11 pruned before a checkpoint)"), (head, out)
    # a keeper (re)started on the pruned store goes on counting from the same total
    store = await AuditStore.open(f"sqlite:///{db}", "main")
    try:
        assert store.head == after_prune
        await store.append("start", {"mode": "live"})
        restarted = store.head
    finally:
        await store.close()
    assert restarted.endswith(":24") and head_in(tmp_path / "audit.db.head") == restarted
    code, out = await cli("audit", "verify", "--config", str(cfg), "--head", before_prune)
    assert code == 0 and " matching head " in out and "(head file " in out, out
    # a head whose event was pruned: its count still holds the store to account, its hash cannot be checked
    old = await cli("audit", "verify", "--config", str(cfg), "--head", "a" * 64 + ":5")
    assert old[0] == 0 and "the published head (event 5) was pruned: only its count is checked" in old[1], old
    last_pruned = await cli("audit", "verify", "--config", str(cfg), "--head", "a" * 64 + ":11")
    assert last_pruned[0] == 1 and "last pruned one" in last_pruned[1], last_pruned
    delete_newest_sqlite(db, 2)  # truncated after the prune
    for head in (before_prune, restarted):
        code, out = await cli("audit", "verify", "--config", str(cfg), "--head", head)
        if head == before_prune:
            assert code == 1 and "has 22 events but the published head says 24" in out, out  # via the head file
        else:
            assert code == 1 and "truncated" in out, out


async def test_a_postgres_store_writes_its_head_file_where_configured(tmp_path: Path,
                                                                    pg_database: str) -> None:
    await asyncio.to_thread(reset_pg, pg_database)
    await upgrade(pg_database)
    cfg = write_config(tmp_path, f'url = "{pg_database}"\nhead_file = "state/pg.head"')
    (tmp_path / "state").mkdir()
    head = await fill(pg_database, days=3, head_file=tmp_path / "state" / "pg.head")
    assert head_in(tmp_path / "state" / "pg.head") == head and head.endswith(":7")
    assert (tmp_path / "state" / "pg.head").stat().st_mode & 0o077 == 0
    code, out = await cli("audit", "verify", "--config", str(cfg))
    assert code == 0 and f"(head file {tmp_path / 'state' / 'pg.head'})" in out and "warning" not in out, out
    await pg_execute(pg_database, "DELETE FROM events WHERE id = (SELECT max(id) FROM events)")
    code, out = await cli("audit", "verify", "--config", str(cfg))
    assert code == 1 and "truncated" in out, out


@pytest.mark.timeout(180)
async def test_verify_checks_the_retained_mqtt_head_of_a_real_keeper(emulator: Emulator, tmp_path: Path) -> None:
    need(port_open(*MACHINE_BROKER), f"no MQTT broker at {MACHINE_BROKER[0]}:{MACHINE_BROKER[1]}")
    prefix = f"h17test{uuid.uuid4().hex[:10]}"
    mqtt = {"enabled": True, "host": MACHINE_BROKER[0], "port": MACHINE_BROKER[1], "prefix": prefix}
    data = keeper_data(emulator.url, tmp_path / "audit.db", keeper={"name": "main", "interval": 0.2}, mqtt=mqtt)
    cfg_path = tmp_path / "hedged.toml"
    cfg_path.write_text(to_toml(data))
    cfg = keeper_config(emulator.url, tmp_path / "audit.db", keeper={"name": "main", "interval": 0.2}, mqtt=mqtt)
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = "demo-key", "demo-secret"
    topic = f"{prefix}/main/state"
    try:
        stop = asyncio.Event()
        task = asyncio.create_task(run_keeper(cfg, stop=stop, install_signals=False))
        async with aiomqtt.Client(*MACHINE_BROKER) as client:
            await client.subscribe(topic, qos=1)
            async with asyncio.timeout(120):
                async for m in client.messages:  # a few states: a head is published with each
                    state = json.loads(bytes(m.payload)) if isinstance(m.payload, bytes) else {}
                    if (state.get("audit") or {}).get("head") and state.get("cycle", 0) >= 3:
                        break
        stop.set()
        await asyncio.wait_for(task, 60)
        (tmp_path / "audit.db.head").unlink()  # only the broker holds the head now
        code, out = await asyncio.to_thread(verify_sync, cfg_path)
        assert code == 0 and f"(MQTT retained {topic} on " in out, out
        assert "warning: no published head from the head file" in out and "not checked against any" not in out
        # the retained head is the one of the last state published: the stop's own events come after it
        anchored = int(re.search(r":(\d+) \(MQTT retained", out).group(1))  # type: ignore[union-attr]
        total = int(out.split()[1])
        assert anchored <= total
        delete_newest_sqlite(tmp_path / "audit.db", total - anchored + 1)
        code, out = await asyncio.to_thread(verify_sync, cfg_path)
        assert code == 1 and "truncated" in out, out
    finally:
        async with aiomqtt.Client(*MACHINE_BROKER) as client:  # leave the machine's broker as we found it
            await client.publish(topic, b"", qos=1, retain=True)


async def test_an_enabled_mqtt_without_a_retained_head_is_a_warning(tmp_path: Path) -> None:
    need(port_open(*MACHINE_BROKER), f"no MQTT broker at {MACHINE_BROKER[0]}:{MACHINE_BROKER[1]}")
    db = tmp_path / "audit.db"
    prefix = f"h17none{uuid.uuid4().hex[:10]}"
    cfg = write_config(tmp_path, f'url = "sqlite:///{db}"\n[mqtt]\nenabled = true\nprefix = "{prefix}"')
    await upgrade(f"sqlite:///{db}")
    await fill(f"sqlite:///{db}", days=1)
    code, out = await asyncio.to_thread(verify_sync, cfg)
    assert code == 0 and "(head file " in out, out
    assert f"warning: no published head from the MQTT retained {prefix}/main/state" in out, out
