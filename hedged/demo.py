"""`hedged demo`: the keeper against the in-process exchange, with a live console. No keys needed.

An emulated Bybit (seeded GBM prices with jumps, accelerated clock) holds BTC/ETH/SOL/USDT on the account
`demo-key`; the keeper hedges BTC and ETH with the inverse perpetuals. Part-way through, coins are
deposited so the hedge visibly follows. State (config + audit DB) stays in a directory for inspection.

`--scenario cross-venue`: the coins sit on an emulated Binance spot wallet plus a cold wallet
(`off_exchange`), the hedge is short on the Bybit inverse perpetuals; both fronts run in this process, one
market (Binance's prices follow Bybit's index), and the deposit lands on Binance spot.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from collections.abc import Callable

    from hedged.config import Config
    from hedged.keeper import CycleResult
    from hedged.model import Decision
    from hedged.sim.server import Emulator
    from hedged.sim.settings import EmulatorSettings

API_KEY = "demo-key"
SECRET = "demo-secret"
KEY_ENV = "HEDGED_DEMO_KEY"
SECRET_ENV = "HEDGED_DEMO_SECRET"
DEPOSITS: tuple[tuple[str, Decimal], ...] = (("BTC", Decimal(2)), ("ETH", Decimal(20)))
SCENARIOS = ("single", "cross-venue")
COLD_WALLET: dict[str, Decimal] = {"BTC": Decimal(5), "ETH": Decimal(50)}  # cross-venue off_exchange amounts
DEPOSIT_AFTER = 20.0  # seconds, when no --duration is given
SPEED = 600.0  # exchange seconds per wall second: one minute of demo is ten hours of market

CONFIG_TEMPLATE = """\
# Written by `hedged demo`: the keeper against the in-process emulator (now stopped).
# `hedged audit verify` and `hedged status` only need the audit DB below.

[keeper]
name = "demo"
interval = 2

[venues.sim]
exchange = "bybit"
url = "{url}"
api_key_env = "{key_env}"
secret_env = "{secret_env}"

[[hedge]]
asset = "BTC"
venue = "sim"
instrument = "BTC/USD:BTC"

[[hedge]]
asset = "ETH"
venue = "sim"
instrument = "ETH/USD:ETH"

[limits]
max_order_usd = 2000000
max_position_usd = 20000000
max_orders_per_hour = 1000
max_daily_turnover_usd = 50000000
max_price_deviation_bps = 200
max_price_jump_bps = 3000

[execution]
order_timeout = 10

[audit]
url = "sqlite:///hedged.db"
"""

CROSS_VENUE_VENUES = """[venues.spot]
exchange = "binance"
url = "{spot_url}"
api_key_env = "{key_env}"
secret_env = "{secret_env}"
"""


def demo_settings() -> EmulatorSettings:
    """The default exchange with moving prices: seeded GBM, a little drift, occasional jumps, accelerated."""
    from hedged.sim.settings import default_settings

    def gbm(seed: int, vol: float) -> dict[str, Any]:
        return {"kind": "gbm", "volatility": vol, "drift": 0.5, "jumps_per_day": 4.0,
                "jump_mean": 0.0, "jump_stdev": 0.02, "seed": seed}

    return default_settings(
        seed=7,
        speed=SPEED,
        assets={
            "BTC": {"price": Decimal(65000), "path": gbm(11, 0.8)},
            "ETH": {"price": Decimal(3000), "path": gbm(12, 1.0)},
            "SOL": {"price": Decimal(150), "path": gbm(13, 1.2)},
        },
    )


def write_config(state_dir: Path, url: str, spot_url: str | None = None) -> Path:
    """The single-venue config; with `spot_url` the cross-venue one: each hedge also counts the Binance
    spot venue's coins (sources) and a cold wallet (off_exchange)."""
    text = CONFIG_TEMPLATE.format(url=url, key_env=KEY_ENV, secret_env=SECRET_ENV)
    if spot_url is not None:
        text = text.replace("# Written by `hedged demo`:", "# Written by `hedged demo --scenario cross-venue`:")
        text = text.replace("\n[[hedge]]\n", "\n" + CROSS_VENUE_VENUES.format(
            spot_url=spot_url, key_env=KEY_ENV, secret_env=SECRET_ENV) + "\n[[hedge]]\n", 1)
        for coin, amount in COLD_WALLET.items():
            text = text.replace(f'instrument = "{coin}/USD:{coin}"\n',
                                f'instrument = "{coin}/USD:{coin}"\nsources = ["spot"]\noff_exchange = {amount}\n')
    path = state_dir / "hedged.toml"
    path.write_text(text)
    return path


def spot_settings() -> EmulatorSettings:
    """Binance for the cross-venue scenario: fixed paths (its prices follow Bybit's, see link_prices); the
    demo account holds BTC, ETH and USDT in its spot wallet and nothing as COIN-M collateral."""
    from hedged.sim.settings import binance_settings

    return binance_settings(seed=7, accounts=[{
        "api_key": API_KEY, "secret": SECRET, "balances": {},
        "spot_balances": {"BTC": Decimal(10), "ETH": Decimal(100), "USDT": Decimal(100_000)}}])


def link_prices(source: Emulator, follower: Emulator) -> None:
    """One market on two venues: every index move on `source` is copied to `follower`."""
    def copy(kind: str, _key: str | None, payload: Any) -> None:
        base = getattr(payload, "base", None)
        if kind == "ticker" and base in follower.engine.index:
            price = source.engine.index[base]
            if follower.engine.index[base] != price:
                follower.engine.set_price(price, asset=base)

    source.engine.listeners.append(copy)


def _num(v: Decimal, places: int = 4) -> str:
    q = Decimal(1).scaleb(-places)
    s = f"{v.quantize(q):,}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def _usd(v: Decimal) -> str:
    return f"{v.quantize(Decimal(1)):,}"


@dataclass
class DemoView:
    """What the console shows; updated by the keeper's on_cycle callback and by the deposit task."""

    emu: Emulator
    started: float = field(default_factory=time.monotonic)
    cycles: int = 0
    sent: int = 0
    state: str = "STARTING"
    error: str = ""
    event: str = "keeper starting"
    decisions: tuple[Decision, ...] = ()
    held: Callable[[str], Decimal] | None = None  # where the held coins are, when not on `emu` (cross-venue)

    def on_cycle(self, result: CycleResult, _snapshot: Any) -> None:
        self.cycles += 1
        self.sent += result.sent
        self.state = result.state.value
        self.error = result.error
        if result.decisions:
            self.decisions = result.decisions

    def order_counts(self) -> tuple[int, int, int]:
        """(open, filled, rejected post-only) of the demo account's orders, as the exchange sees them."""
        from hedged.sim.orders import OPEN_STATUSES

        mine = [o for o in self.emu.engine.orders_list() if o["api_key"] == API_KEY]
        return (sum(1 for o in mine if o["status"] in OPEN_STATUSES),
                sum(1 for o in mine if o["status"] == "Filled"),
                sum(1 for o in mine if o["reject_reason"] == "EC_PostOnlyWillTakeLiquidity"))

    def wallet(self, coin: str) -> Decimal:
        if self.held is not None:
            return self.held(coin)
        return Decimal(self.emu.engine.account(API_KEY).wallet.get(coin, Decimal(0)))

    @staticmethod
    def _reason(d: Decision) -> str:
        return str(d.reasons[0]) if d.reasons else ""

    def line(self) -> str:
        """One plain line per cycle, for logs (stdout not a terminal)."""
        parts = [f"t={time.monotonic() - self.started:5.1f}s", f"cycle={self.cycles}", f"state={self.state}",
                 f"sent={self.sent}", "open={} filled={} rejected={}".format(*self.order_counts())]
        for d in self.decisions:
            p = d.plan
            parts.append(f"{p.symbol} hedge={_num(p.hedge)} inflight={_num(p.inflight)} target={_num(p.target)} "
                         f"drift={_num(p.drift)} "
                         f"band={_num(p.band)} mark={_num(p.mark, 2)} {d.action}"
                         + (f" ({self._reason(d)})" if d.reasons else ""))
        if self.error:
            parts.append(f"error={self.error}")
        parts.append(f"event: {self.event}")
        return " | ".join(parts)

    def render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        elapsed = time.monotonic() - self.started
        n_open, n_filled, n_rejected = self.order_counts()
        head = Text.assemble(
            ("hedged demo", "bold"), f"  {time.strftime('%H:%M:%S')}  +{elapsed:.0f}s  ",
            ("state ", "dim"), (self.state, "bold green" if self.state == "RUNNING" else "bold yellow"),
            ("  cycles ", "dim"), str(self.cycles), ("  orders sent ", "dim"), str(self.sent),
            ("  open ", "dim"), str(n_open), ("  filled ", "dim"), str(n_filled),
            ("  post-only rejected ", "dim"), str(n_rejected),
        )
        table = Table(expand=False, header_style="bold")
        for col in ("instrument", "held", "exposure $", "target", "hedge", "in-flight", "drift", "band", "mark"):
            table.add_column(col, justify="right" if col != "instrument" else "left")
        table.add_column("action")
        table.add_column("reason", overflow="ellipsis", no_wrap=True, max_width=44)
        for d in self.decisions:
            p = d.plan
            coin = p.symbol.split("/")[0]
            style = {"trade": "cyan", "hold": "green", "blocked": "red"}[d.action]
            table.add_row(p.symbol, _num(self.wallet(coin)), _usd(p.exposure_usd), _num(p.target),
                          _num(p.hedge), _num(p.inflight), _num(p.drift), _num(p.band), _num(p.mark, 2),
                          Text(d.action, style=style), self._reason(d))
        if not self.decisions:
            table.add_row("(waiting for the first cycle)", *[""] * 10)
        foot = Text.assemble(("last event: ", "dim"), self.event)
        parts: list[Any] = [head, table, foot]
        if self.error:
            parts.append(Text.assemble(("error: ", "bold red"), self.error))
        parts.append(Text("target/hedge/in-flight/drift/band in base coin; drift = hedge + in-flight - target. "
                          "Ctrl-C stops.", style="dim"))
        return Group(*parts)


async def run_scenario(state_dir: Path, duration: float | None, *, live: bool, scenario: str) -> DemoView:
    """The single-venue demo, or the cross-venue one with an emulated Binance beside it."""
    if scenario == "single":
        return await run_demo(state_dir, duration, live=live)
    from hedged.sim.server import Emulator

    async with Emulator(spot_settings(), exchange="binance") as spot:
        return await run_demo(state_dir, duration, live=live, spot=spot)


async def run_demo(state_dir: Path, duration: float | None, *, live: bool, spot: Emulator | None = None) -> DemoView:
    import asyncio

    from hedged.config import load_config
    from hedged.service import run_keeper
    from hedged.sim.server import Emulator

    async with Emulator(demo_settings()) as emu:
        os.environ[KEY_ENV] = API_KEY
        os.environ[SECRET_ENV] = SECRET
        cfg_path = write_config(state_dir, emu.url, spot.url if spot is not None else None)
        cfg: Config = load_config(cfg_path)
        view = DemoView(emu)
        deposit_to, deposit_key = emu, API_KEY
        if spot is not None:
            from hedged.sim.binance import spot_key

            link_prices(emu, spot)
            deposit_to, deposit_key = spot, spot_key(API_KEY)
            # held = what the keeper counts: Binance spot + cold wallet + the Bybit collateral, each once
            view.held = lambda coin: sum((e.engine.account(k).wallet.get(coin, Decimal(0))
                                          for e, k in ((spot, spot_key(API_KEY)), (emu, API_KEY))),
                                         COLD_WALLET.get(coin, Decimal(0)))
        view.event = f"exchange up at {emu.url}; holding " + ", ".join(
            f"{_num(view.wallet(c))} {c}" for c in ("BTC", "ETH"))
        stop = asyncio.Event()
        deposit_at = duration / 3 if duration is not None else DEPOSIT_AFTER

        async def script() -> None:
            await asyncio.sleep(deposit_at)
            if stop.is_set():
                return
            for coin, amount in DEPOSITS:
                deposit_to.engine.credit(deposit_key, coin, amount)
            view.event = (f"+{time.monotonic() - view.started:.0f}s deposited "
                          + " and ".join(f"{_num(a)} {c}" for c, a in DEPOSITS) + "; the hedge follows")
            if not live:
                print(f"event: {view.event}", flush=True)
            if duration is not None:
                await asyncio.sleep(max(0.0, duration - deposit_at))
                view.event = f"duration {duration:g}s reached; stopping (cancelling open orders)"
                stop.set()

        if live:
            from rich.live import Live

            with Live(view.render(), refresh_per_second=4, transient=False) as screen:

                def on_cycle(result: CycleResult, snap: Any) -> None:
                    view.on_cycle(result, snap)
                    screen.update(view.render())

                async def refresh() -> None:
                    while True:
                        await asyncio.sleep(0.5)
                        screen.update(view.render())

                tasks = [asyncio.create_task(script()), asyncio.create_task(refresh())]
                try:
                    await run_keeper(cfg, stop=stop, on_cycle=on_cycle, install_signals=True)
                finally:
                    for t in tasks:
                        t.cancel()
                    view.state = "STOPPED"
                    screen.update(view.render())
        else:

            def on_cycle_plain(result: CycleResult, snap: Any) -> None:
                view.on_cycle(result, snap)
                print(view.line(), flush=True)

            task = asyncio.create_task(script())
            try:
                await run_keeper(cfg, stop=stop, on_cycle=on_cycle_plain, install_signals=True)
            finally:
                task.cancel()
                view.state = "STOPPED"
        return view


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        duration: Annotated[float | None, typer.Option(
            "--duration", min=1, help="Stop after this many seconds (default: run until Ctrl-C).")] = None,
        state_dir: Annotated[Path | None, typer.Option(
            "--state-dir", help="Where to keep hedged.toml and hedged.db (default: a fresh temp dir).")] = None,
        scenario: Annotated[str, typer.Option(
            "--scenario", help="single: one Bybit account holds the coins and the hedge; cross-venue: coins on "
            "Binance spot plus a cold wallet, hedged short on Bybit inverse.")] = "single",
    ) -> None:
        """Run the keeper against a local emulated exchange with a live view. No keys, no network."""
        import asyncio
        import tempfile

        from hedged.audit.cli import exit_codes
        from hedged.log import configure

        if scenario not in SCENARIOS:
            print(f"--scenario: expected one of {', '.join(SCENARIOS)}, got {scenario!r}", file=sys.stderr)
            raise typer.Exit(2)
        configure(level="warning")
        if state_dir is None:
            state_dir = Path(tempfile.mkdtemp(prefix="hedged-demo-"))
        else:
            state_dir.mkdir(parents=True, exist_ok=True)
        state_dir = state_dir.resolve()
        live = sys.stdout.isatty()
        print(f"hedged demo: state in {state_dir}" + (f", running {duration:g}s" if duration else ", Ctrl-C stops"),
              flush=True)
        with exit_codes():
            view = asyncio.run(run_scenario(state_dir, duration, live=live, scenario=scenario))
        cfg = state_dir / "hedged.toml"
        print(f"\nstopped after {view.cycles} cycles, {view.sent} orders sent; open orders cancelled.")
        print(f"config: {cfg}\naudit:  {state_dir / 'hedged.db'}\ninspect:")
        print(f"  hedged audit verify --config {cfg}")
        print(f"  hedged status --config {cfg}")
