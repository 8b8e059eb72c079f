"""Orders and executions as the engine keeps them (Bybit v5 vocabulary, Decimal quantities)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from hedged.sim.instruments import ZERO, Instrument

OPEN_STATUSES = frozenset({"New", "PartiallyFilled"})


@dataclass
class Order:
    """One order; `filled`, `cum_value` and `cum_fee` grow with each execution."""

    order_id: str
    client_id: str
    api_key: str
    instrument: Instrument
    side: str  # "Buy" | "Sell"
    order_type: str  # "Limit" | "Market"
    time_in_force: str  # "GTC" | "PostOnly" | "IOC" | "FOK"
    qty: Decimal
    price: Decimal | None
    reduce_only: bool
    created_ms: int
    updated_ms: int
    status: str = "New"
    filled: Decimal = ZERO
    cum_value: Decimal = ZERO
    cum_fee: Decimal = ZERO
    inv_sum: Decimal = ZERO  # Σ qty/price, for the harmonic average price of inverse fills
    reject_reason: str = "EC_NoError"
    cancel_type: str = "UNKNOWN"
    reserved: Decimal = ZERO  # balance held for this order (spot) or its initial margin (contracts)
    price_on_created: Decimal = ZERO

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    @property
    def sign(self) -> int:
        return 1 if self.side == "Buy" else -1

    @property
    def avg_price(self) -> Decimal | None:
        if self.filled == 0:
            return None
        if self.instrument.inverse:
            return self.filled / self.inv_sum
        return self.cum_value / self.filled

    @property
    def fee_coin(self) -> str:
        inst = self.instrument
        if inst.inverse:
            return inst.base
        if inst.settle is not None:
            return inst.settle
        return inst.base if self.side == "Buy" else inst.quote


@dataclass
class Execution:
    """One fill (execType Trade) or funding settlement (execType Funding)."""

    exec_id: str
    order_id: str
    client_id: str
    api_key: str
    instrument: Instrument
    side: str
    price: Decimal
    qty: Decimal
    value: Decimal
    fee: Decimal
    fee_rate: Decimal
    fee_coin: str
    is_maker: bool
    exec_type: str
    time_ms: int
    mark_price: Decimal
    index_price: Decimal
    order_type: str
    order_price: Decimal
    order_qty: Decimal
    leaves_qty: Decimal
    closed_size: Decimal
    seq: int
    # what closed-pnl and transaction-log answer from: the position's entry before a closing fill, the
    # PnL that fill realised (before fees), and each wallet coin it moved, as it stood afterwards
    entry_price: Decimal = ZERO
    realised: Decimal = ZERO
    balances_after: dict[str, Decimal] = field(default_factory=dict)
