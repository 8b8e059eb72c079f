"""`hedged report --config FILE`: the figures from a keeper's (SQLite) audit store, written through its API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from hedged.audit.migrate import upgrade
from hedged.audit.store import AuditStore, NewCycle
from hedged.cli import app
from hedged.config import load_config


async def fill_store(url: str, start: datetime) -> None:
    now = [start]
    store = await AuditStore.open(url, "main", clock=lambda: now[0])
    try:
        price = Decimal(65000)
        for i in range(40):  # ten hours of 15-minute cycles, an inverse hedge at target, then a deposit
            now[0] = start + timedelta(minutes=15 * i)
            store.start_cycle()
            price += Decimal(100 if i % 3 else -150)
            coins = Decimal(10) if i < 20 else Decimal(11)
            exposure = Decimal(650000) / price * coins / 10
            hedge = -Decimal(650000) / price if i < 21 else -Decimal(715000) / price
            await store.record_cycles([NewCycle(
                venue="sim", symbol="BTC/USD:BTC", action="hold", exposure=exposure, hedge=hedge, inflight=Decimal(0),
                target=-exposure, drift=hedge + exposure, mark=price, band=exposure / 100,
                funding_rate=Decimal("0.0001"))])
            if i == 20:
                await store.intent(client_order_id="main-x-0", venue="sim", symbol="BTC/USD:BTC", side="sell",
                                   amount=Decimal(65000), price=price, reduce_only=False, post_only=True,
                                   reason="drift", notional_usd=Decimal(65000))
                await store.fill("main-x-0", venue="sim", trade_id="t1", amount=Decimal(65000), price=price,
                                 fee=Decimal("0.0002"), fee_currency="BTC", symbol="BTC/USD:BTC", side="sell")
    finally:
        await store.close()


def test_report_from_the_audit_store(tmp_path: Path) -> None:
    db = tmp_path / "hedged.db"
    cfg_file = tmp_path / "hedged.toml"
    cfg_file.write_text(f'[venues.sim]\nexchange = "bybit"\n[[hedge]]\nasset = "BTC"\nvenue = "sim"\n'
                        f'instrument = "BTC/USD:BTC"\n[audit]\nurl = "sqlite:///{db}"\n')
    url = load_config(cfg_file).audit_url
    asyncio.run(upgrade(url))
    asyncio.run(fill_store(url, datetime.now(UTC) - timedelta(hours=12)))
    out_dir = tmp_path / "rep"
    out = CliRunner().invoke(app, ["report", "--config", str(cfg_file), "--days", "1", "--out", str(out_dir)])
    assert out.exit_code == 0, out.output
    page = (out_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 6
    assert "live keeper: 1 orders, 1 fills" in page
    assert "funding about" in page  # estimated: the cycles crossed at least one 8-hour funding time


def test_report_needs_exactly_one_source(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["report"])
    assert out.exit_code == 2
    assert "exactly one of --sim DIR" in out.output
