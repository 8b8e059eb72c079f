"""Unified accounts: coin balances plus one-way positions, with the contract math of each family.

Inverse positions average their entry as a contract-weighted harmonic mean and measure PnL in the base
coin, `contracts·size·(1/entry − 1/mark)` for a long; linear ones use the arithmetic mean and quote-coin PnL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from hedged.sim.instruments import ZERO, Category, Instrument


@dataclass
class Position:
    """A one-way position; `size` is signed (short < 0) in contracts (inverse) or base coin (linear)."""

    instrument: Instrument
    size: Decimal = ZERO
    entry: Decimal = ZERO
    realised: Decimal = ZERO  # since the position was last opened
    cum_realised: Decimal = ZERO
    created_ms: int = 0
    updated_ms: int = 0
    seq: int = 0

    def upnl(self, mark: Decimal) -> Decimal:
        """Unrealised PnL in the settle coin."""
        if self.size == 0 or self.entry == 0:
            return ZERO
        inst = self.instrument
        if inst.inverse:
            return self.size * inst.contract_size * (1 / self.entry - 1 / mark)
        return self.size * (mark - self.entry)

    def value(self, mark: Decimal) -> Decimal:
        """Absolute position value in the settle coin."""
        return self.instrument.value(abs(self.size), mark)

    def apply_fill(self, signed_qty: Decimal, price: Decimal) -> tuple[Decimal, Decimal]:
        """Add a fill; return (realised PnL in the settle coin, closed quantity)."""
        inst = self.instrument
        realised = ZERO
        closed = ZERO
        if self.size != 0 and (self.size > 0) != (signed_qty > 0):
            closed = min(abs(signed_qty), abs(self.size))
            direction = 1 if self.size > 0 else -1
            if inst.inverse:
                realised = direction * closed * inst.contract_size * (1 / self.entry - 1 / price)
            else:
                realised = direction * closed * (price - self.entry)
            self.size += closed * (-direction)
            signed_qty += closed * direction
            if self.size == 0:
                self.entry = ZERO
        if signed_qty != 0:
            old = abs(self.size)
            add = abs(signed_qty)
            if old == 0 or self.entry == price:
                self.entry = price
            elif inst.inverse:
                self.entry = (old + add) / (old / self.entry + add / price)
            else:
                self.entry = (old * self.entry + add * price) / (old + add)
            self.size += signed_qty
        self.realised += realised
        self.cum_realised += realised
        return realised, closed


@dataclass
class Account:
    """An API key's unified account: coin wallet balances and positions keyed by instrument."""

    api_key: str
    secret: str = field(repr=False)  # never in logs or reprs
    leverage: Decimal = Decimal(10)
    wallet: dict[str, Decimal] = field(default_factory=dict)
    cum_realised: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[tuple[Category, str], Position] = field(default_factory=dict)
    # Per-instrument settings where they differ from the account default (`leverage`, cross margin):
    # what set-leverage / switch-isolated (Bybit) and leverage / marginType (Binance) change.
    leverages: dict[tuple[Category, str], Decimal] = field(default_factory=dict)
    margin_modes: dict[tuple[Category, str], str] = field(default_factory=dict)
    hedge_mode: bool = False  # two-way positions; the engine trades one-way only and refuses orders then

    def credit(self, coin: str, delta: Decimal) -> None:
        self.wallet[coin] = self.wallet.get(coin, ZERO) + delta

    def position(self, inst: Instrument) -> Position:
        pos = self.positions.get(inst.key)
        if pos is None:
            pos = Position(inst)
            self.positions[inst.key] = pos
        return pos
