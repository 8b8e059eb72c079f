"""The "naive" baseline: the common hedging rule the simulator compares the config against.

It counts the coins in the wallets (ignoring the inverse short's coin PnL, i.e. the coins the hedge itself
earns or loses), sizes the short in USD against them at today's price, and trades whenever the USD gap
exceeds the band, with marketable limits that take liquidity. On an inverse hedge this sees a gap on every
price move, which is exactly the churn docs/architecture.md explains and our rule avoids. Pure: a snapshot in,
orders out.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hedged.config import Config, HedgeConfig
from hedged.exposure import ZERO, asset_price, contract_market, instrument_mark, notional_usd, ratio_at, venue_state
from hedged.model import OrderIntent, Side, Snapshot
from hedged.planner import round_to_step


@dataclass(frozen=True)
class NaiveRule:
    prefix: str = "naive-"

    def orders(self, config: Config, snapshot: Snapshot, tag: str) -> list[OrderIntent]:
        groups: dict[tuple[str, str], list[HedgeConfig]] = {}
        for e in config.hedge:
            groups.setdefault((e.venue, e.instrument), []).append(e)
        out: list[OrderIntent] = []
        for n, ((venue, symbol), entries) in enumerate(groups.items()):
            state = venue_state(snapshot, venue)
            market = contract_market(state, venue, symbol)
            mark = instrument_mark(state, venue, symbol)
            target_usd = ZERO
            for e in entries:
                coins = e.off_exchange + sum(
                    (snapshot.venues[v].balances.get(e.asset, ZERO) for v in e.counted_venues), ZERO)
                target_usd -= ratio_at(e, snapshot.time) * e.beta * coins * asset_price(e, snapshot, mark)
            pos = state.positions.get(symbol)
            held = pos.contracts if pos is not None else ZERO
            unit = notional_usd(market, Decimal(1), mark)
            gap = target_usd - held * unit
            threshold = max(max(e.band for e in entries) * abs(target_usd), max(e.min_band_usd for e in entries),
                            market.lot * unit)
            if abs(gap) <= threshold:
                continue
            contracts = round_to_step(gap / unit, market.lot)
            if contracts == 0 or abs(contracts) < market.min_amount:
                continue
            side: Side = "buy" if contracts > 0 else "sell"
            t = state.tickers[symbol]
            price = t.ask if side == "buy" else t.bid
            if price is None:
                continue
            reduce_only = held != 0 and (held > 0) != (contracts > 0) and abs(contracts) <= abs(held)
            out.append(OrderIntent(venue, symbol, side, abs(contracts), price, reduce_only, False,
                                   f"{self.prefix}{tag}-{n}"))
        return out
