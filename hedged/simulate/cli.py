"""`hedged simulate` and `hedged report`; heavy imports stay inside the commands."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from hedged.simulate.output import RunData


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key or not val:
            raise typer.BadParameter(f"expected KEY=VALUE, got {v!r}", param_hint=what)
        out[key.strip()] = val.strip()
    return out


def _decimal(v: str, what: str) -> Decimal:
    try:
        return Decimal(v)
    except InvalidOperation:
        raise typer.BadParameter(f"expected a number, got {v!r}", param_hint=what) from None


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        config: Annotated[Path, typer.Option("--config", "-c", help="TOML config file.")],
        path: Annotated[str, typer.Option(help="gbm | jumps | crash | flat | FILE.csv (timestamp,open,high,low,"
                                               "close[,mark,index,funding]).")] = "gbm",
        days: Annotated[float, typer.Option(help="Length of a generated path, days.")] = 30.0,
        step: Annotated[int, typer.Option(help="Seconds between decisions.")] = 60,
        seed: Annotated[int, typer.Option(help="Seed of the path.")] = 1,
        start: Annotated[str, typer.Option(help="Start time (RFC 3339) of a generated path; the config's `until` "
                                                "is read against it.")] = "2026-01-01T00:00:00Z",
        vol: Annotated[float, typer.Option(help="Annual volatility.")] = 0.6,
        drift: Annotated[float, typer.Option(help="Annual drift.")] = 0.0,
        funding_rate: Annotated[str, typer.Option(help="Funding per interval; 0 turns funding off.")] = "0.0001",
        funding_vol: Annotated[float, typer.Option(help="Draw the funding rate around --funding-rate with this "
                                                        "standard deviation per interval (0: constant).")] = 0.0,
        spread_ticks: Annotated[int | None, typer.Option(help="Half spread of the book, ticks.")] = None,
        crash: Annotated[float, typer.Option(help="--path crash: the fall, as a fraction.")] = 0.5,
        crash_hours: Annotated[float, typer.Option(help="--path crash: over how many hours.")] = 24.0,
        jumps_per_day: Annotated[float, typer.Option(help="--path jumps: Poisson rate.")] = 2.0,
        alt_beta: Annotated[float, typer.Option(help="Other coins vs the first hedge's coin: beta.")] = 1.5,
        alt_corr: Annotated[float, typer.Option(help="Other coins vs the first hedge's coin: correlation.")] = 0.8,
        exchange: Annotated[Path | None, typer.Option(help="Emulator TOML: instruments, fees, book, balances.")] = None,
        balance: Annotated[list[str], typer.Option(help="Starting balance COIN=AMOUNT (repeat).")] = [],  # noqa: B006
        deposit: Annotated[list[str], typer.Option(help="COIN=AMOUNT@DAYS: credit every DAYS (repeat).")] = [],  # noqa: B006
        from_flat: Annotated[bool, typer.Option("--from-flat", help="Start with no hedge (count opening trades).")]
        = False,
        sweep: Annotated[list[str], typer.Option(help="KEY=V1,V2: run the grid (repeat for more keys).")] = [],  # noqa: B006
        out: Annotated[Path | None, typer.Option(help="Write summary, series and orders here (for report).")] = None,
        snapshot_at: Annotated[list[int], typer.Option(help="With --out: also write the snapshot v1 of this step "
                                                            "(repeat), for `hedged plan --snapshot`.")] = [],  # noqa: B006
        json_out: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    ) -> None:
        """Price a hedge before running it: the real decision over a seeded path, vs naive and unhedged."""
        import json
        from dataclasses import replace

        from hedged.cli import fail, load_or_exit
        from hedged.exposure import PlanInputError
        from hedged.sim.settings import EmulatorConfigError, load_settings
        from hedged.simulate.paths import PathSpec
        from hedged.simulate.runner import Deposit, SimError, SimOptions, simulate, sweep_configs

        cfg = load_or_exit(config)
        try:
            settings = load_settings(exchange) if exchange is not None else None
        except EmulatorConfigError as exc:
            fail(f"--exchange {exchange}: {exc.problems[0]}")
        balances = {k: _decimal(v, "--balance") for k, v in _pairs(balance, "--balance").items()} or None
        deposits = []
        for coin, spec in _pairs(deposit, "--deposit").items():
            amount, sep, every = spec.partition("@")
            if not sep:
                fail(f"--deposit {coin}={spec}: expected COIN=AMOUNT@DAYS, e.g. BTC=0.1@7")
            deposits.append(Deposit(coin, _decimal(amount, "--deposit"), float(_decimal(every, "--deposit"))))
        rate = _decimal(funding_rate, "--funding-rate")
        from datetime import datetime

        try:
            start_at = datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError:
            fail(f"--start: expected an RFC 3339 time such as 2026-01-01T00:00:00Z, got {start!r}")
        if start_at.tzinfo is None:
            fail(f"--start: expected a UTC offset (e.g. a trailing Z), got {start!r}")
        pspec = PathSpec(kind=path, days=days, step_s=step, vol=vol, drift=drift, seed=seed, crash=crash,
                        crash_hours=crash_hours, jumps_per_day=jumps_per_day, alt_beta=alt_beta, alt_corr=alt_corr,
                         funding_mean=float(rate), funding_vol=funding_vol)
        opts = SimOptions(path=pspec, funding_rate=rate, spread_ticks=spread_ticks, balances=balances, start=start_at,
                          deposits=tuple(deposits), exchange=settings, start_hedged=not from_flat,
                          keep=frozenset(snapshot_at))
        try:
            if sweep:
                grid = [(k, v.split(",")) for k, v in _pairs(sweep, "--sweep").items()]
                rows = []
                for combo, c in sweep_configs(cfg, grid):
                    r = simulate(c, replace(opts, rules=("config",)))
                    rows.append({"params": combo, **r.scenario("config").summary})
                if json_out:
                    typer.echo(json.dumps({"sweep": rows}))
                else:
                    _sweep_table(rows)
                    inst = (settings.instruments if settings else [])
                    maker = next((i.maker_fee for i in inst if i.symbol == cfg.hedge[0].instrument), None)
                    from rich.console import Console

                    Console().print(
                        "Zakamouline (2006): with trading costs the best no-trade band grows with the cost and "
                        "shrinks with risk aversion × price × variance × horizon, H0 ∝ c / (γ·P·σ²·T). This path: "
                        f"σ² = {vol ** 2:g}/yr, T = {days / 365:.3g} yr, c = maker fee "
                        f"{maker if maker is not None else '0.0002 (built-in exchange)'}; pick the widest band "
                        "whose effectiveness you accept.")
                return
            result = simulate(cfg, opts)
        except (SimError, PlanInputError) as exc:
            fail(str(exc))
        if out is not None:
            from hedged.simulate.output import write_run

            write_run(result, out)
            from hedged.simulate.exchange import inputs_v1

            for step_no, inputs in sorted(result.scenario("config").kept_inputs.items()):
                (out / f"snapshot_{step_no}.json").write_text(json.dumps(inputs_v1(inputs), indent=1) + "\n")
        if json_out:
            typer.echo(json.dumps(result.json()))
        else:
            _table(result.json())
            if out is not None:
                typer.echo(f"written to {out}; draw it with: hedged report --sim {out}")

    @app.command()
    def report(
        sim: Annotated[Path | None, typer.Option(help="A folder written by `hedged simulate --out`.")] = None,
        config: Annotated[Path | None, typer.Option("--config", "-c", help="A keeper's config: report from its "
                                                                           "audit store.")] = None,
        days: Annotated[float, typer.Option(help="--config: how many days back.")] = 30.0,
        out: Annotated[Path | None, typer.Option(help="Where to write report.html and the PNGs "
                                                      "(default: the --sim folder; with --config, ./report).")] = None,
    ) -> None:
        """Draw a simulation, or a keeper's audit store, as one self-contained HTML page plus PNGs."""
        from hedged.cli import fail
        from hedged.simulate.output import RunDirError, read_run

        if (sim is None) == (config is None):
            fail("give exactly one of --sim DIR (a simulation) or --config FILE (a keeper's audit store)")
        data: RunData
        title = "hedged simulate"
        if sim is not None:
            try:
                data = read_run(sim)
            except RunDirError as exc:
                fail(str(exc))
            folder = out or sim
        else:
            assert config is not None
            data = _from_store(config, days)
            title = f"hedged: the last {days:g} days of keeper {config}"
            folder = out or Path("report")
        from hedged.simulate.report import ReportError, render

        try:
            files = render(data, folder, title)
        except ReportError as exc:
            fail(str(exc), 1)
        typer.echo(f"report: {files[-1]}")
        for f in files[:-1]:
            typer.echo(f"  {f}")


def _from_store(config: Path, days: float) -> RunData:
    import asyncio
    from datetime import UTC, datetime, timedelta

    from hedged.audit import open_store
    from hedged.audit.store import AuditError
    from hedged.cli import fail, load_or_exit
    from hedged.simulate.from_audit import AuditReportError, load

    cfg = load_or_exit(config)

    async def read() -> RunData:
        store = await open_store(cfg, read_only=True)
        try:
            return await load(store, datetime.now(UTC) - timedelta(days=days))
        finally:
            await store.close()

    try:
        return asyncio.run(read())
    except (AuditError, AuditReportError) as exc:
        fail(str(exc), 1)


def _table(summary: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    scenarios = summary["scenarios"]
    assert isinstance(scenarios, list)
    t = Table(title="hedged simulate: cost of insurance vs protection", title_justify="left")
    t.add_column("")
    for s in scenarios:
        t.add_column(str(s["rule"]), justify="right")
    from hedged.simulate.metrics import ROWS

    for label, key, fmt, scale in ROWS:
        cells = []
        for s in scenarios:
            v = s.get(key)
            cells.append("-" if not isinstance(v, int | float) else fmt.format(v * scale))
        t.add_row(label, *cells)
    path = summary.get("path")
    first = scenarios[0]
    lines = [f"{first['steps']} steps; effectiveness on values every {first['he_interval_s']:g} s"]
    if isinstance(path, dict) and path.get("r2") is not None:
        lines.append(f"proxy hedge: the path's squared correlation {path['r2']} bounds its effectiveness")
    if summary.get("note"):
        lines.append(str(summary["note"]))
    t.caption = "\n".join(lines)
    t.caption_justify = "left"
    Console().print(t)


def _sweep_table(rows: list[dict[str, object]]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    t = Table(title="sweep: cost vs effectiveness (same seeded path; drift as % of target)", title_justify="left",
              box=box.SIMPLE_HEAD, pad_edge=False)
    cols = {"orders": ("orders", "{:,.0f}", 1), "cost_usd": ("cost $", "{:,.0f}", 1),
            "cost_pct_per_year": ("%/yr", "{:.1f}", 1), "hedge_effectiveness": ("HE", "{:.4f}", 1),
            "mean_drift": ("drift%", "{:.2f}", 100), "max_drift": ("max%", "{:.2f}", 100),
            "time_outside_band_pct": ("out%", "{:.1f}", 1)}
    t.add_column("settings", no_wrap=True)
    for head, _, _ in cols.values():
        t.add_column(head, justify="right", min_width=len(head), no_wrap=True)
    for r in rows:
        params = r["params"]
        assert isinstance(params, dict)
        cells = []
        for c, (_, fmt, scale) in cols.items():
            v = r.get(c)
            cells.append("-" if not isinstance(v, int | float) else fmt.format(v * scale))
        t.add_row(" ".join(f"{k}={v}" for k, v in params.items()), *cells)
    Console().print(t)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.6f}" if abs(v) < 1 else f"{v:,.2f}"
    return "-" if v is None else str(v)
