"""Quiet cycles: rows are written when they say something new, else as a heartbeat with the cycles it stands for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hedged.audit import quiet
from hedged.audit.store import AuditStore, NewCycle

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = ("sim", "BTC/USD:BTC")


def row(t: float, action: str = "hold", reasons: tuple[str, ...] = ("in_band: drift 0.1% of 1%",), **vals: Any
        ) -> quiet.Row:
    values = {"hedge": Decimal(-650000), "target": Decimal(-650000), "drift": Decimal(10), "band": Decimal(6500),
              "mark": Decimal(65000), "exposure": Decimal(650000), "inflight": Decimal(0),
              "funding_rate": Decimal("0.0001"), "basis": Decimal(2)}
    values.update({k: Decimal(v) for k, v in vals.items()})
    return quiet.Row(action, reasons, values, T0 + timedelta(seconds=t))


def run(rows: list[quiet.Row], every: float = 600) -> list[tuple[int, int]]:
    """(index, quiet count) of the rows written."""
    state, out = quiet.QuietState(), []
    for i, r in enumerate(rows):
        state, chosen = quiet.select(state, {KEY: r}, every)
        if KEY in chosen:
            out.append((i, chosen[KEY]))
    return out


def test_a_quiet_day_is_one_row_per_quiet_every_with_the_count() -> None:
    rows = [row(10 * i, mark=65000 + (i % 7), reasons=(f"in_band: drift {i % 5}",)) for i in range(8640)]
    written = run(rows)
    assert written[0] == (0, 1)
    assert len(written) == 8640 // 60 and all(n == 60 for _, n in written[1:])  # every 600 s, 60 cycles each
    assert sum(n for _, n in written) == 8640 - 59  # the tail after the last heartbeat is not written yet


def test_news_is_written_at_once() -> None:
    base = [row(0), row(10)]
    assert run([*base, row(20, action="trade")]) == [(0, 1), (2, 2)]  # an order: always, before it is sent
    assert run([*base, row(20, action="blocked", reasons=("stale_data: 40s",))]) == [(0, 1), (2, 2)]
    assert run([*base, row(20, mark=65000 * 1.006)]) == [(0, 1), (2, 2)]  # mark beyond 0.5 %
    assert run([*base, row(20, mark=65000 * 1.004)]) == [(0, 1)]
    assert run([*base, row(20, drift=10 + 651)]) == [(0, 1), (2, 2)]  # drift moved by > a tenth of the band
    assert run([*base, row(20, drift=10 + 649)]) == [(0, 1)]
    assert run([*base, row(20, funding_rate="0.0003")]) == [(0, 1), (2, 2)]


def test_quiet_every_zero_writes_every_row() -> None:
    assert run([row(i) for i in range(5)], every=0) == [(i, 1) for i in range(5)]


async def test_store_summarises_quiet_rows_and_keeps_orders(url: str) -> None:
    now = [T0]
    store = await AuditStore.open(url, "main", clock=lambda: now[0], quiet_every=60)
    try:
        def entry(action: str = "hold") -> NewCycle:
            return NewCycle(venue="sim", symbol="BTC/USD:BTC", action=action, reasons=["in_band"], hedge=Decimal(-1),
                            target=Decimal(-1), drift=Decimal(0), band=Decimal("0.01"), mark=Decimal(65000))

        for i in range(30):  # 300 s at 10 s: first row + heartbeats at 60, 120, … 240 s; one trade at 95 s
            now[0] = T0 + timedelta(seconds=10 * i)
            store.start_cycle()
            await store.record_cycles([entry("trade" if i == 9 else "hold")])
        cycles = [e for e in await store.tail(100) if e.kind == "cycle"]
        got = [(e.cycle, e.payload["action"], e.payload.get("quiet", 1)) for e in cycles]
        assert got == [(1, "hold", 1), (7, "hold", 6), (10, "trade", 3), (11, "hold", 1), (17, "hold", 6),
                       (23, "hold", 6), (29, "hold", 6)]
        assert (await store.verify()).ok
    finally:
        await store.close()
