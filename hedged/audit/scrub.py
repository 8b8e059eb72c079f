"""Keep secrets out of the audit log.

Why: the database is copied, exported and shown in dashboards; an API key in it is a leaked key.
Payloads pass through an allow-list of key names (anything else is dropped, its name noted under
`_dropped` unless the name itself looks secret), ccxt's raw `info` blobs are always dropped, and any
string containing a registered secret value, or a `key=value` pair that names a secret, is redacted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hedged.audit.chain import JsonValue

REDACTED = "[redacted]"
DROPPED = "_dropped"

# Key names whose value may be stored (ours and ccxt's unified order/trade/position fields).
# Data-like keys (asset codes, symbols) are also allowed, below.
ALLOWED_KEYS = frozenset(
    """
    account action active age alert amount approved ask asset attempt average balance balances band basis
    beta bid by client_order_id closed code collateral command confirmed contract_size contracts cost count
    currency cut cycle datetime decision denied detail details drift elapsed entry_price error error_type
    exchange exchange_order_id exposure fee fee_currency fees filled fills free funding_rate hedge host
    http_status id index inflight instrument intent intents interval kind last latency_ms level leverage
    limit limits liquidation_price lost margin mark market message metric mode monitor name next note
    notional notional_usd open order_id orders origin pid position positions post_only previous price prices
    ratio reason reasons reduce_only remaining reprice reprices requested retries retry rule sandbox
    schedule seconds severity shadow side since size snapshot source sources spread state status symbol
    target threshold time_in_force timestamp total trade_id trades ts type unrealized_pnl until used user
    value version venue via wanted order request reply response result trade ticker
    clientOrderId lastTradeTimestamp timeInForce reduceOnly postOnly triggerPrice stopPrice takerOrMaker
    markPrice indexPrice fundingRate contractSize unrealizedPnl liquidationPrice entryPrice marginMode
    percentage data keeper venues cycles attempts failures permanent healthy_cycles quiet heartbeat pruned
    checkpoint first_id last_id last_hash before rows replay_id suppressed
    """.split()  # noqa: SIM905 (a word list reads better than 130 quoted strings)
)
ALWAYS_DROPPED = frozenset({"info"})  # ccxt's raw exchange reply: unbounded and may echo credentials
_SECRET_NAME = re.compile(
    r"(key|secret|passw|passphrase|token|sign|auth|cookie|credential|private|session|uid)", re.IGNORECASE
)
_DATA_KEY = re.compile(r"^[A-Z0-9]{1,20}(/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?)?$")
_SECRET_PAIR = re.compile(
    r"""((?:api[_-]?key|apikey|secret|signature|sign|password|passphrase|token|x-bapi-api-key|x-bapi-sign)"""
    r"""["']?\s*[:=]\s*["']?)([^&\s"',;}]+)""",
    re.IGNORECASE,
)
MIN_SECRET_LEN = 6


class Scrubber:
    """Applies the allow-list and redacts registered secret values; one per store."""

    def __init__(self, extra_keys: Iterable[str] = (), secrets: Iterable[str] = ()) -> None:
        self.allowed = set(ALLOWED_KEYS) | set(extra_keys)
        self._secrets: set[str] = set()
        self.register_secrets(secrets)

    def register_secrets(self, values: Iterable[str]) -> None:
        for value in values:
            if value and len(value) >= MIN_SECRET_LEN:
                self._secrets.add(value)

    def allow(self, keys: Iterable[str]) -> None:
        self.allowed.update(keys)

    def key_allowed(self, key: str) -> bool:
        if key in ALWAYS_DROPPED or self._is_secret(key):
            return False
        if key in self.allowed:
            return True
        return not _SECRET_NAME.search(key) and bool(_DATA_KEY.match(key))

    def _is_secret(self, text: str) -> bool:
        return any(s in text for s in self._secrets)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return _SECRET_PAIR.sub(lambda m: m.group(1) + REDACTED, value)

    def scrub(self, value: JsonValue) -> JsonValue:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        if isinstance(value, dict):
            out: dict[str, JsonValue] = {}
            dropped: list[JsonValue] = []
            for key, v in value.items():
                if key == DROPPED:
                    continue
                if self.key_allowed(key):
                    out[key] = self.scrub(v)
                elif not (_SECRET_NAME.search(key) or self._is_secret(key)) and len(key) <= 40:
                    dropped.append(key)
                else:
                    dropped.append(REDACTED)
            if dropped:
                out[DROPPED] = sorted(dropped, key=str)
            return out
        return value
