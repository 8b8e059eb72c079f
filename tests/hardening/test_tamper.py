"""Tamper evidence at the edges (issue 17, item 11): `audit verify` replays the orders projection against the
chained events, and with the head published outside the store (head file, retained MQTT state) detects a
store whose newest rows were deleted."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore, OrderStatus
from hedged.cli import app

runner = CliRunner()


async def filled_store(tmp_path: Path) -> tuple[Path, Path, str]:
    db = tmp_path / "audit.db"
    cfg = tmp_path / "hedged.toml"
    cfg.write_text('[keeper]\nname = "main"\n[venues.bybit]\nexchange = "bybit"\n[[hedge]]\nasset = "BTC"\n'
                   f'venue = "bybit"\ninstrument = "BTC/USD:BTC"\n[audit]\nurl = "sqlite:///{db}"\n')
    await upgrade(f"sqlite:///{db}")
    store = await AuditStore.open(f"sqlite:///{db}", "main")
    try:
        for i in range(3):
            cid = f"main-t{i}-0"
            await store.intent(client_order_id=cid, venue="bybit", symbol="BTC/USD:BTC", side="sell",
                               amount=Decimal(100), price=Decimal(65000))
            await store.sent(cid)
            await store.ack(cid, exchange_order_id=f"x{i}", status=OrderStatus.OPEN)
            await store.fill(cid, venue="bybit", trade_id=f"tr{i}", amount=Decimal(100), price=Decimal(65000))
        await store.append("stop", {"cycles": 3})
        head = store.head
    finally:
        await store.close()
    return cfg, db, head


def verify_sync(cfg: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", "--config", str(cfg), *extra])
    return result.exit_code, result.output + (result.stderr or "")


async def verify(cfg: Path, *extra: str) -> tuple[int, str]:
    """The command runs its own event loop: off this test's loop, in a thread."""
    return await asyncio.to_thread(verify_sync, cfg, *extra)


async def test_the_head_is_published_beside_the_store_and_verifies(tmp_path: Path) -> None:
    cfg, _db, head = await filled_store(tmp_path)
    assert json.loads((tmp_path / "audit.db.head").read_text())["head"] == head
    code, out = await verify(cfg, "--head", head)
    assert code == 0 and out.startswith("ok"), out


async def test_a_deleted_newest_row_is_detected_given_the_published_head(tmp_path: Path) -> None:
    cfg, db, head = await filled_store(tmp_path)
    con = sqlite3.connect(db)
    con.execute("DELETE FROM events WHERE id = (SELECT max(id) FROM events)")
    con.commit()
    con.close()
    code, out = await verify(cfg)  # the head file beside SQLite is read without being asked
    assert code == 1 and "truncated" in out, out
    (db.parent / "audit.db.head").unlink()  # what the chain alone can say: a shorter chain is still a chain
    code, out = await verify(cfg)
    assert code == 0 and "warning: not checked against any head published outside the store" in out, out
    code, out = await verify(cfg, "--head", head)
    assert code == 1 and "truncated" in out, out


async def test_a_rewritten_tail_is_detected_given_the_published_head(tmp_path: Path) -> None:
    cfg, _db, head = await filled_store(tmp_path)
    code, out = await verify(cfg, "--head", "f" * 64 + ":" + head.split(":")[1])
    assert code == 1 and "published head" in out, out


async def test_an_edited_orders_row_is_detected(tmp_path: Path) -> None:
    cfg, db, _ = await filled_store(tmp_path)
    assert (await verify(cfg))[0] == 0
    con = sqlite3.connect(db)
    con.execute("UPDATE orders SET status = 'cancelled', filled = '0' WHERE client_order_id = 'main-t1-0'")
    con.commit()
    con.close()
    code, out = await verify(cfg)
    assert code == 1 and "main-t1-0" in out and "edited" in out, out


async def test_a_deleted_or_inserted_orders_row_is_detected(tmp_path: Path) -> None:
    cfg, db, _ = await filled_store(tmp_path)
    con = sqlite3.connect(db)
    con.execute("DELETE FROM orders WHERE client_order_id = 'main-t0-0'")
    con.commit()
    con.close()
    code, out = await verify(cfg)
    assert code == 1 and "main-t0-0" in out and "deleted" in out, out


def test_a_malformed_head_is_one_line_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "hedged.toml"
    cfg.write_text('[venues.bybit]\nexchange = "bybit"\n[[hedge]]\nasset = "BTC"\nvenue = "bybit"\n'
                   'instrument = "BTC/USD:BTC"\n')
    code, out = verify_sync(cfg, "--head", "nonsense")
    assert code == 2 and "--head: expected HASH:COUNT" in out
