"""Leverage, margin mode and position mode of each hedge instrument, set once at start through ccxt.

The standard advice for a hedge is 1x and isolated margin (the short cannot drag the rest of the account
into liquidation) in one-way position mode (the keeper reads one signed position per instrument). At start,
after reconciliation, the keeper reads what the exchange has, works out what differs (`changes`, pure) and
sets it: position mode one-way, then margin mode, then leverage (both venues refuse a margin-mode switch
made after the leverage in some states, and Bybit's switch-isolated carries the leverage anyway).

Never while our orders are open on the instrument: then nothing is changed and a warning says so. When the
exchange refuses, a critical alert is raised and the instrument is refused trading (`Keeper.cycle` blocks
it with an `account_settings` reason) until a restart finds the settings right.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from ccxt.base import errors as cx

from hedged.config import Config
from hedged.errors import VenueError
from hedged.log import get_logger
from hedged.outage import describe_outage

if TYPE_CHECKING:
    from hedged.keeper import Keeper
    from hedged.venue import CcxtVenue

log = get_logger("hedged.leverage")
Change = Literal["position_mode", "margin_mode", "leverage"]


@dataclass(frozen=True, slots=True)
class Wanted:
    leverage: Decimal | None
    margin_mode: str | None


@dataclass(frozen=True, slots=True)
class Current:
    """What the exchange reports; None = it does not say."""

    leverage: Decimal | None
    margin_mode: str | None
    hedge_mode: bool | None


def wanted(config: Config) -> dict[tuple[str, str], Wanted]:
    """Per (venue, instrument): the hedge's own setting, else its venue's; entries without any are left out."""
    out: dict[tuple[str, str], Wanted] = {}
    for h in config.hedge:
        v = config.venues[h.venue]
        w = Wanted(h.leverage if h.leverage is not None else v.leverage,
                   h.margin_mode if h.margin_mode is not None else v.margin_mode)
        key = (h.venue, h.instrument)
        if key in out or (w.leverage is None and w.margin_mode is None):
            continue
        out[key] = w
    return out


def changes(want: Wanted, now: Current) -> list[Change]:
    """What to set, in the order to set it. Pure."""
    out: list[Change] = []
    if now.hedge_mode:
        out.append("position_mode")
    if want.margin_mode is not None and now.margin_mode != want.margin_mode:
        out.append("margin_mode")
    if want.leverage is not None and now.leverage != want.leverage:
        out.append("leverage")
    return out


async def read_current(venue: CcxtVenue, symbol: str) -> Current:
    ex = venue.exchange
    if venue.profile.bybit_batching:
        m = venue.market(symbol)
        cat = "inverse" if m.get("inverse") else "linear"
        raw = await ex.privateGetV5PositionList({"category": cat, "symbol": m["id"]})
        rows = raw.get("result", {}).get("list") or [{}]
        info = await ex.privateGetV5AccountInfo()
        account_mode = info.get("result", {}).get("marginMode")
        lev = rows[0].get("leverage")
        return Current(Decimal(str(lev)) if lev not in (None, "") else None,
                       "isolated" if account_mode == "ISOLATED_MARGIN" else "cross",
                       any(str(r.get("positionIdx", "0")) not in ("0", "") for r in rows))
    got: Mapping[str, Any] = await ex.fetch_leverage(symbol)
    lev = got.get("longLeverage")
    mode = await ex.fetch_position_mode(symbol) if ex.has.get("fetchPositionMode") else {}
    return Current(Decimal(str(lev)) if lev is not None else None, got.get("marginMode"), mode.get("hedged"))


def _number(d: Decimal) -> int | float:
    """Leverage as ccxt should send it: Binance takes integers only ("1", not "1.0")."""
    return int(d) if d == d.to_integral_value() else float(d)


async def apply(venue: CcxtVenue, symbol: str, want: Wanted, todo: list[Change]) -> None:
    ex = venue.exchange
    for step in todo:
        if step == "position_mode":
            await ex.set_position_mode(False, symbol)
        elif step == "margin_mode":
            # bybit's per-symbol switch carries the leverage; binance's marginType takes none
            carry = want.leverage is not None and venue.profile.bybit_batching
            params = {"leverage": _number(want.leverage)} if carry and want.leverage is not None else {}
            with contextlib.suppress(cx.MarginModeAlreadySet):
                await ex.set_margin_mode(want.margin_mode, symbol, params)
        else:
            assert want.leverage is not None
            await ex.set_leverage(_number(want.leverage), symbol)


async def apply_account_settings(keeper: Keeper) -> dict[tuple[str, str], str]:
    """Set what differs on every configured instrument; return the refused ones with why (blocks trading)."""
    refused: dict[tuple[str, str], str] = {}
    keeper.store.allow_keys(("changed", "leverage", "margin_mode"))  # this module's audit payload keys
    open_by_key = {(r.venue, r.symbol) for r in await keeper.store.open_orders()}
    for (name, symbol), want in wanted(keeper.config).items():
        venue = keeper.venues[name]
        data = {"venue": name, "symbol": symbol, "leverage": str(want.leverage), "margin_mode": want.margin_mode}
        try:
            current = await read_current(venue, symbol)
            todo = changes(want, current)
            if not todo:
                continue
            if (name, symbol) in open_by_key:
                await keeper.hub.event("account_settings", "warning",
                                       f"{name} {symbol}: {', '.join(todo)} not changed: our orders are open",
                                       data, keeper.clock())
                continue
            await apply(venue, symbol, want, todo)
            after = await read_current(venue, symbol)
        except (cx.BaseError, VenueError, OSError) as exc:
            why = f"the exchange refused the account settings: {describe_outage(exc)}"
            refused[(name, symbol)] = why
            await keeper.hub.event("account_settings", "critical", f"{name} {symbol}: {why}; not trading it",
                                   data, keeper.clock())
            continue
        left = changes(want, after)
        if left:
            why = f"{', '.join(left)} still differ after setting them"
            refused[(name, symbol)] = why
            await keeper.hub.event("account_settings", "critical", f"{name} {symbol}: {why}; not trading it",
                                   data, keeper.clock())
            continue
        log.info("account_settings.set", venue=name, symbol=symbol, changed=todo,
                 leverage=str(after.leverage), margin_mode=after.margin_mode)
        await keeper.store.append("account_settings", {"changed": list(todo), "leverage": str(after.leverage),
                                                       "margin_mode": after.margin_mode}, venue=name, symbol=symbol)
    return refused
