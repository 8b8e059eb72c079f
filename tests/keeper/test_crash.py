"""Crash: kill -9 the real keeper process at random moments, restart it each time, and check that nothing
was sent twice, every exchange order is one of our recorded intents, the audit chain verifies, and the
hedge comes back inside its band.

The exchange runs in this process (the test can read its engine and script its faults); the keeper is
`python -m hedged run --config FILE`, a separate process that really dies. Some kills are aimed between
intent and reply: a fault holds the reply to order creation, and the kill lands once the audit store
shows the order as `intent`/`sent` (or once the request has reached the exchange). The others land after
a uniformly random delay. Everything random comes from one seed, printed with every kill and in every
assertion message: `HEDGED_CRASH_SEED=N pytest tests/keeper/test_crash.py -s` replays a run's choices
(timing on a loaded machine still varies).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import IO, Any

import pytest

from hedged.audit.migrate import upgrade
from hedged.audit.store import OrderStatus
from hedged.config import Config, load_config
from hedged.decide import decide
from hedged.executor import order_status
from hedged.model import TradingState
from hedged.service import opened_venues, raw_snapshot
from hedged.sim.faults import FaultRule
from hedged.sim.server import Emulator
from hedged.sim.settings import binance_settings, default_settings
from hedged.snapshot import parse_snapshot

NAME = "crash"
SYMBOLS = {"BTC": "BTC/USD:BTC", "ETH": "ETH/USD:ETH"}
# how each kill is aimed; shuffled per seed. intent: as soon as the store shows a new order in intent/sent
# (the request may not have left yet); hang: once the create request is at the exchange, which then does
# nothing because the client is gone; late: the exchange holds the request and executes it after the
# keeper died (within ccxt's 5 s receive window), so the restart meets an order it never heard about.
MODES = ["intent", "hang", "late", "intent", "hang", "late", "random", "random", "random", "random"]
assert len(MODES) >= 10  # the brief: at least ten kills per run
# how each order ended on the exchange -> what the store must say once the last keeper stopped
ENDED = {"Filled": "filled", "Cancelled": "cancelled", "PartiallyFilledCanceled": "cancelled", "Rejected": "rejected"}
# ccxt signs bybit requests with a 5 s receive window: past it, nothing a dead keeper sent can still be executed
QUIET_AFTER_KILL = 6.0


# per front of the local exchange: ccxt id of the venue, the create endpoint for faults, how many kills, and
# `stream`: Bybit streams, Binance polls (both explicit, whatever the default: each path keeps a crash case)
FRONTS = {"bybit": ("bybit", "/v5/order/create", 10, True),
          "binance": ("binancecoinm", "POST /dapi/v1/order", 5, False)}


def keeper_toml(url: str, exchange: str = "bybit", stream: bool | None = None) -> str:
    hedges = "".join(f'[[hedge]]\nasset = "{a}"\nvenue = "sim"\ninstrument = "{s}"\n\n' for a, s in SYMBOLS.items())
    return f"""
[keeper]
name = "{NAME}"
interval = 0.2
max_failures = 1000

[venues.sim]
exchange = "{exchange}"
url = "{url}"
api_key_env = "SIM_KEY"
secret_env = "SIM_SECRET"
timeout = 1
{"" if stream is None else f"stream = {str(stream).lower()}"}

{hedges}
[audit]
url = "sqlite:///audit.db"

[limits]
max_order_usd = 10000000
max_position_usd = 100000000
max_daily_turnover_usd = 1000000000
max_orders_per_hour = 100000

[execution]
order_timeout = 3
"""


@dataclass
class Kill:
    n: int
    mode: str
    delay: float  # seconds from spawn to SIGKILL
    aimed: str  # what the kill waited for
    last_event: str  # the newest audit event when the process was dead
    unreplied: list[str] = field(default_factory=list)  # our orders left in intent/sent by this kill

    def __str__(self) -> str:
        left = f" unreplied={','.join(self.unreplied)}" if self.unreplied else ""
        return (f"kill {self.n:>2} {self.mode:<6} at +{self.delay:.3f}s ({self.aimed}); "
                f"last event {self.last_event}{left}")


def read_db(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the keeper's SQLite store the way an outsider would: read-only, query_only, no locks taken."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
    try:
        con.execute("PRAGMA query_only = ON")
        return list(con.execute(sql, args))
    finally:
        con.close()


@pytest.fixture
def keeper_log(tmp_path: Path) -> Iterator[IO[bytes]]:
    with (tmp_path / "keeper.log").open("ab") as f:
        yield f


class Run:
    """One crash run: the exchange, the keeper's config, the record of kills."""

    def __init__(self, emu: Emulator, cfg_path: Path, log: IO[bytes], seed: int) -> None:
        self.emu, self.cfg_path, self.log, self.seed = emu, cfg_path, log, seed
        self.db = cfg_path.parent / "audit.db"
        self.kills: list[Kill] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.submitted: list[str] = []  # every client id that reached the matching engine, duplicates included
        place = emu.engine.place_order

        def recording_place(*args: Any, **kwargs: Any) -> Any:
            self.submitted.append(str(kwargs.get("client_id") or ""))
            return place(*args, **kwargs)

        emu.engine.place_order = recording_place  # type: ignore[method-assign]

    def say(self, line: str) -> None:
        print(f"[crash seed={self.seed}] {line}", flush=True)

    def where(self) -> str:
        return f"seed={self.seed}; kills:\n" + "\n".join(map(str, self.kills)) + f"\nkeeper log: {self.log.name}"

    async def q(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(read_db, self.db, sql, *args)

    async def spawn(self) -> asyncio.subprocess.Process:
        env = {**os.environ, "SIM_KEY": "demo-key", "SIM_SECRET": "demo-secret"}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hedged", "run", "--config", str(self.cfg_path),
            stdin=asyncio.subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env,
        )
        return self.proc

    async def reap(self) -> None:
        """On the way out of a failed test: no keeper left running (it would hold the account lock)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def alive_or_fail(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is not None:
            raise AssertionError(f"keeper exited by itself with {proc.returncode}; {self.where()}")

    async def kill(self, proc: asyncio.subprocess.Process, n: int, mode: str, started: float, aimed: str,
                   before: set[str]) -> Kill:
        await self.alive_or_fail(proc)
        proc.send_signal(signal.SIGKILL)
        delay = time.monotonic() - started
        rc = await proc.wait()
        assert rc == -signal.SIGKILL, f"keeper exit {rc}, not killed; {self.where()}"
        last = await self.q("select id, kind from events order by id desc limit 1")
        left = await self.q("select client_order_id, status from orders where status in ('intent', 'sent')")
        k = Kill(n, mode, delay, aimed, f"#{last[0][0]} {last[0][1]}" if last else "none",
                 [f"{cid}:{st}" for cid, st in left if cid not in before])
        self.kills.append(k)
        self.say(str(k))
        return k

    def nudge(self, rng: random.Random) -> str:
        """Move prices and deposit or withdraw coins, so the restarted keeper has something to do."""
        eng = self.emu.engine
        done = []
        for asset, base in (("BTC", Decimal(65000)), ("ETH", Decimal(3000))):
            price = (base * Decimal(str(round(rng.uniform(0.95, 1.05), 4)))).quantize(Decimal("0.5"))
            eng.set_price(price, asset=asset)
            unit = Decimal(1) if asset == "BTC" else Decimal(20)
            delta = (unit * Decimal(str(round(rng.uniform(-0.4, 1.0), 3)))).quantize(Decimal("0.001"))
            if delta:
                eng.credit("demo-key", asset, delta)
            done.append(f"{asset} {price} {delta:+}")
        return ", ".join(done)

    async def new_unreplied(self, before: set[str]) -> bool:
        rows = await self.q("select client_order_id from orders where status in ('intent', 'sent')")
        return any(r[0] not in before for r in rows)

    @staticmethod
    async def fired(rule: FaultRule) -> bool:
        return rule.fired >= 1

    async def wait_until(self, proc: asyncio.subprocess.Process, check: Callable[[], Awaitable[bool]],
                         limit: float) -> bool:
        end = time.monotonic() + limit
        while time.monotonic() < end:
            await self.alive_or_fail(proc)
            if await check():
                return True
            await asyncio.sleep(0.005)
        return False

    async def converged(self, config: Config) -> tuple[bool, str]:
        """From the exchange, not the keeper's word: none of our orders open, |drift| <= band everywhere."""
        ours = [o for o in self.emu.engine.orders_list()
                if o["status"] in ("New", "PartiallyFilled") and o["client_order_id"].startswith(f"{NAME}_")]
        async with opened_venues(config) as venues:
            raw = await raw_snapshot(venues)
        _, result = decide(config, parse_snapshot(raw), state=TradingState.RUNNING)
        drifts = [(d.plan.symbol, d.plan.drift, d.plan.band) for d in result.decisions]
        ok = not ours and all(abs(drift) <= band for _, drift, band in drifts)
        return ok, f"open={len(ours)} " + " ".join(f"{s} drift={dr:.6f} band={b:.6f}" for s, dr, b in drifts)


# Generous bounds, not deadlines: a restarted keeper (a new Python importing ccxt) took over 10 s to send its
# first order on a loaded 2-core machine, and the aimed kills then "gave up waiting"; every wait below ends
# as soon as its condition holds.
AIM_WAIT = 40.0
CONVERGE_WAIT = 60.0


@pytest.mark.timeout(900)
@pytest.mark.parametrize("front", list(FRONTS))
async def test_kill_9_at_random_moments_never_duplicates_and_converges(
    front: str, tmp_path: Path, keeper_log: IO[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = int(os.environ.get("HEDGED_CRASH_SEED") or random.SystemRandom().randrange(10**6))
    rng = random.Random(seed)
    monkeypatch.setenv("SIM_KEY", "demo-key")
    monkeypatch.setenv("SIM_SECRET", "demo-secret")
    t0 = time.monotonic()
    exchange, create, kills, stream = FRONTS[front]
    flow = Decimal(2_000_000)
    settings = default_settings(speed=1.0, taker_flow_usd_per_s=flow) if front == "bybit" else \
        binance_settings(speed=1.0, taker_flow_usd_per_s=flow, weight_limit_1m=0)
    async with Emulator(settings, exchange=front) as emu:
        cfg_path = tmp_path / "hedged.toml"
        await asyncio.to_thread(cfg_path.write_text, keeper_toml(emu.url, exchange, stream))
        config = load_config(cfg_path)
        await upgrade(config.audit_url)  # so the store can be polled from the first moment
        run = Run(emu, cfg_path, keeper_log, seed)
        try:
            # each aim at least once, then random ones (10 kills on Bybit, 5 on Binance: the suite's budget)
            modes = MODES[:] if kills >= len(MODES) else ["intent", "hang", "late", "random", "random"][:kills]
            rng.shuffle(modes)
            run.say(f"emulator {emu.url}; modes {' '.join(modes)}")

            for n, mode in enumerate(modes, 1):
                run.say(f"round {n}: {run.nudge(rng)}")
                emu.faults.clear()
                rule: FaultRule | None = None
                if mode in ("intent", "hang"):
                    rule = emu.faults.add({"endpoint": create, "kind": "hang", "hang_s": 2.5, "count": 1})
                elif mode == "late":
                    rule = emu.faults.add({"endpoint": create, "kind": "latency", "latency_ms": 4000, "count": 1})
                before = {r[0] for r in await run.q("select client_order_id from orders")}
                proc = await run.spawn()
                started = time.monotonic()
                if mode == "random":
                    delay = rng.uniform(0.3, 4.5)
                    await asyncio.sleep(delay)
                    aimed = f"random {delay:.3f}s"
                elif mode == "intent":
                    hit = await run.wait_until(proc, partial(run.new_unreplied, before), AIM_WAIT)
                    aimed = "new order in intent/sent" if hit else "gave up waiting for an order"
                else:
                    assert rule is not None
                    hit = await run.wait_until(proc, partial(run.fired, rule), AIM_WAIT)
                    aimed = "create request held at the exchange" if hit else "gave up waiting for an order"
                await run.kill(proc, n, mode, started, aimed, before)
            emu.faults.clear()

            # after the last restart the keeper runs until the exchange shows the hedge inside the band
            run.say(f"final: {run.nudge(rng)}")
            proc = await run.spawn()
            started = time.monotonic()
            ok, state = False, ""
            while time.monotonic() - started < CONVERGE_WAIT:
                await asyncio.sleep(0.5)
                await run.alive_or_fail(proc)
                ok, state = await run.converged(config)
                # only believe it once every request of the killed keepers has been executed or has expired
                if ok and time.monotonic() - started >= QUIET_AFTER_KILL:
                    break
            converge_s = time.monotonic() - started
            run.say(f"converged={ok} after {converge_s:.1f}s: {state}")
            proc.send_signal(signal.SIGTERM)
            rc = await asyncio.wait_for(proc.wait(), 15)
            assert ok, f"not inside the band after {converge_s:.1f}s: {state}; {run.where()}"
            assert rc == 0, f"graceful stop exit {rc}; {run.where()}"
        finally:
            await run.reap()

        orders = emu.engine.orders_list()
        ids = [o["client_order_id"] for o in orders]
        store = {r[0]: (r[1], Decimal(r[2])) for r in await run.q("select client_order_id, status, filled from orders")}
        fills: dict[str, Decimal] = {}
        for cid, amount in await run.q("select client_order_id, amount from fills"):
            fills[cid] = fills.get(cid, Decimal(0)) + Decimal(amount)

    # 1. nothing sent twice: each client id reached the matching engine once, and is held once
    twice = [cid for cid, k in Counter(run.submitted).items() if k > 1]
    assert twice == [], f"client ids submitted more than once: {twice}; {run.where()}"
    dupes = [cid for cid, k in Counter(ids).items() if k > 1]
    assert dupes == [], f"duplicate client ids on the exchange: {dupes}; {run.where()}"
    # 2. every order on the exchange is one of our intents, and the store knows how it ended and what filled
    assert ids, run.where()
    unknown = [cid for cid in ids if cid not in store]
    assert unknown == [], f"exchange orders without an intent: {unknown}; {run.where()}"
    wrong = {o["client_order_id"]: (store[o["client_order_id"]], o["status"], o["filled"],
                                    fills.get(o["client_order_id"], Decimal(0)))
             for o in orders
             if (ENDED.get(o["status"]), Decimal(o["filled"])) != store[o["client_order_id"]]
             or Decimal(o["filled"]) != fills.get(o["client_order_id"], Decimal(0))}
    assert wrong == {}, (f"store vs exchange, as (store status, store filled), exchange status, exchange filled, "
                         f"recorded fills: {wrong}; {run.where()}")
    # 3. the chain verifies, by the real command
    verify = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hedged", "audit", "verify", "--config", str(cfg_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await verify.communicate()
    assert verify.returncode == 0, f"audit verify: {out.decode()} {err.decode()}; {run.where()}"
    # 4. the kills were what this test claims
    unreplied = [k for k in run.kills if k.unreplied]
    assert len(run.kills) >= kills
    assert len(unreplied) >= (4 if kills >= 10 else 2), f"only {len(unreplied)} kills between intent and reply; " \
        f"{run.where()}"
    run.say(f"{front}: {len(run.kills)} kills, {len(unreplied)} between intent and reply; {len(ids)} orders on the "
            f"exchange, "
            f"{len(store)} intents in the store; audit verify: {out.decode().strip()}; "
            f"total {time.monotonic() - t0:.1f}s")


async def status(h: Any, client_id: str) -> str:
    rec = await h.store.get_order(client_id)
    assert rec is not None, client_id
    return str(rec.status)


async def test_restart_keeps_a_just_sent_order_until_it_can_no_longer_arrive(harness_factory: Any) -> None:
    """What a keeper killed mid-request leaves: `sent`, not on the exchange yet, but the exchange still holds the
    request. Reconcile must not call it lost (the next plan would send the same drift again); an `intent` never
    left (the executor writes `sent` first), and a `sent` older than lost_after can no longer arrive."""
    h = await harness_factory(hedge=[{"asset": "BTC", "venue": "sim", "instrument": "BTC/USD:BTC"}])
    order = {"venue": "sim", "symbol": "BTC/USD:BTC", "side": "sell", "amount": Decimal(650_000),
             "price": Decimal("65000.5"), "post_only": True, "reason": "drift"}
    await h.store.intent("t1_held-0", **order)
    await h.store.sent("t1_held-0")
    await h.store.intent("t1_never-0", **order)
    await h.keeper.reconcile()
    assert await status(h, "t1_held-0") == "sent"
    assert await status(h, "t1_never-0") == "lost"
    res = await h.keeper.cycle()
    # the unconfirmed sell counts in flight: it covers the whole drift, so nothing more is sent
    assert res.sent == 0 and res.decisions[0].plan.inflight == -10 and res.decisions[0].action == "hold"

    # the held request is executed now, after the restart: the keeper follows it instead of doubling it
    eng = h.emu.engine
    eng.place_order("demo-key", eng.instrument("BTC/USD:BTC"), "Sell", "Limit", Decimal(650_000),
                    Decimal("65000.5"), time_in_force="PostOnly", client_id="t1_held-0")
    for _ in range(60):
        await h.keeper.cycle()
        if await status(h, "t1_held-0") == "filled":
            break
        await asyncio.sleep(0.2)
    assert await status(h, "t1_held-0") == "filled"
    assert [o["client_order_id"] for o in eng.orders_list()] == ["t1_held-0"]

    # a sent order past lost_after that never showed up is lost
    h.keeper.executor.lost_after = 0.2
    await h.store.intent("t1_gone-0", **order)
    await h.store.sent("t1_gone-0")
    await asyncio.sleep(0.3)
    await h.keeper.reconcile()
    assert await status(h, "t1_gone-0") == "lost"


def test_closed_with_less_filled_than_its_amount_is_cancelled() -> None:
    """ccxt reports bybit's PartiallyFilledCanceled as "closed"; the crash run saw the store call such an order
    filled (status filled, filled 440,000 of 513,641) after a keeper was killed between cancel and record."""
    assert order_status({"status": "closed", "amount": 513641.0, "filled": 440000.0}) is OrderStatus.CANCELLED
    assert order_status({"status": "closed", "amount": 513641.0, "filled": 513641.0}) is OrderStatus.FILLED
    assert order_status({"status": "closed", "amount": 0.3, "filled": 0.3}) is OrderStatus.FILLED
    assert order_status({"status": "canceled", "amount": 10.0, "filled": 4.0}) is OrderStatus.CANCELLED
    assert order_status({"status": "open", "amount": 10.0, "filled": 4.0}) is OrderStatus.PARTIALLY_FILLED


async def test_timeout_cancel_of_a_partly_filled_order_is_recorded_as_cancelled(harness_factory: Any) -> None:
    h = await harness_factory(hedge=[{"asset": "BTC", "venue": "sim", "instrument": "BTC/USD:BTC"}],
                              execution={"order_timeout": 0.3})
    h.emu.engine.taker_flow_usd_per_s = Decimal(0)  # only the fault fills: half, then the order rests
    h.emu.faults.add({"endpoint": "/v5/order/create", "kind": "partial_fill", "fill_ratio": 0.5, "count": 1})
    res = await h.keeper.cycle()
    assert res.sent == 1
    cid = h.emu.engine.orders_list()[0]["client_order_id"]
    await asyncio.sleep(0.4)
    h.emu.engine.set_price(Decimal(64990), asset="BTC")  # the touch moves away from the resting sell
    await h.keeper.cycle()  # past order_timeout: cancelled to reprice at the new touch
    assert h.emu.engine.orders_list()[0]["status"] == "PartiallyFilledCanceled"
    rec = await h.store.get_order(cid)
    assert rec is not None and rec.status == "cancelled" and 0 < rec.filled < rec.amount, rec
