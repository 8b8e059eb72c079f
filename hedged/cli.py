"""The `hedged` command line. Heavy imports live inside the commands so that `--help` stays fast."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from hedged.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from hedged.model import Snapshot

app = typer.Typer(
    name="hedged",
    help="Keep crypto holdings hedged with perpetual futures, inside hard safety limits.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="TOML config file.")]


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, then exit non-zero: the shape of every user-facing error."""
    from hedged.log import scrub_text

    typer.echo(f"error: {scrub_text(message)}", err=True)
    raise typer.Exit(code)


def load_or_exit(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.problems:
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2) from None


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="TOML config file.")]) -> None:
    """Print `ok`, or every problem on its own line (key path and what was expected) and exit 2."""
    try:
        load_config(file)
    except ConfigError as exc:
        for line in exc.problems:
            typer.echo(line)
        raise typer.Exit(2) from None
    typer.echo("ok")


@app.command()
def plan(
    config: ConfigOpt,
    snapshot: Annotated[
        Path | None, typer.Option(help="Snapshot v1 JSON; without it, live state is read (nothing is placed).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """One decision pass: what the keeper would do, given this state. Places nothing."""
    from hedged.decide import decide
    from hedged.exposure import PlanInputError
    from hedged.model import TradingState
    from hedged.report import dumps, plan_json, plan_table
    from hedged.snapshot import SnapshotError, load_snapshot

    cfg = load_or_exit(config)
    if snapshot is None:
        snap = _live_snapshot(cfg)
    else:
        try:
            snap = load_snapshot(snapshot.read_bytes())
        except OSError as exc:
            fail(f"{snapshot}: cannot read snapshot: {exc.strerror}")
        except SnapshotError as exc:
            fail(f"{snapshot}: {exc}")
    try:
        the_plan, result = decide(cfg, snap, state=TradingState.RUNNING)
    except PlanInputError as exc:
        fail(str(exc))
    if json_out:
        typer.echo(dumps(plan_json(the_plan, result)))
    else:
        from rich.console import Console

        console = Console()
        for table in plan_table(the_plan, result):
            console.print(table)


def _exchange_errors() -> tuple[type[Exception], ...]:
    from hedged.errors import VenueError
    from hedged.snapshot import SnapshotError

    return (VenueError, SnapshotError, OSError, ValueError)


def _live_raw(cfg: Config) -> dict[str, Any]:
    """Read live state from every venue (reads only); one-line error and exit 1 when it cannot."""
    import asyncio

    from hedged.service import opened_venues, raw_snapshot

    async def read() -> dict[str, Any]:
        async with opened_venues(cfg) as venues:
            return await raw_snapshot(venues)

    try:
        return asyncio.run(read())
    except ConfigError as exc:
        fail(exc.problems[0])
    except _exchange_errors() as exc:
        fail(f"cannot read live state: {str(exc)[:300]}", 1)


def _live_snapshot(cfg: Config) -> Snapshot:
    from hedged.snapshot import SnapshotError, parse_snapshot

    try:
        return parse_snapshot(_live_raw(cfg))
    except SnapshotError as exc:
        fail(f"live state: {exc}", 1)


@app.command()
def snapshot(config: ConfigOpt) -> None:
    """Read live state (nothing is placed) and print it as snapshot v1 JSON on stdout."""
    import json

    cfg = load_or_exit(config)
    typer.echo(json.dumps(_live_raw(cfg), indent=2, default=str))


@app.command()
def run(config: ConfigOpt) -> None:
    """Run the keeper until SIGTERM/SIGINT. Exit 3 if another keeper holds one of the accounts."""
    from hedged import shutdown
    from hedged.audit.cli import exit_codes
    from hedged.log import configure
    from hedged.service import run_keeper

    cfg = load_or_exit(config)
    configure()
    with exit_codes():
        try:
            shutdown.run(run_keeper(cfg))  # asyncio.run with a bounded end (see hedged/shutdown.py)
        except ConfigError as exc:
            fail(exc.problems[0])
    shutdown.exit_when_stuck(0)


# --- commands registered by other modules --------------------------------------------------------
# Each module exposes `register(app)`; keep one line per module here.
from hedged.audit.cli import register as register_audit  # noqa: E402, I001
register_audit(app)
from hedged.sim.cli import register as register_sim  # noqa: E402, I001
register_sim(app)
from hedged.demo import register as register_demo  # noqa: E402, I001
register_demo(app)
from hedged.alerts.cli import register as register_alerts  # noqa: E402, I001
register_alerts(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
