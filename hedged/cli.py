"""The `hedged` command line. Heavy imports live inside the commands so that `--help` stays fast."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from hedged.config import Config, ConfigError, load_config

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
    typer.echo(f"error: {message}", err=True)
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


# --- commands registered by other modules --------------------------------------------------------
# Each module exposes `register(app)`; keep one line per module here.


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
