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
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

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
# the demo's exchange lives in its own process, so its account lock lives here, not in the machine's lock
# directory: two demos (or a demo and a test run) at once never refuse each other
lock_dir = "locks"

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


@dataclass(frozen=True)
class Holding:
    """Where the cross-venue demo's coins are besides the Bybit account: the Binance spot wallet (where a
    deposit lands) and a cold wallet the keeper is told about (off_exchange)."""

    spot: Emulator
    spot_key: str
    cold: dict[str, Decimal]


def _num(v: Decimal, places: int = 4) -> str:
    q = Decimal(1).scaleb(-places)
    s = f"{v.quantize(q):,}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def _usd(v: Decimal) -> str:
    sign = "-" if v < 0 else ""
    return f"{sign}${abs(v):,.0f}" if abs(v) >= 100 else f"{sign}${abs(v):,.2f}"


def _pct(v: Decimal) -> str:
    return f"{v:+.2f}%"


def _age(seconds: float) -> str:
    h, rem = divmod(int(seconds), 3600)
    return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m"


LEGEND = ("exposure = held coins + the short's PnL in coins; hedge target = -exposure",
          "USD hedged = exposure x price: it stays flat as prices move. That is the hedge.")
POST_ONLY_BOUNCE = "EC_PostOnlyWillTakeLiquidity"
EVENTS_KEPT = 50


@dataclass
class CoinBook:
    """One coin's money over the run, for the closing summary (USD at the prices of the moment)."""

    start_coins: Decimal = Decimal(0)
    put_in_usd: Decimal = Decimal(0)  # coins at the start at the first price, plus deposits at theirs
    # USD value once the short first reached its band (the hedge is on), plus later deposits at their price:
    # from here on, hedged and unhedged are compared over the same prices
    hedged_from: Decimal = Decimal(0)
    hedged_at: float = 0.0  # seconds into the demo
    deposited: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)  # in this coin (inverse contracts settle in it)
    funding: Decimal = Decimal(0)  # > 0: received


@dataclass
class DemoView:
    """What the console shows; fed by the keeper's on_cycle callback, the exchange's order and execution
    events (the demo's account only) and the deposit script."""

    emu: Emulator
    started: float = field(default_factory=time.monotonic)
    cycles: int = 0
    sent: int = 0
    state: str = "STARTING"
    error: str = ""
    event: str = "keeper starting"
    decisions: tuple[Decision, ...] = ()
    events: deque[str] = field(default_factory=lambda: deque(maxlen=EVENTS_KEPT))
    books: dict[str, CoinBook] = field(default_factory=dict)
    echo: Callable[[str], None] | None = None  # plain mode: print each event as it happens
    holding: Holding | None = None  # cross-venue: coins also on Binance spot and in a cold wallet
    _status: dict[str, str] = field(default_factory=dict)
    _fees: dict[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.emu.engine.listeners.append(self._on_exchange)
        for coin, _ in DEPOSITS:
            self.books[coin] = CoinBook(start_coins=self.wallet(coin))

    # --- inputs --------------------------------------------------------------------------------------
    def log(self, text: str) -> None:
        line = f"+{time.monotonic() - self.started:.0f}s".rjust(5) + f"  {text}"
        self.events.append(line)
        self.event = text
        if self.echo is not None:
            self.echo(f"event: {line}")

    def on_cycle(self, result: CycleResult, _snapshot: Any) -> None:
        self.cycles += 1
        self.sent += result.sent
        self.state = result.state.value
        if result.error and result.error != self.error:
            self.log(f"cycle failed: {result.error[:200]}")
        self.error = result.error
        if result.decisions:
            for d in result.decisions:
                book = self.books.get(d.plan.symbol.split("/")[0])
                if book is not None and book.put_in_usd == 0 and d.plan.mark > 0:
                    book.put_in_usd = book.start_coins * d.plan.mark
                p = d.plan
                if book is not None and not book.hedged_from and p.hedge and abs(p.drift) <= p.band:
                    book.hedged_from = p.exposure_usd
                    book.hedged_at = time.monotonic() - self.started
            self.decisions = result.decisions

    def deposit(self, coin: str, amount: Decimal) -> None:
        if self.holding is not None:
            self.holding.spot.engine.credit(self.holding.spot_key, coin, amount)
        else:
            self.emu.engine.credit(API_KEY, coin, amount)
        book = self.books[coin]
        book.deposited += amount
        book.put_in_usd += amount * self._mark(coin)
        if book.hedged_from:
            book.hedged_from += amount * self._mark(coin)

    def _mark(self, coin: str) -> Decimal:
        for d in self.decisions:
            if d.plan.symbol.startswith(f"{coin}/"):
                return d.plan.mark
        return Decimal(0)

    def _on_exchange(self, kind: str, api_key: str | None, payload: Any) -> None:
        if api_key != API_KEY:
            return
        if kind == "order":
            self._on_order(payload)
        elif kind == "execution":
            self._on_execution(payload)

    def _on_order(self, o: Any) -> None:
        before, now = self._status.get(o.order_id), str(o.status)
        self._status[o.order_id] = now
        if before == now:
            return
        coin, side = o.instrument.base, str(o.side).lower()
        price = f" @ {_num(o.price, 2)}" if o.price is not None else ""
        if o.reject_reason == POST_ONLY_BOUNCE:
            self.log(f"{coin} post-only {side}{price} bounced: would cross the book; re-pricing")
        elif now == "New" and before is None:
            flag = " post-only" if o.time_in_force == "PostOnly" else ""
            flag += " reduce-only" if o.reduce_only else ""
            self.log(f"{coin} {side} {self._size(o.instrument, o.qty, o.price)}{price}{flag}")
        elif now in ("Cancelled", "PartiallyFilledCanceled"):
            self.log(f"{coin} {side}{price} cancelled (re-priced or timed out)")
        elif now == "Rejected":
            self.log(f"{coin} {side}{price} rejected by the exchange: {o.reject_reason}")

    def _on_execution(self, ex: Any) -> None:
        coin = ex.instrument.base
        book = self.books.get(coin)
        if ex.exec_type == "Funding":
            if book is not None and ex.fee_coin == coin:
                book.funding -= ex.fee
            verb = "paid" if ex.fee > 0 else "received"
            self.log(f"{coin} funding {verb}: {_num(abs(ex.fee), 6)} {ex.fee_coin} "
                     f"({_usd(abs(ex.fee) * ex.price)}) for the short")
            return
        if book is not None and ex.fee_coin == coin:
            book.fees += ex.fee
        self._fees[ex.order_id] = self._fees.get(ex.order_id, Decimal(0)) + ex.fee
        if ex.leaves_qty != 0:  # part fills: the fee counts, the line waits for the order's last fill
            return
        maker = "maker" if ex.is_maker else "taker"
        paid = self._fees.pop(ex.order_id, ex.fee)  # the order's fee over all its fills
        fee = _usd(paid * ex.price) if ex.fee_coin == coin else f"{_num(paid, 6)} {ex.fee_coin}"
        size = self._size(ex.instrument, ex.order_qty, ex.price)
        self.log(f"{coin} {'bought' if ex.side == 'Buy' else 'sold'} {size} @ {_num(ex.price, 2)}: filled "
                 f"({maker}, fee {fee})")

    @staticmethod
    def _size(inst: Any, qty: Decimal, price: Decimal | None) -> str:
        """Inverse contracts are USD: say so, with the coins they are worth."""
        if inst.inverse and price:
            usd = qty * inst.contract_size
            return f"{_usd(usd)} ({_num(usd / price, 3)} {inst.base})"
        return f"{_num(qty)} {inst.base}"

    # --- reading -------------------------------------------------------------------------------------
    def order_counts(self) -> tuple[int, int, int]:
        """(open, filled, rejected post-only) of the demo account's orders, as the exchange sees them."""
        from hedged.sim.orders import OPEN_STATUSES

        mine = [o for o in self.emu.engine.orders_list() if o["api_key"] == API_KEY]
        return (sum(1 for o in mine if o["status"] in OPEN_STATUSES),
                sum(1 for o in mine if o["status"] == "Filled"),
                sum(1 for o in mine if o["reject_reason"] == POST_ONLY_BOUNCE))

    def wallet(self, coin: str) -> Decimal:
        """The coins held, as the keeper counts them: the Bybit account's collateral, plus (cross-venue)
        Binance spot and the cold wallet, each once."""
        held = Decimal(self.emu.engine.account(API_KEY).wallet.get(coin, Decimal(0)))
        if self.holding is not None:
            h = self.holding
            held += h.spot.engine.account(h.spot_key).wallet.get(coin, Decimal(0)) + h.cold.get(coin, Decimal(0))
        return held

    def market_hours(self) -> float:
        engine = self.emu.engine
        return max(0.0, (engine.now_ms() - engine.start_ms) / 1000)

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
                         f"band={_num(p.band)} mark={_num(p.mark, 2)} usd_hedged={_usd(p.exposure_usd)} {d.action}"
                         + (f" ({self._reason(d)})" if d.reasons else ""))
        if self.error:
            parts.append(f"error={self.error}")
        return " | ".join(parts)

    def render(self, width: int = 80, height: int = 24) -> Any:
        """The live screen: a header, one row per instrument (more columns when wider), the legend, the last
        events (as many as fit), and the error if any."""
        from rich.console import Group
        from rich.text import Text

        elapsed = time.monotonic() - self.started
        n_open, n_filled, n_bounced = self.order_counts()
        head = Text.assemble(
            ("hedged demo", "bold"), f"  +{elapsed:.0f}s  ",
            (self.state, "bold green" if self.state == "RUNNING" else "bold yellow"),
            f"  cycle {self.cycles}  ", ("market clock ", "dim"), f"+{_age(self.market_hours())} ({SPEED:g}x)",
            no_wrap=True, overflow="ellipsis",
        )
        orders = Text.assemble(("orders ", "dim"), f"{self.sent} sent: {n_filled} filled, {n_bounced} post-only "
                               f"bounced, {n_open} open", no_wrap=True, overflow="ellipsis")
        table = self._table(width)
        # outside the table: a long first cell would squeeze every other column to "…"
        waiting = [] if self.decisions else [Text("(waiting for the first cycle)", style="dim")]
        legend = [Text(x, style="dim", no_wrap=True, overflow="ellipsis") for x in LEGEND]
        # header 2, table head + rows, legend, "events", footer, error; the line printed before the screen;
        # spare lines so the frame never scrolls the terminal
        used = 2 + 1 + max(1, len(self.decisions)) + len(LEGEND) + 1 + 1 + (1 if self.error else 0) + 3
        shown = list(self.events)[-max(3, min(EVENTS_KEPT, height - used)):]
        log = Text("events", style="bold")
        lines = [Text(e, no_wrap=True, overflow="ellipsis") for e in shown] or [Text("(none yet)", style="dim")]
        parts: list[Any] = [head, orders, table, *waiting, *legend, log, *lines]
        if self.error:
            parts.append(Text.assemble(("error: ", "bold red"), self.error, no_wrap=True, overflow="ellipsis"))
        stopped = self.state == "STOPPED"  # the last frame: the keeper has shut down, the summary follows
        parts.append(Text("stopped; open orders cancelled." if stopped else "Ctrl-C stops (open orders are cancelled).",
                          style="dim"))
        return Group(*parts)

    def _columns(self) -> dict[str, list[str]]:
        """Every column the table can show, header first, as the text of its cells."""
        cols: dict[str, list[str]] = {name: [name] for name in (
            "instrument", "coin", "price", "held", "exposure", "hedge", "target", "in-flight", "band",
            "drift/band", "USD hedged", "action", "why")}
        for d in self.decisions:
            p = d.plan
            coin = p.symbol.split("/")[0]
            cells = {
                "instrument": p.symbol, "coin": coin, "price": _num(p.mark, 1 if p.mark >= 1000 else 2),
                "held": _num(self.wallet(coin)), "exposure": _num(p.exposure_usd / p.mark if p.mark else Decimal(0)),
                "hedge": _num(p.hedge), "target": _num(p.target), "in-flight": _num(p.inflight), "band": _num(p.band),
                "drift/band": f"{abs(p.drift) / p.band * 100:.0f}%" if p.band else "-",
                "USD hedged": _usd(p.exposure_usd),
                "action": "on book" if d.action == "hold" and p.inflight else d.action,  # our order rests there
                "why": self._reason(d),
            }
            for name, text in cells.items():
                cols[name].append(text)
        return cols

    def _table(self, width: int) -> Any:
        """The instruments, in the widest layout whose numbers all fit in `width` (never an ellipsis in a
        number): every column when there is room, else the 80-column set; "why" takes what is left."""
        from rich.table import Table
        from rich.text import Text

        cols = self._columns()
        need = {name: max(len(c) for c in cells) for name, cells in cols.items()}
        narrow = ["coin", "price", "held", "exposure", "hedge", "drift/band", "USD hedged", "action"]
        wide = ["instrument", "price", "held", "exposure", "hedge", "target", "in-flight", "band", "drift/band",
                "USD hedged", "action"]

        def span(names: list[str]) -> int:
            return sum(need[n] for n in names) + 2 * (len(names) - 1)  # one space of padding each side

        chosen = wide if span(wide) <= width else narrow
        why_room = width - span(chosen) - 2
        if chosen is wide and why_room >= 20:  # a reason cut to fewer letters says nothing
            chosen = [*wide, "why"]
        table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1), expand=False)
        for name in chosen:
            table.add_column(name, justify="left" if name in ("coin", "instrument", "action", "why") else "right",
                             no_wrap=True, overflow="ellipsis", max_width=why_room if name == "why" else None)
        styles = {"trade": "cyan", "hold": "green", "blocked": "red", "on book": "green"}
        for i in range(1, len(self.decisions) + 1):
            cells: list[Any] = [Text(cols[n][i], style=styles[cols[n][i]]) if n == "action" else cols[n][i]
                                for n in chosen]
            table.add_row(*cells)
        return table

    def summary(self) -> list[str]:
        """The closing lines: orders, fees, funding, and each coin's USD value hedged against unhedged."""
        _, n_filled, n_bounced = self.order_counts()
        lines = [f"summary: {time.monotonic() - self.started:.0f} s here = {_age(self.market_hours())} of market "
                 f"time; {self.sent} orders sent, {n_filled} filled,",
                 f"  {n_bounced} post-only bounced (re-priced: a post-only order never pays the taker fee)"]
        fees = sum((b.fees * self._mark(c) for c, b in self.books.items()), Decimal(0))
        funding = sum((b.funding * self._mark(c) for c, b in self.books.items()), Decimal(0))
        lines.append(f"  fees paid {_usd(fees)}; funding {'received' if funding >= 0 else 'paid'} {_usd(abs(funding))}")
        for d in self.decisions:
            coin = d.plan.symbol.split("/")[0]
            book = self.books.get(coin)
            if book is None or not book.put_in_usd:
                continue
            coins = book.start_coins + book.deposited
            unhedged = coins * d.plan.mark
            hedged = d.plan.exposure_usd
            base = book.hedged_from or book.put_in_usd
            since = f"since the hedge was on (+{book.hedged_at:.0f}s)" if book.hedged_from else "since the start"
            lines.append(f"  {coin}: {_num(coins)} {coin} worth {_usd(base)} {since}; now")
            lines.append(f"       unhedged {_usd(unhedged)} ({_pct((unhedged / base - 1) * 100)}), "
                         f"hedged {_usd(hedged)} ({_pct((hedged / base - 1) * 100)})")
        lines.append("  (hedged moves only by fees, funding, drift inside the band, and a deposit's")
        lines.append("  price move before its short filled)")
        return lines


LOG_LEVEL = "warning"  # the demo's log level: the screen tells the story, the log only what went wrong


@contextmanager
def live_screen(console: Console, view: DemoView, reroute_logs: bool | None = None) -> Iterator[Live]:
    """The live screen. While it is up, the keeper's log lines are printed above it through rich's stderr
    proxy: written straight to the terminal (structlog holds the stderr of before) they would push the
    screen down, and every redraw would leave a stale copy of its top lines behind. Rerouted only when
    stderr is a terminal (`reroute_logs=None`); a log redirected to a file stays in the file.

    A resized terminal rewraps the lines already on screen (a 200-column line becomes two at 120), so the
    redraw, which moves up as many lines as it last drew, would leave rewrapped lines behind: on a new
    size the screen is cleared and drawn again from the top."""
    from rich.control import Control
    from rich.live import Live

    from hedged.log import configure

    drawn_at = [console.size]

    def frame() -> Any:
        size = console.size
        if size != drawn_at[0]:
            drawn_at[0] = size
            console.control(Control.clear(), Control.home())
        return view.render(size.width, size.height)

    reroute = sys.stderr.isatty() if reroute_logs is None else reroute_logs
    rerouted = False
    try:
        with Live(console=console, refresh_per_second=4, transient=False, get_renderable=frame) as screen:
            if reroute:
                configure(level=LOG_LEVEL)  # sys.stderr is Live's proxy now
                rerouted = True
            yield screen
    finally:
        if rerouted:
            configure(level=LOG_LEVEL)  # back to the real stderr, restored by Live on exit


def hedged_command() -> str:
    """How to run `hedged` from here: plain `hedged` if that is on PATH, else this venv's script."""
    import shutil

    script = Path(sys.executable).parent / "hedged"
    if not script.exists():
        return f"{sys.executable} -m hedged"
    found = shutil.which("hedged")
    if found and Path(found).resolve() == script.resolve():
        return "hedged"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


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
        holding = None
        if spot is not None:
            from hedged.sim.binance import spot_key

            link_prices(emu, spot)
            holding = Holding(spot, spot_key(API_KEY), dict(COLD_WALLET))
        view = DemoView(emu, echo=None if live else (lambda text: print(text, flush=True)), holding=holding)
        where = "" if holding is None else " (Binance spot + cold wallet + Bybit collateral)"
        view.log("exchange up; holding " + " and ".join(f"{_num(view.wallet(c))} {c}" for c, _ in DEPOSITS)
                 + where + "; the keeper opens the short")
        stop = asyncio.Event()
        deposit_at = duration / 3 if duration is not None else DEPOSIT_AFTER

        async def script() -> None:
            await asyncio.sleep(deposit_at)
            if stop.is_set():
                return
            for coin, amount in DEPOSITS:
                view.deposit(coin, amount)
            view.log("deposited " + " and ".join(f"{_num(a)} {c}" for c, a in DEPOSITS)
                     + ": exposure jumps, the hedge follows")
            if duration is not None:
                await asyncio.sleep(max(0.0, duration - deposit_at))
                view.log(f"{duration:g} s reached: stopping, cancelling open orders")
                stop.set()

        if live:
            from rich.console import Console

            with live_screen(Console(), view) as screen:
                task = asyncio.create_task(script())
                try:
                    await run_keeper(cfg, stop=stop, on_cycle=view.on_cycle, install_signals=True)
                finally:
                    task.cancel()
                    view.state = "STOPPED"
                    screen.refresh()
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

        from hedged.clikit import exit_codes
        from hedged.log import configure

        if scenario not in SCENARIOS:
            print(f"--scenario: expected one of {', '.join(SCENARIOS)}, got {scenario!r}", file=sys.stderr)
            raise typer.Exit(2)
        configure(level=LOG_LEVEL)
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
        print()
        print("\n".join(view.summary()))
        print(f"\nstopped after {view.cycles} cycles; open orders cancelled.")
        print(f"config and audit DB: {state_dir}\ninspect what it did:")
        exe = hedged_command()
        for args in ("status", "audit verify", "audit tail -n 20"):
            print(f"  {exe} {args} --config {cfg}")
