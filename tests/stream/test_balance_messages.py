"""Streamed balances through real ccxt.pro: a resync racing one coin's wallet message still takes REST for the
other coins. Binance's ACCOUNT_UPDATE lists only the coins that changed, so a view that kept its streamed
balance whole whenever any coin moved during the read could lack a coin for as long as fills kept streaming
(its exposure read as zero)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

from hedged.service import make_venues
from hedged.sim.binance import BinanceFront
from hedged.sim.server import Emulator
from hedged.sim.settings import binance_settings
from hedged.stream import StreamedVenue
from tests.keeper.conftest import keeper_config
from tests.stream.conftest import until, venue_cfg

INV = "BTC/USD:BTC"


def wallet(emu: Emulator, coin: str) -> Decimal:
    """The account's wallet balance on the exchange (what REST's walletBalance says)."""
    return Decimal(str(emu.engine.accounts["demo-key"].wallet[coin]))


def total(balance: dict[str, object], coin: str) -> Decimal:
    t = balance.get("total")
    assert isinstance(t, dict)
    return Decimal(str(t.get(coin) or 0))


@contextlib.asynccontextmanager
async def streamed_coinm(tmp_path: Path) -> AsyncIterator[tuple[Emulator, StreamedVenue]]:
    """The Binance front on a manual clock and a streamed binancecoinm venue against it, alive and resynced
    once over REST."""
    os.environ["SIM_KEY"], os.environ["SIM_SECRET"] = "demo-key", "demo-secret"
    async with Emulator(binance_settings(clock="manual", taker_flow_usd_per_s=0), exchange="binance") as emu:
        cfg = keeper_config(emu.url, tmp_path / "k.db", venues=venue_cfg("binancecoinm", emu.url),
                            hedge=[{"asset": "BTC", "venue": "sim", "instrument": INV}])
        v = make_venues(cfg)["sim"]
        assert isinstance(v, StreamedVenue) and isinstance(emu.rest, BinanceFront) and emu.binance_ws is not None
        try:
            await v.load_markets()  # starts the streams
            await until(v.alive, "streams alive", 30.0)
            await v.fetch_state()  # the first REST resync
            yield emu, v
        finally:
            await v.close()


async def test_a_resync_racing_one_coins_wallet_message_still_takes_rest_for_the_others(tmp_path: Path) -> None:
    # An ETH deposit's ACCOUNT_UPDATE is lost (the event type stalled): the next read confirms over REST. A BTC
    # credit streamed while that read is in flight keeps BTC's streamed (newer) total; ETH is REST's.
    async with streamed_coinm(tmp_path) as (emu, v):
        assert isinstance(emu.rest, BinanceFront) and emu.binance_ws is not None
        rest, ws, eng = emu.rest, emu.binance_ws, emu.engine
        before = sum(rest.requests.values())
        v.synced_at = 0.0  # one forced resync: how many REST requests a resync makes
        await v.fetch_state(with_orders=False)
        per_resync = sum(rest.requests.values()) - before
        ws.stall("ACCOUNT_UPDATE")
        eng.credit("demo-key", "ETH", Decimal(5))
        await asyncio.sleep(0)  # the front builds its ACCOUNT_UPDATE in the next loop turn: withheld
        ws.unstall()
        eth = wallet(emu, "ETH")
        assert total(v.balance, "ETH") == eth - 5  # its wallet message was withheld
        v.synced_at = 0.0
        before = sum(rest.requests.values())
        messages = v.messages["balance"]
        read = asyncio.create_task(v.fetch_state(with_orders=False))
        await until(lambda: sum(rest.requests.values()) >= before + per_resync, "the resync's REST read", 30.0)
        # the view differs from REST (ETH): the read gives messages a moment; a BTC credit streams in then
        eng.credit("demo-key", "BTC", Decimal("0.5"))
        await until(lambda: v.messages["balance"] > messages, "the BTC credit streamed", 30.0)
        state = await read
        assert total(state["balance"], "ETH") == eth, state["balance"]["total"]
        assert total(state["balance"], "BTC") == wallet(emu, "BTC")  # streamed, newer than the REST read


async def test_back_to_back_wallet_messages_each_reach_the_view(tmp_path: Path) -> None:
    # Three ACCOUNT_UPDATEs written back to back (ETH, BTC, then BTC again, each flushed at once), each listing
    # only its coin: the view merges them, every credit from the stream alone (no REST read between). Were
    # buffered messages handled in one turn (as tickers are: docs/streaming.md), the watch's answer would
    # carry the last one's coins only; here each is handled in its own turn (3 applied per round, measured).
    async with streamed_coinm(tmp_path) as (emu, v):
        assert emu.binance_ws is not None
        ws, eng = emu.binance_ws, emu.engine
        for round_ in range(1, 4):
            resyncs = v.resyncs
            for coin, amount in (("ETH", Decimal(5)), ("BTC", Decimal("0.5")), ("BTC", Decimal("0.25"))):
                eng.credit("demo-key", coin, amount)
                ws._flush()  # the front's per-turn coalescing, run now: one message per credit
            await until(lambda: total(v.balance, "BTC") == wallet(emu, "BTC")
                        and total(v.balance, "ETH") == wallet(emu, "ETH"),
                        f"round {round_}: every credit in the view", 30.0)
            assert v.resyncs == resyncs  # from the stream, not a REST read
