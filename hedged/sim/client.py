"""One helper that builds a ccxt bybit client pointed at a base URL (the emulator, or any Bybit v5
compatible endpoint): the same helper the keeper's venue uses when a venue has `url` set.

Options follow the verified ccxt/Bybit facts (docs/emulator.md): every REST URL key and the WS URLs
overridden after sandbox mode, market types spot/linear/inverse only, currencies off, unified account preset (skips the
query-api/account-info probe), rate limiting off.
"""

from __future__ import annotations

from typing import Any

REST_KEYS = ("spot", "futures", "v2", "public", "private")


def _sandboxed(cls: Any, options: dict[str, Any], api_key: str | None, secret: str | None, timeout_ms: int,
               enable_rate_limit: bool, config: dict[str, Any]) -> Any:
    """A ccxt client of class `cls` with these options and credentials (`config` last, over the rest), in
    sandbox mode, not fetching currencies; its URLs are still the venue's."""
    params: dict[str, Any] = {"enableRateLimit": enable_rate_limit, "timeout": timeout_ms, "options": options}
    if api_key is not None:
        params["apiKey"] = api_key
    if secret is not None:
        params["secret"] = secret
    params.update(config)
    client = cls(params)
    client.set_sandbox_mode(True)
    client.has["fetchCurrencies"] = False
    return client


def make_client(
    base_url: str,
    api_key: str | None = None,
    secret: str | None = None,
    *,
    pro: bool = False,
    options: dict[str, Any] | None = None,
    timeout_ms: int = 10_000,
    enable_rate_limit: bool = False,
    **config: Any,
) -> Any:
    """Return `ccxt.async_support.bybit` (or `ccxt.pro.bybit` if `pro`) talking to `base_url`.

    The caller owns the client and must `await client.close()`.
    """
    base = base_url.rstrip("/")
    for bad in ("openapi", "unified/v3", "contract/v3"):
        if bad in base:
            raise ValueError(f"base URL must not contain {bad!r} (ccxt picks its signing scheme by substring)")
    if pro:
        import ccxt.pro as ccxt_mod
    else:
        import ccxt.async_support as ccxt_mod
    opts: dict[str, Any] = {
        "fetchMarkets": {"types": ["spot", "linear", "inverse"]},
        "enableUnifiedMargin": False,
        "enableUnifiedAccount": True,
        "unifiedMarginStatus": 6,
        "adjustForTimeDifference": False,
        "recvWindow": 5000,
    }
    client = _sandboxed(ccxt_mod.bybit, {**opts, **(options or {})}, api_key, secret, timeout_ms, enable_rate_limit,
                        config)
    api = client.urls["api"]
    for k in REST_KEYS:
        api[k] = base
    ws_base = "ws" + base[4:] if base.startswith("http") else base
    api["ws"] = {
        "public": {t: f"{ws_base}/v5/public/{t}" for t in ("spot", "linear", "inverse", "option")},
        "private": {
            "spot": {"unified": f"{ws_base}/v5/private", "nonUnified": f"{ws_base}/v5/private"},
            "contract": f"{ws_base}/v5/private",
            "usdc": f"{ws_base}/v5/private",
            "trade": f"{ws_base}/v5/trade",
        },
    }
    return client


BINANCE_EXCEPTION_FAMILY = {"binance": "spot", "binancecoinm": "inverse"}


def make_binance_client(
    base_url: str,
    api_key: str | None = None,
    secret: str | None = None,
    *,
    exchange_id: str = "binancecoinm",
    pro: bool = False,
    options: dict[str, Any] | None = None,
    timeout_ms: int = 10_000,
    enable_rate_limit: bool = False,
    **config: Any,
) -> Any:
    """Return `ccxt.async_support.binance` (spot) or `.binancecoinm` (COIN-M) talking to `base_url`.

    Sandbox mode first (it keeps ccxt off the /sapi endpoints: currencies, margin pairs), then every URL
    key ccxt uses for spot and COIN-M pointed at `base_url` with Binance's path prefixes. ccxt picks an
    error's exception class by the host name (api./dapi.binance.com); on any other host it only knows the
    generic table, so the table of the real host is merged in: -2019 is InsufficientFunds and -5022 post-only
    OrderNotFillable on COIN-M, exactly as against Binance itself.

    With `pro`, ccxt.pro's class: every WS URL is moved onto `base_url` too, the host's first label becoming
    the path prefix (COIN-M wss://dstream.binance.com/ws → ws://HOST/dstream/ws, hedged/sim/binance_ws.py).
    """
    if pro:
        import ccxt.pro as ccxt_async
    else:
        import ccxt.async_support as ccxt_async

    if exchange_id not in BINANCE_EXCEPTION_FAMILY:
        raise ValueError(f"exchange: expected binance or binancecoinm, got {exchange_id!r}")
    base = base_url.rstrip("/")
    opts: dict[str, Any] = {"adjustForTimeDifference": False, "recvWindow": 5000,
                            "warnOnFetchOpenOrdersWithoutSymbol": False,
                            "fetchMarkets": {"types": ["spot"] if exchange_id == "binance" else ["inverse"]}}
    client = _sandboxed(getattr(ccxt_async, exchange_id), {**opts, **(options or {})}, api_key, secret, timeout_ms,
                        enable_rate_limit, config)
    api = client.urls["api"]
    # every URL key first (USDT-M, options, sapi, ...): whatever ccxt may call stays on `base_url`
    for k, v in list(api.items()):
        if isinstance(v, str):
            path = v.split("://", 1)[-1].split("/", 1)
            api[k] = f"{base}/{path[1]}" if len(path) > 1 else base
    for k in ("public", "private"):
        api[k] = f"{base}/api/v3"
    api["v1"] = f"{base}/api/v1"
    for k in ("dapiPublic", "dapiPrivate"):
        api[k] = f"{base}/dapi/v1"
    api["dapiPrivateV2"] = f"{base}/dapi/v2"
    api["dapiData"] = f"{base}/futures/data"
    ws_base = "ws" + base[4:] if base.startswith("http") else base

    def local_ws(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: local_ws(x) for k, x in v.items()}
        if not isinstance(v, str) or "://" not in v:
            return v
        host, _, path = v.split("://", 1)[1].partition("/")
        return f"{ws_base}/{host.split('.')[0]}/{path}"

    if isinstance(api.get("ws"), dict):
        api["ws"] = local_ws(api["ws"])
    family = client.exceptions.get(BINANCE_EXCEPTION_FAMILY[exchange_id], {})
    client.exceptions = {**client.exceptions,
                         "exact": {**client.exceptions.get("exact", {}), **family.get("exact", {})},
                         "broad": {**client.exceptions.get("broad", {}), **family.get("broad", {})}}
    return client
