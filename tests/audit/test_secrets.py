"""No secret reaches the database: payloads carrying fake keys are written, then every byte is scanned."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import sqlalchemy as sa

from hedged.audit.scrub import REDACTED, Scrubber
from hedged.audit.store import AuditStore, sqlite_path

from .conftest import FAKE_KEY, FAKE_SECRET

UNREGISTERED = "UNREGISTERED-kX9pQ2mZ7wL4"  # a secret the store was never told about


async def _write_dirty_payloads(store: AuditStore) -> None:
    store.start_cycle()
    ccxt_order = {
        "id": "X1", "clientOrderId": "hk-s1", "status": "open", "amount": 1.0,
        "info": {"orderId": "X1", "apiKey": FAKE_KEY, "sign": "deadbeef" * 8, "echo": UNREGISTERED},
    }
    await store.intent(
        "hk-s1", venue="bybit", symbol="BTC/USD:BTC", side="sell", amount=D(100), price=D(65000),
        reason=f"drift (key {FAKE_KEY})",
        payload={"apiKey": FAKE_KEY, "secret": FAKE_SECRET, "api_key": UNREGISTERED, "order": ccxt_order,
                 "headers": {"X-BAPI-API-KEY": UNREGISTERED}, "note": f"signed with {FAKE_SECRET}"},
    )
    await store.sent("hk-s1", payload={"request": {"apiKey": FAKE_KEY}, "info": {"k": UNREGISTERED}})
    await store.ack("hk-s1", exchange_order_id="X1", payload=ccxt_order)
    await store.error(
        f"bybit POST https://api.bybit.com/v5/order/create?api_key={UNREGISTERED}&sign=abc123 "
        f"{{\"apiKey\": \"{UNREGISTERED}\", \"secret\": \"{FAKE_SECRET}\"}}",
        client_order_id="hk-s1", payload={"details": [{"token": UNREGISTERED}, {FAKE_KEY: 1}]},
    )
    await store.alert("liquidation", "warning", f"{FAKE_KEY} close", {"password": UNREGISTERED})
    await store.record_cycle(venue="bybit", symbol="BTC/USD:BTC", action="trade",
                             reasons=[f"reason with {FAKE_SECRET}"], payload={"info": UNREGISTERED})


async def _all_text(store: AuditStore, url: str) -> bytes:
    path = sqlite_path(url)
    if path is not None:
        await store.close()
        return b"".join(p.read_bytes() for p in Path(path).parent.glob(path.name + "*"))
    out: list[str] = []
    async with store.engine.connect() as conn:
        for table in ("events", "orders", "fills", "cycles"):
            rows = (await conn.execute(sa.text(f"SELECT t::text FROM {table} t"))).scalars().all()
            out.extend(rows)
    await store.close()
    return "\n".join(out).encode()


async def test_fake_keys_never_reach_the_database(url: str) -> None:
    store = await AuditStore.open(url, "main", secrets=[FAKE_KEY, FAKE_SECRET])
    await _write_dirty_payloads(store)
    assert (await store.verify()).ok
    intent = (await store.tail(10))[0]
    assert intent.payload["order"]["status"] == "open"  # useful content survives
    assert "info" in intent.payload["order"]["_dropped"]
    data = await _all_text(store, url)
    assert b"hk-s1" in data  # we did scan the real rows
    for secret in (FAKE_KEY, FAKE_SECRET, UNREGISTERED):
        assert secret.encode() not in data, secret


def test_scrubber_rules() -> None:
    s = Scrubber(extra_keys=["bybit"], secrets=["REGISTERED-123456"])
    out = s.scrub({"bybit": {"BTC": "1", "BTC/USD:BTC": "2"}, "apiKey": "x", "weird": 1,
                   "message": "a=1&signature=zzz&apikey=REGISTERED-123456", "APIKEY": "y"})
    assert out == {
        "bybit": {"BTC": "1", "BTC/USD:BTC": "2"},
        "message": f"a=1&signature={REDACTED}&apikey={REDACTED}",
        "_dropped": [REDACTED, REDACTED, "weird"],
    }
