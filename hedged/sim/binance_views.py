"""Engine objects rendered in Binance JSON shapes: spot /api/v3 and COIN-M /dapi/v1 (checked against
ccxt's recorded real responses and parsers).

Binance ids differ from Bybit's: spot BTCUSDT, COIN-M perpetual BTCUSD_PERP. Numbers are strings, times
integers in ms, order ids integers, as Binance sends them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hedged.sim.accounts import Account, Position
from hedged.sim.engine import Engine
from hedged.sim.instruments import ZERO, Category, Instrument
from hedged.sim.orders import Execution, Order
from hedged.sim.views import fmt

# Binance's statuses for the engine's (Bybit-vocabulary) ones.
STATUS = {"New": "NEW", "PartiallyFilled": "PARTIALLY_FILLED", "Filled": "FILLED", "Cancelled": "CANCELED",
          "PartiallyFilledCanceled": "CANCELED", "Rejected": "REJECTED"}
TIF = {"GTC": "GTC", "PostOnly": "GTX", "IOC": "IOC", "FOK": "FOK"}


def symbol_id(inst: Instrument) -> str:
    """BTCUSDT for spot, BTCUSD_PERP for a COIN-M perpetual."""
    return inst.base + inst.quote + ("_PERP" if inst.inverse else "")


def decimals(step: Decimal) -> int:
    exp = step.normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


def numeric_id(engine_id: str) -> int:
    """Binance order and trade ids are integers: a stable 53-bit number from the engine's UUID."""
    return int(engine_id.replace("-", "")[:13], 16)


def exchange_info(engine: Engine, insts: list[Instrument], coinm: bool) -> dict[str, Any]:
    now = engine.now_ms()
    limits = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400 if coinm else 6000},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    ]
    return {"timezone": "UTC", "serverTime": now, "rateLimits": limits, "exchangeFilters": [],
            "symbols": [contract_info(i) if coinm else spot_info(i) for i in insts]}


def spot_info(inst: Instrument) -> dict[str, Any]:
    return {
        "symbol": symbol_id(inst), "status": "TRADING", "baseAsset": inst.base, "baseAssetPrecision": 8,
        "quoteAsset": inst.quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True, "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(inst.tick), "maxPrice": "1000000.00000000",
             "tickSize": fmt(inst.tick)},
            {"filterType": "LOT_SIZE", "minQty": fmt(inst.min_qty), "maxQty": fmt(inst.max_qty),
             "stepSize": fmt(inst.qty_step)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0", "maxQty": fmt(inst.max_qty), "stepSize": "0"},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def contract_info(inst: Instrument) -> dict[str, Any]:
    return {
        "symbol": symbol_id(inst), "pair": inst.base + inst.quote, "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000, "onboardDate": 1597042800000, "contractStatus": "TRADING",
        "contractSize": int(inst.contract_size) if inst.contract_size == int(inst.contract_size)
        else float(inst.contract_size),
        "marginAsset": inst.base, "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
        "baseAsset": inst.base, "quoteAsset": inst.quote, "pricePrecision": decimals(inst.tick),
        "quantityPrecision": decimals(inst.qty_step), "baseAssetPrecision": 8, "quotePrecision": 8,
        "equalQtyPrecision": 4, "maxMoveOrderLimit": 10000, "triggerProtect": "0.0500",
        "underlyingType": "COIN", "underlyingSubType": [], "liquidationFee": "0.015000",
        "marketTakeBound": "0.05",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(inst.tick), "maxPrice": "4520958",
             "tickSize": fmt(inst.tick)},
            {"filterType": "LOT_SIZE", "minQty": fmt(inst.min_qty), "maxQty": fmt(inst.max_qty),
             "stepSize": fmt(inst.qty_step)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": fmt(inst.min_qty), "maxQty": fmt(inst.max_qty),
             "stepSize": fmt(inst.qty_step)},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
             "multiplierDecimal": 4},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                       "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def ticker_24h(engine: Engine, inst: Instrument) -> dict[str, Any]:
    p = fmt(inst.price)
    now = engine.now_ms()
    t: dict[str, Any] = {
        "symbol": symbol_id(inst), "priceChange": "0", "priceChangePercent": "0", "weightedAvgPrice": p,
        "lastPrice": p, "lastQty": "1", "openPrice": p, "highPrice": p, "lowPrice": p,
        "openTime": now - 86_400_000, "closeTime": now, "firstId": 1, "lastId": max(1, len(engine.executions)),
        "count": len(engine.executions),
    }
    if inst.inverse:
        t["pair"] = inst.base + inst.quote
        t["volume"] = fmt(inst.volume_24h)
        t["baseVolume"] = fmt(inst.turnover_24h)
    else:
        t.update({"prevClosePrice": p, "bidPrice": fmt(inst.bid), "bidQty": fmt(inst.level_qty(inst.bid)),
                  "askPrice": fmt(inst.ask), "askQty": fmt(inst.level_qty(inst.ask)),
                  "volume": fmt(inst.volume_24h), "quoteVolume": fmt(inst.turnover_24h)})
    return t


def book_ticker(engine: Engine, inst: Instrument) -> dict[str, Any]:
    t: dict[str, Any] = {"symbol": symbol_id(inst), "bidPrice": fmt(inst.bid), "bidQty": fmt(inst.level_qty(inst.bid)),
                         "askPrice": fmt(inst.ask), "askQty": fmt(inst.level_qty(inst.ask))}
    if inst.inverse:
        t = {"symbol": t["symbol"], "pair": inst.base + inst.quote, **{k: v for k, v in t.items() if k != "symbol"},
             "time": engine.now_ms()}
    return t


def premium_index(engine: Engine, inst: Instrument) -> dict[str, Any]:
    return {
        "symbol": symbol_id(inst), "pair": inst.base + inst.quote, "markPrice": fmt(inst.price),
        "indexPrice": fmt(engine.index[inst.base]), "estimatedSettlePrice": fmt(engine.index[inst.base]),
        "lastFundingRate": fmt(inst.funding_rate), "interestRate": "0.00010000",
        "nextFundingTime": inst.next_funding_ms, "time": engine.now_ms(),
    }


def depth(engine: Engine, inst: Instrument, limit: int) -> dict[str, Any]:
    n = min(limit, inst.levels)
    bids = [inst.bid - inst.tick * i for i in range(n)]
    asks = [inst.ask + inst.tick * i for i in range(n)]
    d: dict[str, Any] = {"lastUpdateId": engine.seq}
    if inst.inverse:
        now = engine.now_ms()
        d.update({"E": now, "T": now, "symbol": symbol_id(inst), "pair": inst.base + inst.quote})
    d["bids"] = [[fmt(p), fmt(inst.level_qty(p))] for p in bids if p > 0]
    d["asks"] = [[fmt(p), fmt(inst.level_qty(p))] for p in asks]
    return d


def _type(o: Order) -> str:
    if o.order_type == "Market":
        return "MARKET"
    if o.time_in_force == "PostOnly" and not o.instrument.is_contract:
        return "LIMIT_MAKER"
    return "LIMIT"


def order(o: Order, *, fills: list[Execution] | None = None, orig_client_id: str | None = None) -> dict[str, Any]:
    inst = o.instrument
    status = STATUS.get(o.status, "NEW")
    if o.status == "Cancelled" and o.reject_reason == "EC_CancelForNoFullFill":
        status = "EXPIRED"
    price = fmt(o.price) if o.price is not None else "0"
    if inst.is_contract:
        avg = o.avg_price
        d: dict[str, Any] = {
            "orderId": numeric_id(o.order_id), "symbol": symbol_id(inst), "pair": inst.base + inst.quote,
            "status": status, "clientOrderId": o.client_id, "price": price,
            "avgPrice": fmt(avg) if avg is not None else "0.0", "origQty": fmt(o.qty), "executedQty": fmt(o.filled),
            "cumQty": fmt(o.filled), "cumBase": fmt(o.cum_value), "timeInForce": TIF.get(o.time_in_force, "GTC"),
            "type": _type(o), "reduceOnly": o.reduce_only, "closePosition": False, "side": o.side.upper(),
            "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE", "priceProtect": False,
            "origType": _type(o), "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER",
            "time": o.created_ms, "updateTime": o.updated_ms,
        }
    else:
        d = {
            "symbol": symbol_id(inst), "orderId": numeric_id(o.order_id), "orderListId": -1,
            "clientOrderId": o.client_id, "price": price, "origQty": fmt(o.qty), "executedQty": fmt(o.filled),
            "cummulativeQuoteQty": fmt(o.cum_value), "status": status,
            "timeInForce": "GTC" if o.time_in_force == "PostOnly" else TIF.get(o.time_in_force, "GTC"),
            "type": _type(o), "side": o.side.upper(), "stopPrice": "0.00000000", "icebergQty": "0.00000000",
            "time": o.created_ms, "updateTime": o.updated_ms, "isWorking": True, "workingTime": o.created_ms,
            "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER",
        }
    if orig_client_id is not None:
        d["origClientOrderId"] = orig_client_id
    if fills is not None:
        d["transactTime"] = o.updated_ms
        d.pop("time", None)
        d.pop("updateTime", None)
        d.pop("isWorking", None)
        d["fills"] = [{"price": fmt(e.price), "qty": fmt(e.qty), "commission": fmt(e.fee),
                       "commissionAsset": e.fee_coin, "tradeId": numeric_id(e.exec_id)} for e in fills]
    return d


def trade(ex: Execution) -> dict[str, Any]:
    inst = ex.instrument
    if inst.is_contract:
        return {
            "symbol": symbol_id(inst), "id": numeric_id(ex.exec_id), "orderId": numeric_id(ex.order_id),
            "pair": inst.base + inst.quote, "side": ex.side.upper(), "price": fmt(ex.price), "qty": fmt(ex.qty),
            "realizedPnl": "0", "marginAsset": inst.base, "baseQty": fmt(ex.value), "commission": fmt(ex.fee),
            "commissionAsset": ex.fee_coin, "time": ex.time_ms, "positionSide": "BOTH",
            "buyer": ex.side == "Buy", "maker": ex.is_maker,
        }
    return {
        "symbol": symbol_id(inst), "id": numeric_id(ex.exec_id), "orderId": numeric_id(ex.order_id),
        "orderListId": -1, "price": fmt(ex.price), "qty": fmt(ex.qty), "quoteQty": fmt(ex.value),
        "commission": fmt(ex.fee), "commissionAsset": ex.fee_coin, "time": ex.time_ms,
        "isBuyer": ex.side == "Buy", "isMaker": ex.is_maker, "isBestMatch": True,
    }


def spot_account(engine: Engine, acct: Account) -> dict[str, Any]:
    coins = sorted(acct.wallet)
    balances = []
    for c in coins:
        s = engine.coin_summary(acct, c)
        balances.append({"asset": c, "free": fmt(s.wallet - s.locked), "locked": fmt(s.locked)})
    return {
        "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
        "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                            "seller": "0.00000000"},
        "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
        "requireSelfTradePrevention": False, "preventSor": False, "updateTime": engine.now_ms(),
        "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"], "uid": 1,
    }


def coinm_assets(engine: Engine, acct: Account) -> list[dict[str, Any]]:
    coins = sorted(set(acct.wallet) | {p.instrument.base for p in acct.positions.values()})
    out = []
    for c in coins:
        s = engine.coin_summary(acct, c)
        out.append({
            "asset": c, "walletBalance": fmt(s.wallet), "unrealizedProfit": fmt(s.upnl),
            "marginBalance": fmt(s.equity), "maintMargin": fmt(s.position_mm),
            "initialMargin": fmt(s.position_im + s.order_im), "positionInitialMargin": fmt(s.position_im),
            "openOrderInitialMargin": fmt(s.order_im), "maxWithdrawAmount": fmt(max(s.available, ZERO)),
            "crossWalletBalance": fmt(s.wallet), "crossUnPnl": fmt(s.upnl),
            "availableBalance": fmt(max(s.available, ZERO)), "updateTime": engine.now_ms(),
        })
    return out


def coinm_account(engine: Engine, acct: Account) -> dict[str, Any]:
    positions = []
    for inst in engine.instruments_in(Category.INVERSE.value):
        pos = acct.positions.get(inst.key) or Position(inst)
        value = pos.value(inst.price) if pos.size else ZERO
        lev = engine.leverage_of(acct, inst)
        positions.append({
            "symbol": symbol_id(inst), "positionAmt": fmt(pos.size), "initialMargin": fmt(value / lev),
            "maintMargin": fmt(value * engine.mmr), "unrealizedProfit": fmt(pos.upnl(inst.price)),
            "positionInitialMargin": fmt(value / lev), "openOrderInitialMargin": "0", "leverage": fmt(lev),
            "isolated": engine.margin_mode_of(acct, inst) == "isolated", "positionSide": "BOTH",
            "entryPrice": fmt(pos.entry) if pos.size else "0.0", "breakEvenPrice": "0.0", "maxQty": "1000000",
            "updateTime": pos.updated_ms,
        })
    return {"assets": coinm_assets(engine, acct), "positions": positions, "canDeposit": True, "canTrade": True,
            "canWithdraw": True, "feeTier": 0, "updateTime": 0}


def coinm_balance(engine: Engine, acct: Account) -> list[dict[str, Any]]:
    return [{"accountAlias": "SgsR", "asset": a["asset"], "balance": a["walletBalance"],
             "withdrawAvailable": a["maxWithdrawAmount"], "crossWalletBalance": a["crossWalletBalance"],
             "crossUnPnl": a["crossUnPnl"], "availableBalance": a["availableBalance"], "updateTime": a["updateTime"]}
            for a in coinm_assets(engine, acct)]


def position_risk(engine: Engine, acct: Account, inst: Instrument) -> dict[str, Any]:
    pos = acct.positions.get(inst.key) or Position(inst)
    has = pos.size != 0
    liq = engine.liquidation_price(acct, pos) if has else None
    value = pos.value(inst.price) if has else ZERO
    isolated = engine.margin_mode_of(acct, inst) == "isolated"
    return {
        "symbol": symbol_id(inst), "positionAmt": fmt(pos.size), "entryPrice": fmt(pos.entry) if has else "0.0",
        "breakEvenPrice": fmt(pos.entry) if has else "0.0", "markPrice": fmt(inst.price),
        "unRealizedProfit": fmt(pos.upnl(inst.price)), "liquidationPrice": fmt(liq) if liq is not None else "0",
        "leverage": fmt(engine.leverage_of(acct, inst)), "maxQty": "1000000",
        "marginType": "isolated" if isolated else "cross",
        "isolatedMargin": fmt(engine.isolated_margin(acct, pos)) if isolated and has else "0.00000000",
        "isAutoAddMargin": "false", "positionSide": "BOTH", "notionalValue": fmt(-value if pos.size < 0 else value),
        "isolatedWallet": fmt(engine.isolated_margin(acct, pos)) if isolated and has else "0",
        "updateTime": pos.updated_ms,
    }


def leverage_bracket(engine: Engine, inst: Instrument) -> dict[str, Any]:
    mmr = float(engine.mmr)
    return {"symbol": symbol_id(inst), "brackets": [
        {"bracket": 1, "initialLeverage": 125, "qtyCap": 1_000_000, "qtyFloor": 0, "maintMarginRatio": mmr, "cum": 0.0},
    ]}
