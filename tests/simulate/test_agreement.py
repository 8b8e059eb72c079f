"""The simulator's exchange model and the local exchange agree: one simulated run, replayed order by order
through real ccxt over loopback on `hedged.sim` (its own clock sub-steps, its HTTP front), ends with the
same balances, positions, PnL, fees and funding, to the last satoshi; and the keeper's ccxt view of that
exchange is the snapshot the simulator showed the core."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import pytest

from hedged.config import parse_config
from hedged.service import make_venues
from hedged.sim.clock import Clock
from hedged.sim.engine import Engine
from hedged.sim.server import Emulator
from hedged.sim.settings import AccountSettings
from hedged.simulate.exchange import API_KEY
from hedged.simulate.paths import PathSpec
from hedged.simulate.runner import SimOptions, prepare, simulate
from hedged.snapshot import parse_venue

SAT = Decimal("1e-8")


def sums(engine: Engine, api_key: str) -> dict[str, Any]:
    acct = engine.accounts[api_key]
    ex = [e for e in engine.executions if e.api_key == api_key]
    return {
        "wallet": {c: v for c, v in acct.wallet.items()},
        "positions": {p.instrument.symbol: (p.size, p.entry, p.cum_realised, p.upnl(p.instrument.price))
                      for p in acct.positions.values()},
        "fees": sum((e.fee for e in ex if e.exec_type == "Trade"), Decimal(0)),
        "funding": sum((e.fee for e in ex if e.exec_type == "Funding"), Decimal(0)),
        "traded": sum((e.qty for e in ex if e.exec_type == "Trade"), Decimal(0)),
        "fundings": sum(1 for e in ex if e.exec_type == "Funding"),
    }


def sat(x: Any) -> Any:
    if isinstance(x, Decimal):
        return x.quantize(SAT)
    if isinstance(x, dict):
        return {k: sat(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return tuple(sat(v) for v in x)
    return x


@pytest.mark.parametrize("instrument", ["BTC/USD:BTC", "BTC/USDT:USDT"])
async def test_simulated_run_replayed_on_the_local_exchange_agrees(instrument: str) -> None:
    hedge = {"asset": "BTC", "venue": "sim", "instrument": instrument}
    cfg = parse_config({"venues": {"sim": {"exchange": "bybit"}}, "hedge": [hedge],
                        "limits": {"max_order_usd": 150000}})
    opts = SimOptions(path=PathSpec(days=1, step_s=3600, seed=5), funding_rate=Decimal("0.001"), start_hedged=False,
                      rules=("config",), journal=True)
    settings, _path, balances, start = prepare(cfg, opts)
    result = simulate(cfg, opts)
    venue = result.scenario("config").venues["sim"]
    journal = venue.journal
    assert journal is not None
    assert sum(1 for j in journal if j[0] == "place") >= 4  # opening orders, capped at 150k USD each
    assert sums(venue.engine, API_KEY)["fundings"] >= 3

    live = settings.model_copy(deep=True)
    live.accounts = [AccountSettings(api_key="agree-key", secret="agree-secret", balances=balances)]
    os.environ["AGREE_KEY"], os.environ["AGREE_SECRET"] = "agree-key", "agree-secret"
    async with Emulator(live, clock=Clock(manual=True, start_ms=int(start.timestamp() * 1000))) as emu:
        client = emu.client("agree-key", "agree-secret")
        try:
            await client.load_markets()
            for entry in journal:
                kind = entry[0]
                if kind == "move":
                    emu.engine.set_price(entry[2], asset=entry[1])
                elif kind == "advance":  # the exchange's own clock, in its own 200 ms sub-steps
                    emu.engine.clock.step(entry[1])
                    emu.engine.advance()
                elif kind == "place":
                    _, symbol, side, amount, price, post_only, reduce_only, cid = entry
                    params: dict[str, Any] = {"clientOrderId": cid}
                    if post_only:
                        params["postOnly"] = True
                    if reduce_only:
                        params["reduceOnly"] = True
                    await client.create_order(symbol, "limit", side, float(amount), float(price), params)
                elif kind == "cancel":
                    _, symbol, cid = entry
                    order_id = emu.engine.by_client_id[("agree-key", cid)].order_id
                    await client.cancel_order(order_id, symbol)
            sim_view, live_view = sums(venue.engine, API_KEY), sums(emu.engine, "agree-key")
            assert sim_view["traded"] > 0
            assert sat(live_view) == sat(sim_view)

            # what the keeper reads from that exchange through ccxt is what the simulator showed the core
            kcfg = parse_config({"venues": {"sim": {"exchange": "bybit", "url": emu.url, "api_key_env": "AGREE_KEY",
                                                    "secret_env": "AGREE_SECRET"}}, "hedge": [hedge]})
            kv = make_venues(kcfg)["sim"]
            try:
                await kv.load_markets()
                seen = parse_venue(await kv.fetch_state(), "venues.sim")
            finally:
                await kv.close()
            mine = venue.state()
            assert seen.markets[instrument] == mine.markets[instrument]
            assert {c: sat(v) for c, v in seen.balances.items() if v} == {c: sat(v) for c, v in mine.balances.items()
                                                                          if v}
            p_seen, p_mine = seen.positions[instrument], mine.positions[instrument]
            assert p_seen.contracts == p_mine.contracts
            assert sat(p_seen.entry_price) == sat(p_mine.entry_price)
            assert sat(p_seen.unrealized_pnl) == sat(p_mine.unrealized_pnl)
            t_seen, t_mine = seen.tickers[instrument], mine.tickers[instrument]
            assert (t_seen.bid, t_seen.ask, t_seen.mark, t_seen.funding_rate) == (
                t_mine.bid, t_mine.ask, t_mine.mark, t_mine.funding_rate)
        finally:
            await client.close()
