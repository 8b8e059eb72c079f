"""Engine objects rendered in Bybit v5 JSON shapes (checked against ccxt's recorded real responses).

Numbers are strings, as Bybit sends them; empty strings where Bybit leaves a field blank.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hedged.sim.accounts import Account, Position
from hedged.sim.engine import Engine
from hedged.sim.instruments import ZERO, Category, Instrument
from hedged.sim.orders import Execution, Order

PLACES = Decimal("1e-12")


def fmt(d: Decimal | None) -> str:
    """Plain decimal string, at most 12 places, no exponent, no trailing zeros."""
    if d is None:
        return ""
    q = d.quantize(PLACES) if d.as_tuple().exponent < -12 else d  # type: ignore[operator]
    s = format(q.normalize(), "f")
    return "0" if s in ("-0", "") else s


def instrument_info(inst: Instrument) -> dict[str, Any]:
    if inst.category is Category.SPOT:
        return {
            "symbol": inst.id, "baseCoin": inst.base, "quoteCoin": inst.quote, "innovation": "0",
            "status": "Trading", "marginTrading": "none",
            "lotSizeFilter": {
                "basePrecision": fmt(inst.qty_step), "quotePrecision": "0.00000001",
                "minOrderQty": fmt(inst.min_qty), "maxOrderQty": fmt(inst.max_qty),
                "minOrderAmt": "1", "maxOrderAmt": "100000000",
            },
            "priceFilter": {"tickSize": fmt(inst.tick)},
            "riskParameters": {"limitParameter": "0.05", "marketParameter": "0.05"},
        }
    # ccxt takes an inverse contract's size from minOrderQty: report the contract size there.
    min_qty = inst.contract_size if inst.inverse else inst.min_qty
    return {
        "symbol": inst.id,
        "contractType": "InversePerpetual" if inst.inverse else "LinearPerpetual",
        "status": "Trading", "baseCoin": inst.base, "quoteCoin": inst.quote,
        "launchTime": "1585526400000", "deliveryTime": "0", "deliveryFeeRate": "",
        "priceScale": str(max(0, -inst.tick.normalize().as_tuple().exponent)),  # type: ignore[operator]
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": fmt(inst.tick), "maxPrice": "1999999.00", "tickSize": fmt(inst.tick)},
        "lotSizeFilter": {
            "maxOrderQty": fmt(inst.max_qty), "minOrderQty": fmt(min_qty), "qtyStep": fmt(inst.qty_step),
            "postOnlyMaxOrderQty": fmt(inst.max_qty), "maxMktOrderQty": fmt(inst.max_qty),
            "minNotionalValue": "5" if not inst.inverse else "0",
        },
        "unifiedMarginTrade": True,
        "fundingInterval": inst.funding_interval_s // 60,
        "settleCoin": inst.settle,
        "copyTrading": "none", "upperFundingRate": "0.00375", "lowerFundingRate": "-0.00375",
        "isPreListing": False, "preListingInfo": None,
        "takerFee": fmt(inst.taker_fee), "makerFee": fmt(inst.maker_fee),
    }


def ticker(engine: Engine, inst: Instrument, ws: bool = False) -> dict[str, Any]:
    p = fmt(inst.price)
    t: dict[str, Any] = {
        "symbol": inst.id,
        "bid1Price": fmt(inst.bid), "bid1Size": fmt(inst.level_qty(inst.bid)),
        "ask1Price": fmt(inst.ask), "ask1Size": fmt(inst.level_qty(inst.ask)),
        "lastPrice": p, "prevPrice24h": p, "price24hPcnt": "0", "highPrice24h": p, "lowPrice24h": p,
        "turnover24h": fmt(inst.turnover_24h), "volume24h": fmt(inst.volume_24h),
    }
    index = engine.index[inst.base]
    if inst.is_contract:
        oi = engine.open_interest(inst)
        t.update({
            "indexPrice": fmt(index), "markPrice": p, "prevPrice1h": p,
            "openInterest": fmt(oi), "openInterestValue": fmt(inst.value(oi, inst.price) if inst.inverse
                                                              else oi * inst.price),
            "fundingRate": fmt(inst.funding_rate), "nextFundingTime": str(inst.next_funding_ms),
            "predictedDeliveryPrice": "", "basisRate": "", "deliveryFeeRate": "", "deliveryTime": "0",
            "basis": "",
        })
    else:
        t["usdIndexPrice"] = fmt(index)
    return t


def order(o: Order, with_category: bool = False) -> dict[str, Any]:
    inst = o.instrument
    avg = o.avg_price
    d: dict[str, Any] = {
        "orderId": o.order_id, "orderLinkId": o.client_id, "blockTradeId": "", "symbol": inst.id,
        "price": fmt(o.price) if o.price is not None else "0", "qty": fmt(o.qty), "side": o.side,
        "isLeverage": "" if inst.is_contract else "0", "positionIdx": 0, "orderStatus": o.status,
        "cancelType": o.cancel_type, "rejectReason": o.reject_reason,
        "avgPrice": fmt(avg) if avg is not None else ("" if inst.is_contract else "0"),
        "leavesQty": fmt(o.remaining if o.is_open else ZERO),
        "leavesValue": fmt(inst.value(o.remaining, o.price) if o.is_open and o.price is not None else ZERO),
        "cumExecQty": fmt(o.filled), "cumExecValue": fmt(o.cum_value), "cumExecFee": fmt(o.cum_fee),
        "cumFeeDetail": {o.fee_coin: fmt(o.cum_fee)} if o.cum_fee else {},
        "timeInForce": o.time_in_force, "orderType": o.order_type, "stopOrderType": "",
        "orderIv": "", "triggerPrice": "", "takeProfit": "", "stopLoss": "", "tpTriggerBy": "",
        "slTriggerBy": "", "triggerDirection": 0, "triggerBy": "", "lastPriceOnCreated": fmt(o.price_on_created),
        "reduceOnly": o.reduce_only, "closeOnTrigger": False, "smpType": "None", "smpGroup": 0,
        "smpOrderId": "", "tpLimitPrice": "0", "slLimitPrice": "0", "placeType": "",
        "marketUnit": "", "createdTime": str(o.created_ms), "updatedTime": str(o.updated_ms),
    }
    if inst.is_contract:
        d["tpslMode"] = ""  # its presence tells ccxt the order is a contract order
        d["createType"] = "CreateByUser"
    if with_category:
        d["category"] = inst.category.value
    return d


def execution(ex: Execution, with_category: bool = False) -> dict[str, Any]:
    inst = ex.instrument
    d: dict[str, Any] = {
        "symbol": inst.id, "orderType": ex.order_type, "underlyingPrice": "", "orderLinkId": ex.client_id,
        "orderId": ex.order_id, "stopOrderType": "UNKNOWN" if inst.is_contract else "",
        "execTime": str(ex.time_ms), "feeCurrency": ex.fee_coin if not inst.is_contract else "",
        "feeRate": fmt(ex.fee_rate), "tradeIv": "", "blockTradeId": "",
        "markPrice": fmt(ex.mark_price) if inst.is_contract else "", "execPrice": fmt(ex.price),
        "markIv": "", "orderQty": fmt(ex.order_qty), "orderPrice": fmt(ex.order_price),
        "execValue": fmt(ex.value), "closedSize": fmt(ex.closed_size) if inst.is_contract else "",
        "execType": ex.exec_type, "seq": ex.seq, "side": ex.side,
        "indexPrice": fmt(ex.index_price) if inst.is_contract else "", "leavesQty": fmt(ex.leaves_qty),
        "isMaker": ex.is_maker, "execFee": fmt(ex.fee), "execId": ex.exec_id,
        "marketUnit": "", "execQty": fmt(ex.qty),
    }
    if inst.is_contract:
        d["createType"] = "CreateByUser" if ex.exec_type == "Trade" else ""
    if with_category:
        d["category"] = inst.category.value
    return d


def position(engine: Engine, acct: Account, pos: Position, with_category: bool = False) -> dict[str, Any]:
    inst = pos.instrument
    mark = inst.price
    has = pos.size != 0
    value = pos.value(mark) if has else ZERO
    lev = engine.leverage_of(acct, inst)
    im = value / lev
    mm = value * engine.mmr
    liq = engine.liquidation_price(acct, pos) if has else None
    d: dict[str, Any] = {
        "positionIdx": 0, "riskId": 1, "riskLimitValue": "2000000", "symbol": inst.id,
        "side": ("Buy" if pos.size > 0 else "Sell") if has else "",
        "size": fmt(abs(pos.size)), "avgPrice": fmt(pos.entry) if has else "0",
        "positionValue": fmt(value) if has else "",
        "tradeMode": 1 if engine.margin_mode_of(acct, inst) == "isolated" else 0, "autoAddMargin": 0,
        "positionStatus": "Normal", "leverage": fmt(lev),
        "markPrice": fmt(mark), "liqPrice": fmt(liq) if liq is not None else "", "bustPrice": "",
        "positionIM": fmt(im), "positionMM": fmt(mm), "positionBalance": fmt(im),
        "takeProfit": "", "stopLoss": "", "trailingStop": "0", "sessionAvgPrice": "",
        "unrealisedPnl": fmt(pos.upnl(mark)) if has else "", "curRealisedPnl": fmt(pos.realised),
        "cumRealisedPnl": fmt(pos.cum_realised), "adlRankIndicator": 2 if has else 0,
        "createdTime": str(pos.created_ms or engine.start_ms), "updatedTime": str(pos.updated_ms or engine.start_ms),
        "seq": pos.seq, "isReduceOnly": False, "mmrSysUpdatedTime": "", "leverageSysUpdatedTime": "",
        "tpslMode": "Full",
    }
    if with_category:
        d["category"] = inst.category.value
    return d


def usd_price(engine: Engine, coin: str) -> Decimal:
    if coin in engine.index:
        return engine.index[coin]
    return Decimal(1)


def wallet(engine: Engine, acct: Account) -> dict[str, Any]:
    coins = sorted(set(acct.wallet) | {Engine._settle_coin(p.instrument) for p in acct.positions.values()})
    rows = []
    tot_wallet = tot_equity = tot_upnl = tot_im = tot_mm = tot_avail = ZERO
    for c in coins:
        s = engine.coin_summary(acct, c)
        px = usd_price(engine, c)
        tot_wallet += s.wallet * px
        tot_equity += s.equity * px
        tot_upnl += s.upnl * px
        tot_im += (s.position_im + s.order_im) * px
        tot_mm += s.position_mm * px
        tot_avail += s.available * px
        rows.append({
            "coin": c, "equity": fmt(s.equity), "usdValue": fmt(s.equity * px), "walletBalance": fmt(s.wallet),
            "availableToWithdraw": "", "availableToBorrow": "", "borrowAmount": "0", "accruedInterest": "0",
            "totalOrderIM": fmt(s.order_im), "totalPositionIM": fmt(s.position_im),
            "totalPositionMM": fmt(s.position_mm), "unrealisedPnl": fmt(s.upnl),
            "cumRealisedPnl": fmt(acct.cum_realised.get(c, ZERO)), "bonus": "0", "collateralSwitch": True,
            "marginCollateral": True, "locked": fmt(s.locked), "spotHedgingQty": "0",
        })
    return {
        "totalEquity": fmt(tot_equity), "accountIMRate": fmt(tot_im / tot_equity) if tot_equity else "0",
        "totalMarginBalance": fmt(tot_equity), "totalInitialMargin": fmt(tot_im), "accountType": "UNIFIED",
        "totalAvailableBalance": fmt(tot_avail), "accountMMRate": fmt(tot_mm / tot_equity) if tot_equity else "0",
        "totalPerpUPL": fmt(tot_upnl), "totalWalletBalance": fmt(tot_wallet), "accountLTV": "0",
        "totalMaintenanceMargin": fmt(tot_mm), "coin": rows,
    }


def orderbook(engine: Engine, inst: Instrument, depth: int) -> dict[str, Any]:
    """The synthetic book around the touch, as /v5/market/orderbook and the `orderbook` topic carry it."""
    n = min(depth, inst.levels)
    bids = [inst.bid - inst.tick * i for i in range(n)]
    asks = [inst.ask + inst.tick * i for i in range(n)]
    now = engine.now_ms()
    return {
        "s": inst.id, "ts": now, "u": engine.seq, "seq": engine.seq, "cts": now,
        "b": [[fmt(p), fmt(inst.level_qty(p))] for p in bids if p > 0],
        "a": [[fmt(p), fmt(inst.level_qty(p))] for p in asks],
    }


def public_trade(ex: Execution) -> dict[str, Any]:
    """An execution as the `publicTrade` topic shows it: the taker's side, no account."""
    taker_side = ex.side if not ex.is_maker else ("Sell" if ex.side.lower() == "buy" else "Buy")
    return {"T": ex.time_ms, "s": ex.instrument.id, "S": taker_side, "v": fmt(ex.qty), "p": fmt(ex.price),
            "L": "ZeroPlusTick", "i": ex.exec_id, "BT": False}
