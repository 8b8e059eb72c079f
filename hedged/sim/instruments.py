"""Instruments the local exchange lists: spot pairs, linear perps (size in base coin) and inverse perps
(size in contracts of `contract_size` USD), with the rounding rules a real venue enforces."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from enum import StrEnum

D = Decimal
ZERO = D(0)
ONE = D(1)

SYMBOL_RE = re.compile(r"^([A-Z0-9]+)/([A-Z0-9]+)(?::([A-Z0-9]+))?$")


class Category(StrEnum):
    """Bybit v5 `category`: the three market families we emulate."""

    SPOT = "spot"
    LINEAR = "linear"
    INVERSE = "inverse"


def parse_symbol(symbol: str) -> tuple[str, str, str | None, Category]:
    """`BTC/USD:BTC` → (base, quote, settle, category); the settle coin decides linear vs inverse."""
    m = SYMBOL_RE.match(symbol)
    if not m:
        raise ValueError(f"not a ccxt symbol like BTC/USDT or BTC/USD:BTC: {symbol!r}")
    base, quote, settle = m.group(1), m.group(2), m.group(3)
    if settle is None:
        return base, quote, None, Category.SPOT
    if settle == base:
        return base, quote, settle, Category.INVERSE
    if settle == quote:
        return base, quote, settle, Category.LINEAR
    raise ValueError(f"settle coin must be the base (inverse) or the quote (linear): {symbol!r}")


def quantize(value: Decimal, step: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    """Round `value` to a multiple of `step` (ticks and lots are not always powers of ten)."""
    return (value / step).to_integral_value(rounding=rounding) * step


@dataclass
class Instrument:
    """One tradable market. `price` is its own (mark = last) price; `basis` ties it to the coin's index."""

    symbol: str
    base: str
    quote: str
    settle: str | None
    category: Category
    tick: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    contract_size: Decimal
    maker_fee: Decimal
    taker_fee: Decimal
    spread_ticks: int
    depth_usd: Decimal
    levels: int
    funding_rate: Decimal
    funding_interval_s: int
    price: Decimal = ZERO
    basis: Decimal = ZERO
    next_funding_ms: int = 0
    volume_24h: Decimal = ZERO
    turnover_24h: Decimal = ZERO
    open_interest: Decimal = ZERO
    flow_credit: dict[str, Decimal] = field(default_factory=lambda: {"Buy": ZERO, "Sell": ZERO})

    @property
    def id(self) -> str:
        """Bybit's symbol id: BTCUSDT for spot and linear, BTCUSD for inverse."""
        return self.base + self.quote

    @property
    def key(self) -> tuple[Category, str]:
        return (self.category, self.id)

    @property
    def is_contract(self) -> bool:
        return self.category is not Category.SPOT

    @property
    def inverse(self) -> bool:
        return self.category is Category.INVERSE

    def round_price(self, price: Decimal) -> Decimal:
        return quantize(price, self.tick)

    @property
    def bid(self) -> Decimal:
        """Best bid of the synthetic book: `spread_ticks` below the price, on the tick grid."""
        return quantize(self.price - self.tick * self.spread_ticks, self.tick, ROUND_FLOOR)

    @property
    def ask(self) -> Decimal:
        return quantize(self.price + self.tick * self.spread_ticks, self.tick, ROUND_CEILING)

    def usd_per_unit(self, price: Decimal) -> Decimal:
        """USD notional of one unit of order quantity at `price` (quote coins count as 1 USD)."""
        return self.contract_size if self.inverse else price

    def value(self, qty: Decimal, price: Decimal) -> Decimal:
        """Value of `qty` at `price` in the coin that carries it: base coin for inverse, quote otherwise."""
        if self.inverse:
            return qty * self.contract_size / price
        return qty * price

    def level_qty(self, price: Decimal) -> Decimal:
        """Quantity resting at one synthetic book level (depth is configured in USD)."""
        q = quantize(self.depth_usd / self.usd_per_unit(price), self.qty_step, ROUND_FLOOR)
        return max(q, self.qty_step)

    def floor_qty(self, qty: Decimal) -> Decimal:
        return quantize(qty, self.qty_step, ROUND_FLOOR)
