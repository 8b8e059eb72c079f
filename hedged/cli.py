"""The `hedged` command line: builds the app and registers every command module's commands.

Imports go one way: this module → command modules (hedged.audit.cli, hedged.alerts.cli, hedged.demo,
hedged.sim.cli) → hedged.clikit (the leaf). None of them imports pydantic, SQLAlchemy, ccxt, aiohttp or
aiomqtt at import time; each command imports what it needs when it runs, so `--help` stays fast
(bench/cli_startup.py measures it; tests/test_cli_imports.py guards it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hedged import __version__
from hedged.alerts.cli import register as register_alerts
from hedged.audit.cli import register as register_audit
from hedged.clikit import EXIT_CONFIG, EXIT_FAILED, ConfigOpt, exit_codes, fail, load_or_exit
from hedged.demo import register as register_demo
from hedged.sim.cli import register as register_sim
from hedged.simulate.cli import register as register_simulate

if TYPE_CHECKING:
    from hedged.config import Config
    from hedged.model import Snapshot

app = typer.Typer(
    name="hedged",
    help="Keep crypto holdings hedged with perpetual futures, inside hard safety limits.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: fast (no rich import) and no type labels on flags
)
config_app = typer.Typer(help="Configuration files: check, show, schema.", no_args_is_help=True)
app.add_typer(config_app, name="config")
__all__ = ["app", "fail", "load_or_exit", "main"]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hedged {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Keep crypto holdings hedged with perpetual futures, inside hard safety limits."""


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="TOML config file.", show_default=False)]) -> None:
    """Print `ok`, or every problem on its own line (key path and what was expected) and exit 2."""
    from hedged.config import ConfigError, load_config, loose_secret_files

    try:
        cfg = load_config(file)
    except ConfigError as exc:
        for line in exc.problems:
            typer.echo(line)
        raise typer.Exit(EXIT_CONFIG) from None
    for line in loose_secret_files(cfg):  # warnings keep exit 0 (docs/configuration.md says why)
        typer.echo(line)
    typer.echo("ok")


@config_app.command("show")
def config_show(
    file: Annotated[Path, typer.Argument(help="TOML config file.", show_default=False)],
    json_out: Annotated[bool, typer.Option("--json", help="Print it as JSON instead of TOML.")] = False,
) -> None:
    """The effective config, every default filled in, as TOML. Secrets appear as the names that hold them."""
    from hedged.configtools import effective, effective_toml

    cfg = load_or_exit(file)
    if json_out:
        import json

        typer.echo(json.dumps(effective(cfg), indent=2))
    else:
        typer.echo(effective_toml(cfg), nl=False)


@config_app.command("schema")
def config_schema() -> None:
    """JSON Schema of the config file (from the models), for editors that validate TOML."""
    import json

    from hedged.configtools import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command()
def plan(
    config: ConfigOpt,
    snapshot: Annotated[
        Path | None, typer.Option(help="Snapshot v1 JSON; without it, live state is read (nothing is placed).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """One decision pass: what the keeper would do, given this state. Places nothing.

    A snapshot the keeper recorded carries a `keeper` section (trading state, order history, our orders in
    flight, ...): the decision then replays exactly what the keeper decided.
    """
    from hedged.decide import decide
    from hedged.exposure import PlanInputError
    from hedged.replay import CycleInputs, load_inputs
    from hedged.report import dumps, plan_json, plan_table
    from hedged.snapshot import SnapshotError

    cfg = load_or_exit(config)
    if snapshot is None:
        inputs = CycleInputs(_live_snapshot(cfg))
    else:
        try:
            inputs = load_inputs(snapshot.read_bytes())
        except OSError as exc:
            fail(f"{snapshot}: cannot read snapshot: {exc.strerror}")
        except SnapshotError as exc:
            fail(f"{snapshot}: {exc}")
    try:
        the_plan, result = decide(cfg, inputs.snapshot, state=inputs.state, recent=inputs.recent,
                                  previous_marks=inputs.previous_marks, tag=inputs.tag, context=inputs.context)
    except PlanInputError as exc:
        fail(str(exc))
    if json_out:
        typer.echo(dumps(plan_json(the_plan, result)))
    else:
        from rich.console import Console

        console = Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)
        for table in plan_table(the_plan, result):
            console.print(table)


# Piped output is read by programs and by `less -S`: wide enough that no symbol or number is cut.
PIPE_WIDTH = 240


def _exchange_errors() -> tuple[type[Exception], ...]:
    from hedged.errors import VenueError
    from hedged.snapshot import SnapshotError

    return (VenueError, SnapshotError, OSError, ValueError)


def _live_raw(cfg: Config) -> dict[str, Any]:
    """Read live state from every venue (reads only); one-line error and exit 1 when it cannot."""
    import asyncio

    from hedged.config import ConfigError
    from hedged.service import opened_venues, raw_snapshot

    async def read() -> dict[str, Any]:
        async with opened_venues(cfg) as venues:
            return await raw_snapshot(venues)

    try:
        return asyncio.run(read())
    except ConfigError as exc:
        fail(exc.problems[0])
    except _exchange_errors() as exc:
        fail(f"cannot read live state: {str(exc)[:300]}", EXIT_FAILED)


def _live_snapshot(cfg: Config) -> Snapshot:
    from hedged.snapshot import SnapshotError, parse_snapshot

    try:
        return parse_snapshot(_live_raw(cfg))
    except SnapshotError as exc:
        fail(f"live state: {exc}", EXIT_FAILED)


@app.command()
def snapshot(config: ConfigOpt) -> None:
    """Read live state (nothing is placed) and print it as snapshot v1 JSON on stdout."""
    import json

    cfg = load_or_exit(config)
    typer.echo(json.dumps(_live_raw(cfg), indent=2, default=str))


@app.command()
def run(config: ConfigOpt) -> None:
    """Run the keeper until SIGTERM/SIGINT. Exit 2 bad config, 3 account locked by another keeper, 4 exchange
    unreachable for keeper.start_timeout, 5 exchange refused us (API key, market), 1 other."""
    from hedged import shutdown
    from hedged.config import ConfigError
    from hedged.errors import VenueError
    from hedged.exits import StartFailed
    from hedged.log import configure
    from hedged.service import run_keeper

    cfg = load_or_exit(config)
    configure()
    with exit_codes():
        try:
            shutdown.run(run_keeper(cfg))  # asyncio.run with a bounded end (see hedged/shutdown.py)
        except ConfigError as exc:
            fail(exc.problems[0])
        except StartFailed as exc:  # exit codes: hedged/exits.py, docs/operations.md
            fail(str(exc), exc.code)
        except VenueError as exc:
            fail(str(exc), EXIT_FAILED)
    shutdown.exit_when_stuck(0)


# --- commands registered by other modules (one line each) ----------------------------------------
register_audit(app)
register_sim(app)
register_demo(app)
register_alerts(app)
register_simulate(app)


def main() -> None:
    """The console script. A closed pipe (`hedged audit export | head`) reaches click, which exits 1
    quietly; commands must let BrokenPipeError through rather than report it as an error."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
