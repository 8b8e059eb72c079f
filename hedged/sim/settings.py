"""The emulator's own TOML configuration (pydantic). Errors name the key path, one line each.

Shape (all keys optional; see docs/emulator.md):

    seed = 1
    clock = "real"            # "real" | "manual"
    speed = 1.0               # exchange seconds per wall second (real clock)
    [assets.BTC]
    price = 65000
    path = { kind = "gbm", volatility = 0.6, seed = 7 }
    [[instruments]]
    symbol = "BTC/USD:BTC"
    tick = 0.5
    [[accounts]]
    api_key = "demo-key"
    secret = "demo-secret"
    balances = { BTC = 10 }
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hedged.sim.instruments import Category, parse_symbol


class EmulatorConfigError(Exception):
    """An unusable emulator config; `problems` holds one line per problem, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PathSettings(_Model):
    kind: Literal["fixed", "steps", "gbm", "csv"] = "fixed"
    steps: list[tuple[float, Decimal]] = Field(default_factory=list)
    repeat: bool = False
    volatility: float = Field(0.6, ge=0)
    drift: float = 0.0
    jumps_per_day: float = Field(0.0, ge=0)
    jump_mean: float = 0.0
    jump_stdev: float = Field(0.05, ge=0)
    seed: int | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _complete(self) -> PathSettings:
        if self.kind == "steps" and not self.steps:
            raise ValueError("kind 'steps' needs steps = [[seconds, price], ...]")
        if self.kind == "csv" and self.file is None:
            raise ValueError("kind 'csv' needs file = 'prices.csv'")
        return self


class AssetSettings(_Model):
    price: Decimal = Field(gt=0)
    path: PathSettings = Field(default_factory=PathSettings)


class InstrumentSettings(_Model):
    symbol: str
    tick: Decimal = Field(Decimal("0.01"), gt=0)
    qty_step: Decimal | None = Field(None, gt=0)
    min_qty: Decimal | None = Field(None, gt=0)
    max_qty: Decimal = Field(Decimal("100000000"), gt=0)
    contract_size: Decimal = Field(Decimal(1), gt=0)
    maker_fee: Decimal | None = None
    taker_fee: Decimal | None = None
    spread_ticks: int = Field(1, ge=1)
    depth_usd: Decimal = Field(Decimal(2_000_000), gt=0)
    levels: int = Field(25, ge=1)
    funding_rate: Decimal = Decimal("0.0001")
    funding_interval_hours: float = Field(8.0, gt=0)

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str) -> str:
        parse_symbol(v)
        return v

    @property
    def category(self) -> Category:
        return parse_symbol(self.symbol)[3]

    @model_validator(mode="after")
    def _sizes(self) -> InstrumentSettings:
        if self.category is not Category.INVERSE and self.contract_size != 1:
            raise ValueError("contract_size applies to inverse instruments only (linear size is in base coin)")
        return self


class AccountSettings(_Model):
    api_key: str = Field(min_length=1)
    secret: str = Field(min_length=1)
    balances: dict[str, Decimal] = Field(default_factory=dict)
    # Binance keeps spot coins in a wallet of their own: what the spot front (/api/v3) sees.
    spot_balances: dict[str, Decimal] = Field(default_factory=dict)
    leverage: Decimal = Field(Decimal(10), gt=0)


class FaultSettings(_Model):
    """One fault rule; see hedged.sim.faults for the meaning of each field."""

    kind: Literal["latency", "hang", "http_5xx", "http_429", "drop_reply", "post_only_reject", "partial_fill"]
    endpoint: str = "*"
    rate: float = Field(0.0, ge=0, le=1)
    calls: list[int] = Field(default_factory=list)
    count: int | None = Field(None, ge=0)
    latency_ms: int = Field(200, ge=0)
    hang_s: float = Field(60.0, ge=0)
    status: int = Field(503, ge=500, le=599)
    fill_ratio: Decimal = Field(Decimal("0.5"), gt=0, lt=1)


class RateLimitSettings(_Model):
    requests: int = Field(0, ge=0)  # 0 disables the limit
    per_seconds: float = Field(1.0, gt=0)


class EmulatorSettings(_Model):
    seed: int = 0
    clock: Literal["real", "manual"] = "real"
    speed: float = Field(1.0, gt=0)
    tick_seconds: float = Field(0.2, gt=0)
    recv_window_max_ms: int = Field(60_000, gt=0)
    taker_flow_usd_per_s: Decimal = Field(Decimal(250_000), ge=0)
    maintenance_margin_rate: Decimal = Field(Decimal("0.005"), ge=0, lt=1)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    # Binance front: request weight per client per minute before 429 (then 418); 0 disables it
    weight_limit_1m: int = Field(6000, ge=0)
    assets: dict[str, AssetSettings] = Field(default_factory=dict)
    instruments: list[InstrumentSettings] = Field(default_factory=list)
    accounts: list[AccountSettings] = Field(default_factory=list)
    faults: list[FaultSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> EmulatorSettings:
        seen: set[str] = set()
        for inst in self.instruments:
            base = parse_symbol(inst.symbol)[0]
            if base not in self.assets:
                raise ValueError(f"instrument {inst.symbol}: no [assets.{base}] price")
            if inst.symbol in seen:
                raise ValueError(f"instrument {inst.symbol} listed twice")
            seen.add(inst.symbol)
        keys = [a.api_key for a in self.accounts]
        if len(keys) != len(set(keys)):
            raise ValueError("two accounts share one api_key")
        return self


def default_settings(**overrides: Any) -> EmulatorSettings:
    """The built-in exchange of `hedged emulator` without --config (and of the demo)."""
    data: dict[str, Any] = {
        "assets": {
            "BTC": {"price": Decimal(65000)},
            "ETH": {"price": Decimal(3000)},
            "SOL": {"price": Decimal(150)},
        },
        "instruments": [
            {"symbol": "BTC/USD:BTC", "tick": Decimal("0.5"), "qty_step": Decimal(1), "contract_size": Decimal(1)},
            {"symbol": "ETH/USD:ETH", "tick": Decimal("0.05"), "qty_step": Decimal(1), "contract_size": Decimal(1)},
            {"symbol": "BTC/USDT:USDT", "tick": Decimal("0.1"), "qty_step": Decimal("0.001")},
            {"symbol": "ETH/USDT:USDT", "tick": Decimal("0.01"), "qty_step": Decimal("0.01")},
            {"symbol": "BTC/USDT", "tick": Decimal("0.01"), "qty_step": Decimal("0.000001")},
            {"symbol": "ETH/USDT", "tick": Decimal("0.01"), "qty_step": Decimal("0.00001")},
            {"symbol": "SOL/USDT", "tick": Decimal("0.01"), "qty_step": Decimal("0.001")},
        ],
        "accounts": [
            {
                "api_key": "demo-key",
                "secret": "demo-secret",
                "balances": {
                    "BTC": Decimal(10),
                    "ETH": Decimal(100),
                    "SOL": Decimal(1000),
                    "USDT": Decimal(1_000_000),
                },
            }
        ],
    }
    data.update(overrides)
    return parse_settings(data)


def binance_settings(**overrides: Any) -> EmulatorSettings:
    """The built-in Binance exchange (`hedged emulator --exchange binance`): spot pairs, and COIN-M
    perpetuals with Binance's contract sizes (BTCUSD_PERP 100 USD, ETHUSD_PERP 10 USD). The demo account
    has coins in both its COIN-M wallet (collateral) and its spot wallet."""
    coins = {"BTC": Decimal(10), "ETH": Decimal(100)}
    data: dict[str, Any] = {
        "assets": {"BTC": {"price": Decimal(65000)}, "ETH": {"price": Decimal(3000)}, "SOL": {"price": Decimal(150)}},
        "instruments": [
            {"symbol": "BTC/USD:BTC", "tick": Decimal("0.1"), "qty_step": Decimal(1), "contract_size": Decimal(100),
             "taker_fee": Decimal("0.0005"), "maker_fee": Decimal("0.0001")},
            {"symbol": "ETH/USD:ETH", "tick": Decimal("0.01"), "qty_step": Decimal(1), "contract_size": Decimal(10),
             "taker_fee": Decimal("0.0005"), "maker_fee": Decimal("0.0001")},
            {"symbol": "BTC/USDT", "tick": Decimal("0.01"), "qty_step": Decimal("0.00001")},
            {"symbol": "ETH/USDT", "tick": Decimal("0.01"), "qty_step": Decimal("0.0001")},
            {"symbol": "SOL/USDT", "tick": Decimal("0.01"), "qty_step": Decimal("0.001")},
        ],
        "accounts": [{"api_key": "demo-key", "secret": "demo-secret", "balances": dict(coins),
                      "spot_balances": {**coins, "SOL": Decimal(1000), "USDT": Decimal(1_000_000)}}],
    }
    data.update(overrides)
    return parse_settings(data)


def _problems(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return lines


def parse_settings(data: dict[str, Any]) -> EmulatorSettings:
    try:
        return EmulatorSettings.model_validate(data)
    except ValidationError as exc:
        raise EmulatorConfigError(_problems(exc)) from None


def load_settings(path: str | Path) -> EmulatorSettings:
    """Read an emulator TOML file; raise EmulatorConfigError with one line per problem."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(), parse_float=Decimal)
    except OSError as exc:
        raise EmulatorConfigError([f"{p}: cannot read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise EmulatorConfigError([f"{p}: not valid TOML: {exc}"]) from None
    settings = parse_settings(data)
    for asset in settings.assets.values():
        if asset.path.file is not None and not asset.path.file.is_absolute():
            asset.path.file = p.parent / asset.path.file
    return settings
