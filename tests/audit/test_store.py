"""The audit store on both backends: schema, write-ahead ordering, exact numbers, queries, chain."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
import sqlalchemy as sa

from hedged.audit import migrate
from hedged.audit.chain import GENESIS, canonical_json, event_content, event_hash
from hedged.audit.models import Event
from hedged.audit.store import (
    AuditSchemaError,
    AuditStore,
    AuditWriteError,
    OrderStatus,
    TradingState,
)

BTC = "BTC/USD:BTC"


async def test_migrations_and_models_agree(db_url: str) -> None:
    assert await migrate.upgrade(db_url) == migrate.head_revision()
    assert await migrate.schema_diff(db_url) == []
    assert await migrate.downgrade(db_url, "base") is None
    assert await migrate.upgrade(db_url) == migrate.head_revision()
    assert await migrate.schema_diff(db_url) == []


async def test_compare_detects_a_missing_column(url: str) -> None:
    """The agreement test above is not vacuous: a real difference is reported."""
    store = await AuditStore.open(url, "main")
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("DROP INDEX ix_orders_keeper_status"))
    await store.close()
    diff = await migrate.schema_diff(url)
    assert any(d[0] == "add_index" for d in diff)


def test_migrations_found_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    found = migrate.migrations_dir()
    assert (found / "env.py").is_file() and (found / "versions").is_dir()
    assert migrate.head_revision() == "0001"


async def test_open_without_tables_says_upgrade(db_url: str) -> None:
    with pytest.raises(AuditSchemaError, match="hedged db upgrade"):
        await AuditStore.open(db_url, "main")


async def test_ensure_schema_refuses_old_database_when_auto_upgrade_is_off(db_url: str) -> None:
    with pytest.raises(AuditSchemaError, match="hedged db upgrade"):
        await migrate.ensure_schema(db_url, auto_upgrade=False)
    await migrate.ensure_schema(db_url, auto_upgrade=True)
    await migrate.ensure_schema(db_url, auto_upgrade=False)


async def test_sqlite_commits_are_durable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    await migrate.upgrade(url)
    async with await AuditStore.open(url, "main") as store, store.engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
        assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 2  # FULL


async def test_write_ahead_sequence(store: AuditStore) -> None:
    store.start_cycle()
    order = await store.intent(
        "hk-1-a", venue="bybit", symbol=BTC, side="sell", amount=D("650000"), price=D("65000.5"),
        reduce_only=False, post_only=True, reason="drift -650000 > band 6500", notional_usd=D("650000"),
    )
    # Committed before anything is sent: a second store (another process, after a crash) sees it.
    other = await AuditStore.open(store_url(store), "main")
    try:
        seen = await other.get_order("hk-1-a")
        assert seen is not None and seen.status == OrderStatus.INTENT
        assert [o.client_order_id for o in await other.unsettled_orders()] == ["hk-1-a"]
    finally:
        await other.close()
    assert order.status == OrderStatus.INTENT

    await store.sent("hk-1-a")
    await store.ack("hk-1-a", exchange_order_id="X-1")
    assert (await store.open_orders())[0].exchange_order_id == "X-1"
    assert await store.fill("hk-1-a", venue="bybit", trade_id="T1", amount=D("150000"), price=D("65000.5"),
                            fee=D("0.0000011"), fee_currency="BTC")
    assert not await store.fill("hk-1-a", venue="bybit", trade_id="T1", amount=D("150000"), price=D("65000.5"))
    o = await store.get_order("hk-1-a")
    assert o is not None and o.status == OrderStatus.PARTIALLY_FILLED and o.remaining == D("500000")
    assert await store.fill("hk-1-a", venue="bybit", trade_id="T2", amount=D("500000"), price=D("65001"),
                            fee=D("0.0000039"), fee_currency="BTC")
    o = await store.get_order("hk-1-a")
    assert o is not None and o.status == OrderStatus.FILLED and o.filled == D("650000")
    assert o.fee == D("0.0000050") and o.fee_currency == "BTC"
    assert o.average == (D("150000") * D("65000.5") + D("500000") * D("65001")) / D("650000")
    assert await store.unsettled_orders() == []
    # A late "open" observation never moves a filled order backwards.
    await store.update_order("hk-1-a", status=OrderStatus.OPEN)
    o2 = await store.get_order("hk-1-a")
    assert o2 is not None and o2.status == OrderStatus.FILLED

    kinds = [e.kind for e in await store.tail(20)]
    assert kinds == ["intent", "sent", "ack", "fill", "fill", "order"]
    assert all(e.cycle == 1 for e in await store.tail(20))
    assert len(await store.fills_for("hk-1-a")) == 2
    assert (await store.verify()).ok


def store_url(store: AuditStore) -> str:
    return store.engine.url.render_as_string(hide_password=False)


async def test_client_order_id_is_used_once(store: AuditStore) -> None:
    kw = dict(venue="bybit", symbol=BTC, side="buy", amount=D(1), price=D(2))
    await store.intent("hk-dup", **kw)  # type: ignore[arg-type]
    with pytest.raises(AuditWriteError, match="already recorded"):
        await store.intent("hk-dup", **kw)  # type: ignore[arg-type]
    with pytest.raises(AuditWriteError, match="no intent"):
        await store.sent("hk-unknown")
    assert len(await store.tail(10)) == 1


async def test_cancel_reject_lost(store: AuditStore) -> None:
    for coid in ("c1", "c2", "c3"):
        await store.intent(coid, venue="bybit", symbol=BTC, side="buy", amount=D(10), price=D(1))
    await store.sent("c1")
    await store.cancel("c1", "reprice", confirmed=False)
    assert (await store.get_order("c1")).status == OrderStatus.SENT  # type: ignore[union-attr]
    await store.cancel("c1", "reprice")
    await store.reject("c2", "post-only would take")
    await store.update_order("c3", status=OrderStatus.LOST, reason="not found after restart")
    await store.update_order("c3", status=OrderStatus.OPEN, exchange_order_id="X3")  # found again
    states = {o.client_order_id: o for o in [await store.get_order(c) for c in ("c1", "c2", "c3")] if o}
    assert states["c1"].status == "cancelled" and states["c2"].status == "rejected"
    assert states["c3"].status == "open" and "not found" in states["c3"].reason
    assert [o.client_order_id for o in await store.unsettled_orders()] == ["c3"]


async def test_exact_decimals_round_trip(store: AuditStore) -> None:
    tiny, huge = D("0.000000000000000000000123456789"), D("123456789012345678901234.5")
    await store.intent("dx", venue="bybit", symbol=BTC, side="sell", amount=huge, price=tiny)
    o = await store.get_order("dx")
    assert o is not None and o.amount == huge and o.price == tiny
    with pytest.raises(TypeError, match="Decimal"):
        await store.intent("fx", venue="bybit", symbol=BTC, side="sell", amount=1.5, price=None)  # type: ignore[arg-type]
    payload = (await store.tail(1))[0].payload
    assert payload["price"] == "0.000000000000000000000123456789"


async def test_queries_for_caps_status_and_export(store: AuditStore) -> None:
    t0 = datetime.now(UTC)
    for cycle in (1, 2):
        store.start_cycle()
        for sym in (BTC, "ETH/USD:ETH"):
            await store.record_cycle(
                venue="bybit", symbol=sym, action="hold" if cycle == 1 else "trade", reasons=["within band"],
                exposure=D("10"), hedge=D("-9.9"), inflight=D(0), target=D("-10"), drift=D("0.1"),
                mark=D("65000"), band=D("0.1"), funding_rate=D("0.0001"), basis=D("12.5"), asset=sym[:3],
            )
    last = await store.last_cycles()
    assert [(c.symbol, c.cycle, c.action) for c in last] == [(BTC, 2, "trade"), ("ETH/USD:ETH", 2, "trade")]
    await store.intent("q1", venue="bybit", symbol=BTC, side="sell", amount=D(5), price=D(1),
                       notional_usd=D("5000"))
    recent = await store.recent_orders(t0 - timedelta(seconds=1))
    assert [o.notional_usd for o in recent] == [D("5000")]
    assert await store.recent_orders(datetime.now(UTC) + timedelta(seconds=5)) == []
    assert await store.last_error() is None
    await store.error("timeout placing order", client_order_id="q1", error_type="RequestTimeout")
    err = await store.last_error()
    assert err is not None and err.payload["message"] == "timeout placing order"
    events = [e async for e in store.iter_events(batch=2)]
    assert len(events) == 6 and [e.id for e in events] == sorted(e.id for e in events)
    assert [e async for e in store.iter_events(since=datetime.now(UTC) + timedelta(seconds=5))] == []


async def test_trading_state_commands(store: AuditStore) -> None:
    assert await store.requested_state() == TradingState.RUNNING
    assert await store.current_state() is None
    await store.command(TradingState.HALTED, via="cli", reason="maintenance")
    assert await store.requested_state() == TradingState.HALTED
    await store.record_state(TradingState.HALTED, "command")
    assert await store.current_state() == TradingState.HALTED
    await store.command(TradingState.REDUCING, via="mqtt")
    assert await store.requested_state() == TradingState.REDUCING
    event = (await store.tail(1))[0]
    assert event.kind == "command" and {"user", "host", "pid"} <= set(event.payload["by"])
    # Another keeper's commands are not ours.
    other = await AuditStore.open(store_url(store), "other")
    try:
        assert await other.requested_state() == TradingState.RUNNING
    finally:
        await other.close()


async def test_chain_links_and_verifies(store: AuditStore) -> None:
    for i in range(5):
        await store.append("alert", {"name": "drift", "value": D(i)})
    events = await store.tail(10)
    assert events[0].prev_hash == GENESIS
    for a, b in itertools.pairwise(events):
        assert b.prev_hash == a.hash
    e = events[2]
    content = event_content(ts=e.ts, keeper=e.keeper, cycle=e.cycle, kind=e.kind, venue=e.venue,
                            symbol=e.symbol, asset=e.asset, payload=e.payload, prev_hash=e.prev_hash)
    assert event_hash(content) == e.hash
    result = await store.verify()
    assert result.ok and result.events == 5


async def test_chains_of_two_keepers_interleave(store: AuditStore) -> None:
    other = await AuditStore.open(store_url(store), "backup")
    try:
        for i in range(3):
            await store.append("alert", {"count": i})
            await other.append("alert", {"count": i})
    finally:
        await other.close()
    result = await store.verify()
    assert result.ok and result.events == 6 and set(result.heads or {}) == {"main", "backup"}


async def test_concurrent_appends_never_fork(store: AuditStore) -> None:
    """Two writers (separate engines, as two processes would be) appending at once."""
    other = await AuditStore.open(store_url(store), "main", write_timeout=5.0)
    try:
        await asyncio.gather(
            *(store.append("alert", {"count": i}) for i in range(15)),
            *(other.append("alert", {"count": i}) for i in range(15)),
        )
    finally:
        await other.close()
    events = await store.tail(100)
    assert len(events) == 30
    assert len({e.prev_hash for e in events}) == 30
    assert (await store.verify()).ok


async def test_a_fork_is_refused_by_the_database(store: AuditStore) -> None:
    first = await store.append("start", {})
    await store.append("stop", {})
    ts = datetime.now(UTC)
    content = event_content(ts=ts, keeper="main", cycle=None, kind="stop", venue=None, symbol=None, asset=None,
                            payload={}, prev_hash=first.hash)
    with pytest.raises(sa.exc.IntegrityError):
        async with store.engine.begin() as conn:
            await conn.execute(sa.insert(Event).values(
                ts=ts, keeper="main", kind="stop", payload={}, prev_hash=first.hash, hash=event_hash(content)))


# --- tampering ---------------------------------------------------------------------------------------


async def _chain(store: AuditStore, n: int = 6) -> list[int]:
    ids = []
    for i in range(n):
        ids.append((await store.append("alert", {"count": i, "price": D("1.5") + i})).id)
    assert (await store.verify()).ok
    return ids


async def _sql(store: AuditStore, *statements: str) -> None:
    if store.engine.dialect.name == "postgresql":
        # Tamper as the superuser, outside the store (the unique constraints are what a forger drops).
        async with store.engine.begin() as conn:
            for s in statements:
                await conn.execute(sa.text(s))
    else:
        async with store.engine.connect() as conn:
            await conn.begin()
            for s in statements:
                await conn.execute(sa.text(s))
            await conn.commit()


async def test_edited_row_is_detected(store: AuditStore) -> None:
    ids = await _chain(store)
    payload = json.dumps({"count": 2, "price": "9.5"})
    await _sql(store, f"UPDATE events SET payload = '{payload}' WHERE id = {ids[2]}")
    result = await store.verify()
    assert not result.ok and result.bad_id == ids[2] and "edited" in result.problem
    assert result.events == 2


async def test_edited_time_is_detected(store: AuditStore) -> None:
    ids = await _chain(store)
    await _sql(store, f"UPDATE events SET ts = '2020-01-01 00:00:00' WHERE id = {ids[4]}")
    result = await store.verify()
    assert not result.ok and result.bad_id == ids[4]


async def test_deleted_row_is_detected(store: AuditStore) -> None:
    ids = await _chain(store)
    await _sql(store, f"DELETE FROM events WHERE id = {ids[3]}")
    result = await store.verify()
    assert not result.ok and result.bad_id == ids[4] and "deleted, inserted or reordered" in result.problem


async def test_deleted_first_row_is_detected(store: AuditStore) -> None:
    ids = await _chain(store)
    await _sql(store, f"DELETE FROM events WHERE id = {ids[0]}")
    result = await store.verify()
    assert not result.ok and result.bad_id == ids[1]


async def test_inserted_row_is_detected(store: AuditStore) -> None:
    """A forged row with a correct hash of its own, slipped in after row 2 (later ids shifted up)."""
    ids = await _chain(store)
    events = {e.id: e for e in await store.tail(10)}
    prev = events[ids[2]]
    ts = prev.ts + timedelta(microseconds=1)
    content = event_content(ts=ts, keeper="main", cycle=None, kind="alert", venue=None, symbol=None, asset=None,
                            payload={"count": 99}, prev_hash=prev.hash)
    forged = event_hash(content)
    shift = f"UPDATE events SET id = id + 1000 WHERE id > {ids[2]}"
    drop = "ALTER TABLE events DROP CONSTRAINT uq_events_keeper_prev_hash" if (
        store.engine.dialect.name == "postgresql") else "DROP INDEX IF EXISTS uq_events_keeper_prev_hash"
    stmts = [shift] if store.engine.dialect.name == "sqlite" else [drop, shift]
    await _sql(store, *stmts)
    if store.engine.dialect.name == "sqlite":
        # SQLite enforces the unique constraint by an internal index: a forger rebuilds the table.
        await _sql(store,
                   "CREATE TABLE ev2 AS SELECT * FROM events",
                   "DROP TABLE events",
                   "ALTER TABLE ev2 RENAME TO events")
    await _sql(store, (
        "INSERT INTO events (id, ts, keeper, cycle, kind, venue, symbol, asset, payload, prev_hash, hash) "
        f"VALUES ({ids[2] + 1}, '{ts.strftime('%Y-%m-%d %H:%M:%S.%f')}+00:00', 'main', NULL, 'alert', NULL, "
        f"NULL, NULL, '{{\"count\": 99}}', '{prev.hash}', '{forged}')"
    ) if store.engine.dialect.name == "postgresql" else (
        "INSERT INTO events (id, ts, keeper, cycle, kind, venue, symbol, asset, payload, prev_hash, hash) "
        f"VALUES ({ids[2] + 1}, '{ts.strftime('%Y-%m-%d %H:%M:%S.%f')}', 'main', NULL, 'alert', NULL, "
        f"NULL, NULL, '{{\"count\": 99}}', '{prev.hash}', '{forged}')"
    ))
    result = await store.verify()
    assert not result.ok, result
    assert result.bad_id == ids[3] + 1000 and "inserted" in result.problem
    assert result.events == 4  # rows 0..2 and the forged row itself check out; the next one does not


async def test_reordered_rows_are_detected(store: AuditStore) -> None:
    ids = await _chain(store)
    a, b = ids[2], ids[3]
    await _sql(store,
               f"UPDATE events SET id = -1 WHERE id = {a}",
               f"UPDATE events SET id = {a} WHERE id = {b}",
               f"UPDATE events SET id = {b} WHERE id = -1")
    result = await store.verify()
    assert not result.ok and result.bad_id == a


def test_canonical_json_is_stable() -> None:
    ts = datetime(2025, 1, 31, 12, 0, 0, 5, tzinfo=UTC)
    value = {"b": D("1E+1"), "a": [D("0.00000001"), 1.5, True, None], "t": ts, "s": "é"}
    assert canonical_json(value) == (
        '{"a":["0.00000001","1.5",true,null],"b":"10","s":"é","t":"2025-01-31T12:00:00.000005Z"}'
    )
    with pytest.raises(ValueError, match="naive"):
        canonical_json({"t": datetime(2025, 1, 1)})


async def test_append_many_is_one_chained_transaction(store: AuditStore) -> None:
    from hedged.audit.store import NewEvent

    await store.append("start", {})
    recs = await store.append_many([NewEvent("alert", {"count": i}, venue="bybit") for i in range(5)])
    assert [r.prev_hash for r in recs[1:]] == [r.hash for r in recs[:-1]]
    assert (await store.verify()).events == 6
