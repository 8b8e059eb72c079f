"""Streamed tickers through real ccxt.pro: every symbol's price message reaches the view, also when several
symbols' messages are handled in one event-loop turn. ccxt.pro resolves the watch with the first of them; the
others reach only its cache (`pro.tickers`, `pro.bidsasks`). Its receive loop handles in one turn every buffered
message but the last, so it takes three on one connection: three instruments whose prices move in one step."""

from __future__ import annotations

import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hedged.service import make_venues
from hedged.sim.server import Emulator
from hedged.sim.settings import binance_settings, default_settings
from hedged.stream import StreamedVenue
from tests.keeper.conftest import keeper_config
from tests.stream.conftest import until, venue_cfg

D = Decimal
INVERSE = ("BTC/USD:BTC", "ETH/USD:ETH", "SOL/USD:SOL")
LINEAR = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")
SOL = [{"symbol": "SOL/USD:SOL", "tick": D("0.01"), "qty_step": D(1), "contract_size": D(10)},
       {"symbol": "SOL/USDT:USDT", "tick": D("0.01"), "qty_step": D("0.1")}]
# no periodic ticker snapshot (the exchange's loop pushes one every second): a lost message stays lost
QUIET = {"clock": "manual", "taker_flow_usd_per_s": 0, "tick_seconds": 3600}


def dec(v: Any) -> Decimal:
    return D(str(v)) if v is not None else D(0)


def fields(t: dict[str, Any]) -> tuple[Decimal, ...]:
    return dec(t.get("markPrice")), dec(t.get("bid")), dec(t.get("ask"))


def quoted(emu: Emulator, symbol: str) -> tuple[Decimal, ...]:
    i = emu.engine.instrument(symbol)
    return i.price, i.bid, i.ask  # mark, touch


async def symbols_in_one_step(emu: Emulator, exchange: str, symbols: tuple[str, ...], tmp_path: Path,
                               cached: Callable[[StreamedVenue, str], dict[str, Any] | None]) -> None:
    """Five steps, each moving every symbol's price at once: ccxt's cache gets every message, and so must the view
    (with the exchange's periodic snapshot off, a message missed is never sent again)."""
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = "demo-key", "demo-secret"
    cfg = keeper_config(emu.url, tmp_path / "k.db", venues=venue_cfg(exchange, emu.url),
                        hedge=[{"asset": s.split("/")[0], "venue": "sim", "instrument": s} for s in symbols])
    v = make_venues(cfg)["sim"]
    assert isinstance(v, StreamedVenue)
    eng = emu.engine
    try:
        await v.load_markets()  # starts the streams
        await until(v.alive, "streams alive (every symbol's subscription snapshot in the view)")
        await v.fetch_state()
        for round_ in range(1, 6):
            # every symbol's price in one synchronous block: one message per symbol (and topic) in one burst
            for s in symbols:
                eng.set_price(eng.instrument(s).price * (1 + D(round_) / 100), symbol=s)
            want = {s: quoted(emu, s) for s in symbols}

            def has_all(source: Callable[[str], dict[str, Any] | None], want: dict[str, Any] = want) -> bool:
                return all((t := source(s)) is not None and fields(t) == want[s] for s in symbols)

            # ccxt.pro handled every message (its cache has them) ...
            await until(lambda: has_all(lambda sym: cached(v, sym)), f"round {round_}: every message handled by ccxt")
            # ... and the view has every symbol's, from the stream (no further message comes)
            try:
                await until(lambda: has_all(v.tickers.get), f"round {round_}: every streamed ticker in the view")
            except AssertionError as exc:
                seen = {s: fields(v.tickers[s]) if s in v.tickers else None for s in symbols}
                raise AssertionError(f"{exc}: {seen} != {want}") from None
    finally:
        await v.close()


@pytest.mark.parametrize("symbols", [INVERSE, LINEAR], ids=["inverse", "linear"])
async def test_bybit_tickers_handled_in_one_turn_all_reach_the_view(tmp_path: Path, symbols: tuple[str, ...]) -> None:
    instruments = [*(i.model_dump() for i in default_settings().instruments), *SOL]
    async with Emulator(default_settings(**QUIET, instruments=instruments)) as emu:
        await symbols_in_one_step(emu, "bybit", symbols, tmp_path, cached=lambda v, s: v.pro.tickers.get(s))


async def test_binance_marks_and_books_handled_in_one_turn_all_reach_the_view(tmp_path: Path) -> None:
    # two connections (bookTicker, markPrice@1s), each with a BTC, an ETH and a SOL message per step
    instruments = [*(i.model_dump() for i in binance_settings().instruments), SOL[0]]
    async with Emulator(binance_settings(**QUIET, instruments=instruments), exchange="binance") as emu:
        def cached(v: StreamedVenue, s: str) -> dict[str, Any] | None:
            mark, book = v.pro.tickers.get(s), v.pro.bidsasks.get(s)
            return None if mark is None or book is None else {**book, "markPrice": mark.get("markPrice")}

        await symbols_in_one_step(emu, "binancecoinm", INVERSE, tmp_path, cached=cached)
