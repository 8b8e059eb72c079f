"""One reprice/escalation rule: the keeper (real ccxt to the local exchange, manual clock) and the simulator
(the same engine without HTTP) run the same scenario and place the very same sequence of orders.

No taker flow, a flat price: a post-only order at the touch never fills; after `order_timeout` the core's
`reprices_due` cancels it and the next cycle re-posts, `max_reprices` times; then `hold_back` sends it as a
marketable limit within `max_slippage_bps` of the mark, which fills. Both sides call the same core functions,
so the sequences (side, size, price, post-only, final status) are identical, not merely alike.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hedged.sim.settings import default_settings
from hedged.simulate.paths import PathSpec
from hedged.simulate.runner import SimOptions, simulate
from tests.keeper.test_order_rules import LIMITS, Clocked
from tests.keeper.test_order_rules import clocked as clocked  # the keeper tests' harness fixture

EXECUTION = {"order_timeout": 30, "max_reprices": 2, "escalate": True, "max_slippage_bps": 20}

Row = tuple[str, Decimal, Decimal, bool, str]  # side, amount, price, post-only, final status


def _status(filled: Decimal, status: str) -> str:
    return "filled" if status == "Filled" else "cancelled" if status in ("Cancelled", "PartiallyFilledCanceled") \
        and filled == 0 else status.lower()


async def test_keeper_and_simulator_reprice_and_escalate_identically(clocked: Any) -> None:
    c: Clocked = await clocked({"taker_flow_usd_per_s": 0}, limits=LIMITS, execution=EXECUTION)
    start = c.now()
    for _ in range(12):  # cycles while the order rests, then it times out on the exchange's clock
        for _ in range(4):
            await c.h.keeper.cycle()
        if any(Decimal(str(o["filled"])) > 0 for o in c.ours()):
            break
        c.step(60)
    keeper_rows: list[Row] = [
        (o["side"].lower(), Decimal(str(o["qty"])), Decimal(str(o["price"])), o["time_in_force"] == "PostOnly",
         _status(Decimal(str(o["filled"])), o["status"])) for o in c.ours()]

    # the simulator on the keeper's own config, the same exchange settings and balances, the price held flat
    settings = default_settings(taker_flow_usd_per_s=0)
    r = simulate(c.h.config, SimOptions(path=PathSpec(kind="flat", days=0.01, step_s=60), funding_rate=None,
                                        exchange=settings, start=start, start_hedged=False, rules=("config",),
                                        journal=True))
    journal = r.scenario("config").venues["sim"].journal
    assert journal is not None
    placed = [(e[2], e[3], e[4], e[5]) for e in journal if e[0] == "place"]
    statuses = [o.status for o in r.scenario("config").orders]
    sim_rows: list[Row] = [(side, amount, price, post_only, status)
                           for (side, amount, price, post_only), status in zip(placed, statuses, strict=True)]

    assert len(keeper_rows) == 3, keeper_rows
    assert [row[4] for row in keeper_rows] == ["cancelled", "cancelled", "filled"]
    assert [row[3] for row in keeper_rows] == [True, True, False]  # the third is the marketable limit
    assert sim_rows == keeper_rows
