"""The TOML configuration, read into frozen pydantic models.

Every problem is reported as one line naming the key path and what was expected, so that
`hedged config check` can print them all at once. Secrets never live in the file: only the names of
environment variables or files that hold them.
"""

from __future__ import annotations

import math
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

NAME_RE = r"^[a-z0-9-]{1,16}$"  # never `_`: it ends the client-id prefix `<name>_` (planner.client_prefix)
SYMBOL_RE = re.compile(r"^([A-Z0-9]+)/([A-Z0-9]+):([A-Z0-9]+)$")
# Keys that would carry a secret inline; refused wherever they appear.
INLINE_SECRET_KEYS = frozenset(
    {"api_key", "apikey", "apiKey", "key", "secret", "api_secret", "password", "passphrase", "token",
     "private_key", "privateKey", "uid"}
)


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- strict field types ------------------------------------------------------------------------------
# Why: pydantic's lax mode reads `interval = true` as 1 s and `until = 5` as 1970-01-01T00:00:05Z, and a
# typo must never change what the keeper does. Numbers are TOML numbers (never booleans or strings, never
# inf/nan), booleans are TOML booleans, times are RFC 3339 with an offset, strings hold no NUL byte.

def _shown(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, int | float | Decimal):
        return str(v)
    return f"a {type(v).__name__}"


def _number(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int | float | Decimal):
        raise ValueError(f"expected a number, got {_shown(v)}")
    if not (v.is_finite() if isinstance(v, Decimal) else math.isfinite(v)):
        raise ValueError(f"expected a finite number, got {v}")
    return v


def _integer(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"expected a whole number, got {_shown(v)}")
    return v


def _boolean(v: Any) -> Any:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {_shown(v)}")
    return v


def _text(v: Any) -> Any:
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {_shown(v)}")
    if "\x00" in v:
        raise ValueError("NUL byte in string")
    return v


Num = Annotated[float, BeforeValidator(_number)]
Int = Annotated[int, BeforeValidator(_integer)]
Dec = Annotated[Decimal, BeforeValidator(_number)]
Bool = Annotated[bool, BeforeValidator(_boolean)]
Text = Annotated[str, BeforeValidator(_text)]
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
# exchanges the local exchange (hedged/sim) speaks: the only ones a REST `url` override may point at
LOCAL_EXCHANGES = frozenset({"bybit", "binance", "binancecoinm"})


VENUE_SECRET_KEYS = "api_key_env/secret_env (environment variable names) or api_key_file/secret_file"


def _no_inline_secrets(data: Any, where: str, instead: str = VENUE_SECRET_KEYS) -> None:
    if not isinstance(data, Mapping):
        return
    found = sorted(k for k in data if k in INLINE_SECRET_KEYS)
    if found:
        raise ValueError(f"inline secret {where}{found[0]!r} refused: use {instead}")


class KeeperConfig(_Model):
    name: Annotated[Text, Field(pattern=NAME_RE)] = "main"
    interval: Annotated[Num, Field(gt=0, le=86400)] = 10.0
    mode: Literal["live", "shadow"] = "live"
    kill_file: Text = ""
    # where account locks live (one file per exchange + key); empty: $HEDGED_LOCK_DIR, $XDG_RUNTIME_DIR/hedged, …
    lock_dir: Text = ""
    max_failures: Annotated[Int, Field(ge=1)] = 5
    keep_orders_on_exit: Bool = False
    markets_refresh: Annotated[Num, Field(gt=0)] = 3600.0
    # Seconds to keep retrying an unreachable exchange at start before exiting (exit 4); 0 = forever.
    start_timeout: Annotated[Num, Field(ge=0)] = 0.0
    # Healthy cycles in a row after which a breaker tripped by transient errors resumes trading by itself.
    resume_after: Annotated[Int, Field(ge=1)] = 3
    resync: Annotated[Num, Field(gt=0)] = 60.0  # seconds between REST resyncs of a streamed venue
    wake_spacing: Annotated[Num, Field(ge=0, le=60)] = 0.1  # least seconds between stream-woken cycles
    # Seconds between searches of each venue's open orders and trades for another keeper trading as us (our
    # client-id prefix on an order or trade our store never wrote): that halts. hedged/foreign.py.
    foreign_check: Annotated[Num, Field(gt=0, le=86400)] = 60.0


class VenueConfig(_Model):
    exchange: Annotated[Text, Field(pattern=r"^[a-z0-9]+$")]
    sandbox: Bool = False
    url: Text = ""
    api_key_env: Text = ""
    secret_env: Text = ""
    password_env: Text = ""
    api_key_file: Text = ""
    secret_file: Text = ""
    password_file: Text = ""
    options: dict[str, Any] = Field(default_factory=dict)
    timeout: Annotated[Num, Field(gt=0)] = 10.0
    demo: Bool = False  # ccxt enable_demo_trading: Bybit's / Binance's demo trading (not their testnets)
    # Set at start on every hedge instrument of this venue when they differ (a hedge may override):
    # the standard advice is 1x and isolated, so the short cannot drag the account into liquidation.
    leverage: Annotated[Dec | None, Field(ge=1, le=125)] = None
    margin_mode: Literal["isolated", "cross"] | None = None
    # ccxt.pro streams feed the cycle between REST resyncs (docs/streaming.md); unset: on where supported
    # (hedged.venue.streams_on: Bybit and Binance COIN-M), explicit false: polling only
    stream: Bool | None = None
    stream_heartbeat: Annotated[Num, Field(gt=0, le=300)] = 20.0  # a stream silent this long is dead

    @model_validator(mode="after")
    def _one_environment(self) -> VenueConfig:
        if self.sandbox and self.demo:
            raise ValueError("sandbox and demo: choose one (sandbox = the exchange's testnet, demo = its demo "
                             "trading; their keys differ)")
        return self

    # Inline secret keys at the top of the table are unknown keys, reworded by _problems (so the venue's
    # other fields are still checked in the same run); inside `options` they are refused here.
    @field_validator("options", mode="before")
    @classmethod
    def _refuse_inline(cls, data: Any) -> Any:
        _no_inline_secrets(data, "options.")
        return data

    @field_validator("exchange")
    @classmethod
    def _known_exchange(cls, v: str) -> str:
        from hedged.exchange_ids import unknown_exchange

        problem = unknown_exchange(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not re.match(r"^https?://[^\s]+$", v):
            raise ValueError("expected an http(s) URL such as http://127.0.0.1:8080")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _url_only_local(self) -> VenueConfig:
        if self.url and self.exchange not in LOCAL_EXCHANGES:
            raise ValueError(f"url: a REST override is only for the local exchange's protocols "
                             f"({', '.join(sorted(LOCAL_EXCHANGES))}), not exchange {self.exchange!r}")
        return self

    def credentials(self, base: Path | None = None) -> dict[str, SecretStr]:
        """Read the secrets named by this venue; raise ConfigError naming the field, never the value."""
        out: dict[str, SecretStr] = {}
        for field, env_key, file_key in (
            ("apiKey", "api_key_env", "api_key_file"),
            ("secret", "secret_env", "secret_file"),
            ("password", "password_env", "password_file"),
        ):
            value = read_secret(env_key, getattr(self, env_key), file_key, getattr(self, file_key), base)
            if value is not None:
                out[field] = value
        return out


def read_secret(env_key: str, env_name: str, file_key: str, file_name: str, base: Path | None) -> SecretStr | None:
    """A secret from the environment variable or file the config names (None if it names neither)."""
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise ConfigError([f"{env_key}: environment variable {env_name} is not set"])
        return SecretStr(value)
    if file_name:
        path = Path(file_name)
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            mode = path.stat().st_mode
            value = path.read_text().strip()
        except OSError as exc:
            raise ConfigError([f"{file_key}: cannot read {path}: {exc.strerror}"]) from None
        except (UnicodeDecodeError, ValueError):
            raise ConfigError([f"{file_key}: {path} is not UTF-8 text"]) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            # as ssh does for private keys: say so (once per read), but do not refuse
            from hedged.log import get_logger

            get_logger("hedged.config").warning(
                "config.secret_file_readable", field=file_key, path=str(path), mode=oct(mode & 0o777),
                hint=f"chmod 600 {path}")
        return SecretStr(value)
    return None


class HedgeConfig(_Model):
    asset: Annotated[Text, Field(pattern=r"^[A-Z0-9]{1,20}$")]
    venue: Text
    instrument: Text
    ratio: Annotated[Dec, Field(ge=0)] = Decimal(1)
    sources: list[Text] = Field(default_factory=list)
    off_exchange: Annotated[Dec, Field(ge=0)] = Decimal(0)
    include_collateral: Bool = True
    beta: Annotated[Dec, Field(gt=0)] = Decimal(1)
    price_symbol: Text = ""
    band: Annotated[Dec, Field(ge=0, le=1)] = Decimal("0.01")
    min_band_usd: Annotated[Dec, Field(ge=0)] = Decimal(50)
    until: datetime | None = None
    leverage: Annotated[Dec | None, Field(ge=1, le=125)] = None  # overrides the venue's
    margin_mode: Literal["isolated", "cross"] | None = None  # overrides the venue's

    @field_validator("until", mode="before")
    @classmethod
    def _until(cls, v: Any) -> Any:
        """RFC 3339 with an offset only: a bare number would be a 1970 time that unwinds the hedge."""
        expected = "expected an RFC 3339 time with a UTC offset, e.g. 2026-12-31T00:00:00Z"
        if v == "" or v is None:
            return None
        if isinstance(v, str):
            if not RFC3339.match(v):
                raise ValueError(expected)
            try:
                return datetime.fromisoformat(v.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise ValueError(expected) from None
        if type(v) is datetime and v.tzinfo is not None:  # a TOML offset date-time
            return v
        raise ValueError(f"{expected} (got {_shown(v)})")

    @field_validator("instrument")
    @classmethod
    def _instrument(cls, v: str) -> str:
        if not SYMBOL_RE.match(v):
            raise ValueError("expected a ccxt perpetual symbol BASE/QUOTE:SETTLE, e.g. BTC/USD:BTC")
        return v

    @property
    def instrument_base(self) -> str:
        m = SYMBOL_RE.match(self.instrument)
        assert m is not None
        return m.group(1)

    @property
    def counted_venues(self) -> tuple[str, ...]:
        """Venues whose balance of `asset` counts: sources, plus the perp venue with collateral; once each."""
        names = list(dict.fromkeys(self.sources))
        if self.include_collateral and self.venue not in names:
            names.append(self.venue)
        return tuple(names)


class LimitsConfig(_Model):
    max_ratio: Annotated[Dec, Field(ge=0, le=2)] = Decimal("1.05")
    max_order_usd: Annotated[Dec, Field(gt=0)] = Decimal(100000)
    max_position_usd: Annotated[Dec, Field(gt=0)] = Decimal(5000000)
    max_orders_per_hour: Annotated[Int, Field(ge=0)] = 60
    max_daily_turnover_usd: Annotated[Dec, Field(ge=0)] = Decimal(2000000)
    max_price_deviation_bps: Annotated[Dec, Field(gt=0)] = Decimal(50)
    max_data_age: Annotated[Dec, Field(gt=0)] = Decimal(30)
    max_price_jump_bps: Annotated[Dec, Field(gt=0)] = Decimal(1500)


class ExecutionConfig(_Model):
    post_only: Bool = True
    offset_ticks: Int = 0
    order_timeout: Annotated[Num, Field(gt=0)] = 30.0
    max_reprices: Annotated[Int, Field(ge=0)] = 10
    escalate: Bool = False
    max_slippage_bps: Annotated[Dec, Field(gt=0)] = Decimal(20)


class AuditConfig(_Model):
    url: Text = "sqlite:///hedged.db"
    auto_upgrade: Bool = True
    # Longest wait for one audit write (SQLite busy lock, Postgres lock/command) before it fails loudly.
    write_timeout: Annotated[Num, Field(gt=0, le=60)] = 5.0
    # Seconds between heartbeat rows of an instrument whose cycles change nothing (docs/audit.md).
    quiet_every: Annotated[Num, Field(ge=0)] = 600.0
    # Prune rows older than this many days at start and once a day (0 = keep everything).
    retain_days: Annotated[Num, Field(ge=0)] = 0.0
    # Where the chain head (HASH:COUNT, for `audit verify`) is written after every commit, outside the store;
    # empty: `<db file>.head` beside SQLite, none for Postgres (set one there). docs/audit.md.
    head_file: Text = ""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        # exactly the URLs the store opens (hedged.audit.store.async_url): its drivers, nothing else
        if not re.match(r"^(sqlite(\+aiosqlite)?|postgres|postgresql(\+asyncpg)?)://", v):
            raise ValueError("expected sqlite:///PATH or postgresql://USER@HOST/DB (drivers: aiosqlite, asyncpg)")
        return v


class MqttConfig(_Model):
    enabled: Bool = False
    host: Text = "127.0.0.1"
    port: Annotated[Int, Field(ge=1, le=65535)] = 1883
    prefix: Annotated[Text, Field(pattern=r"^[A-Za-z0-9_/-]+$")] = "hedged"
    keepalive: Annotated[Int, Field(ge=1, le=65535)] = 30
    tls: Bool = False
    ca_file: Text = ""
    username: Text = ""
    password_env: Text = ""
    password_file: Text = ""
    homeassistant: Bool = False
    discovery_prefix: Text = "homeassistant"
    commands: Bool = False
    command_secret_env: Text = ""
    queue_size: Annotated[Int, Field(ge=1)] = 1000

    def password(self, base: Path | None = None) -> SecretStr | None:
        return read_secret("password_env", self.password_env, "password_file", self.password_file, base)

    def command_secret(self) -> SecretStr | None:
        """The HMAC secret for commands (None when commands are off)."""
        if not self.commands:
            return None
        return read_secret("command_secret_env", self.command_secret_env, "", "", None)

    @model_validator(mode="after")
    def _commands_need_secret(self) -> MqttConfig:
        if self.commands and not self.command_secret_env:
            raise ValueError("commands = true needs command_secret_env (the variable holding the HMAC secret)")
        return self


class MonitorsConfig(_Model):
    funding_apr_warning: Annotated[Dec, Field(ge=0)] = Decimal(30)
    basis_bps_warning: Annotated[Dec, Field(ge=0)] = Decimal(100)
    liquidation_warning_pct: Annotated[Dec, Field(ge=0)] = Decimal(30)
    liquidation_critical_pct: Annotated[Dec, Field(ge=0)] = Decimal(15)
    leverage_warning: Annotated[Dec, Field(gt=0)] = Decimal(3)
    leverage_critical: Annotated[Dec, Field(gt=0)] = Decimal(5)
    drift_cycles: Annotated[Int, Field(ge=1)] = 6
    cooldown: Annotated[Num, Field(ge=0)] = 3600.0
    worsen_factor: Annotated[Dec, Field(gt=1)] = Decimal("1.5")

    @model_validator(mode="after")
    def _ordered(self) -> MonitorsConfig:
        problems = []
        if self.liquidation_critical_pct > self.liquidation_warning_pct:
            problems.append(f"monitors.liquidation_critical_pct: {self.liquidation_critical_pct} exceeds "
                            f"liquidation_warning_pct {self.liquidation_warning_pct} (critical is the closer one)")
        if self.leverage_critical < self.leverage_warning:
            problems.append(f"monitors.leverage_critical: {self.leverage_critical} is below leverage_warning "
                            f"{self.leverage_warning}")
        if problems:
            raise ValueError("\n".join(problems))
        return self


LISTEN_RE = re.compile(r"^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$")


class MetricsConfig(_Model):
    """`[metrics]`: Prometheus `/metrics` and `/health` on one HTTP port (docs/metrics.md)."""

    enabled: Bool = False
    listen: Text = "127.0.0.1:9464"  # host:port; 0.0.0.0 inside a container, loopback elsewhere

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        m = LISTEN_RE.match(v)
        if not m or int(m.group(3)) > 65535:
            raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9464 (port 0-65535)")
        return v

    @property
    def host(self) -> str:
        m = LISTEN_RE.match(self.listen)
        assert m is not None
        return m.group(1) or m.group(2)

    @property
    def port(self) -> int:
        m = LISTEN_RE.match(self.listen)
        assert m is not None
        return int(m.group(3))


class Config(_Model):
    keeper: KeeperConfig = Field(default_factory=KeeperConfig)
    venues: dict[Annotated[Text, Field(pattern=NAME_RE)], VenueConfig]
    hedge: Annotated[list[HedgeConfig], Field(min_length=1)]
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    monitors: MonitorsConfig = Field(default_factory=MonitorsConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    # Folder of the file this came from; relative paths (SQLite, secret files, kill file) resolve here.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _cross_check(self) -> Config:
        problems = cross_problems(list(self.venues), list(enumerate(self.hedge)), self.limits)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def audit_url(self) -> str:
        """The audit URL with a relative SQLite path resolved against the config file's folder."""
        url = self.audit.url
        m = re.match(r"^(sqlite(?:\+\w+)?):///(.*)$", url)
        if m and m.group(2) and not m.group(2).startswith("/") and m.group(2) != ":memory:":
            return f"{m.group(1)}:///{(self.base_dir / m.group(2)).resolve()}"
        return url

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    @property
    def head_file(self) -> Path | None:
        """`[audit] head_file`, resolved; None: the store's default (beside SQLite, none for Postgres)."""
        return self.resolve(self.audit.head_file) if self.audit.head_file else None


def cross_problems(venues: list[str], hedges: list[tuple[int, HedgeConfig]], limits: LimitsConfig | None) -> list[str]:
    """Problems between sections: each hedge entry against the venues and the limits.

    Takes only the parts that validated on their own, so `config check` reports these in the same run as
    field errors elsewhere (a bad [limits] skips the ratio check; a bad hedge entry skips that entry).
    """
    problems: list[str] = []
    for i, h in hedges:
        where = f"hedge[{i}]"
        if h.venue not in venues:
            problems.append(f"{where}.venue: unknown venue {h.venue!r}, expected one of {sorted(venues)}")
        for j, s in enumerate(h.sources):
            if s not in venues:
                problems.append(f"{where}.sources[{j}]: unknown venue {s!r}, expected one of {sorted(venues)}")
        if limits is not None and h.ratio > limits.max_ratio:
            problems.append(f"{where}.ratio: {h.ratio} exceeds limits.max_ratio {limits.max_ratio}")
        if h.asset != h.instrument_base and not h.price_symbol:
            problems.append(
                f"{where}.price_symbol: required when asset {h.asset} differs from the instrument's "
                f"base {h.instrument_base} (e.g. \"{h.asset}/USDT\")"
            )
    return problems


def _partial_cross(data: Mapping[str, Any]) -> list[str]:
    """cross_problems over whichever of venues, hedge entries and limits are valid by themselves."""
    venues = data.get("venues")
    hedge = data.get("hedge")
    if not isinstance(venues, Mapping) or not isinstance(hedge, list):
        return []
    valid: list[tuple[int, HedgeConfig]] = []
    for i, entry in enumerate(hedge):
        try:
            valid.append((i, HedgeConfig.model_validate(entry)))
        except ValidationError:
            continue
    raw_limits = data.get("limits", {})
    try:  # the ratio check needs only max_ratio: other bad [limits] keys must not hide it
        ratio = {"max_ratio": raw_limits["max_ratio"]} if "max_ratio" in raw_limits else {}
        limits: LimitsConfig | None = LimitsConfig.model_validate(ratio)
    except (ValidationError, TypeError):
        limits = None
    return cross_problems([str(k) for k in venues], valid, limits)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "constrained-", "json-or-python", "lax-")) or part in (
            "[key]",
        ):
            continue
        else:
            out += ("." if out else "") + part
    return out


def _inline_secret(raw: tuple[int | str, ...]) -> str | None:
    """The refusal for an inline secret key in [venues.NAME] or [mqtt] (None for other unknown keys)."""
    key = raw[-1]
    if not isinstance(key, str) or key not in INLINE_SECRET_KEYS:
        return None
    if raw[0] == "venues" and len(raw) == 3:
        return f"inline secret {key!r} refused: use {VENUE_SECRET_KEYS}"
    if raw[0] == "mqtt" and len(raw) == 2:
        return f"inline secret {key!r} refused: use password_env or password_file"
    return None


def _problems(exc: ValidationError) -> list[str]:
    out: list[str] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = _loc(err["loc"])
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if msg.startswith("inline secret options."):
            loc = loc.removesuffix(".options")
        if err["type"] == "extra_forbidden" and (inline := _inline_secret(err["loc"])):
            loc, msg = _loc(err["loc"][:-1]), inline
        elif err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        for line in msg.split("\n"):
            out.append(f"{loc}: {line}" if loc and not line.startswith(("hedge[", loc)) else line)
    return out


def parse_config(data: Mapping[str, Any], base_dir: Path = Path(".")) -> Config:
    """Validate a parsed TOML document; ConfigError lists every problem found in one pass."""
    try:
        return Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        problems = _problems(exc)
        # Config-level cross checks only run when every field is valid; run them here on the valid parts
        problems.extend(p for p in _partial_cross(data) if p not in problems)
        raise ConfigError(problems) from None
    except RecursionError:
        raise ConfigError(["config nested too deeply"]) from None


def loose_secret_files(cfg: Config) -> list[str]:
    """One `warning:` line per secret file the config names that its group or others may read (as ssh says
    of a private key). A warning, not an error: `hedged run` reads such a file too, and a deployment may mean
    it (Docker secrets are mounted 0444; a 0440 file for a `hedged` group); a missing file is run's error."""
    fields = [(f"venues.{name}.{key}", getattr(v, key)) for name, v in cfg.venues.items()
              for key in ("api_key_file", "secret_file", "password_file")]
    fields.append(("mqtt.password_file", cfg.mqtt.password_file))
    out: list[str] = []
    for where, name in fields:
        if not name:
            continue
        path = cfg.resolve(name)
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            out.append(f"warning: {where}: {path} is readable by group or others (mode {mode & 0o777:04o}); "
                       f"run: chmod 600 {path}")
    return out


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raise ConfigError with one line per problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read config file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{p}: not UTF-8 text (byte {exc.start})"]) from None
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{p}: not valid TOML: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{p}: not valid TOML: arrays or tables nested too deeply"]) from None
    return parse_config(data, p.parent.resolve())
