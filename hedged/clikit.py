"""What every `hedged` command shares: exit codes, option aliases, `fail`, `load_or_exit`, `exit_codes`.

A leaf: it imports only typer (and the standard library) at import time, and nothing in `hedged` imports
it back through a command module, so `hedged.cli` → command modules → here is the one direction of
imports. Anything heavy (pydantic, SQLAlchemy, ccxt, aiohttp, aiomqtt) is imported inside the function
that needs it, so `hedged --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from hedged.config import Config

# Exit codes of every command (README "Exit codes", docs/audit.md).
EXIT_OK = 0
EXIT_FAILED = 1  # the work could not be done: audit problem, unreachable exchange or database, bad chain
EXIT_CONFIG = 2  # bad config or bad arguments (typer's usage errors are 2 too)
EXIT_LOCKED = 3  # another keeper holds one of the trading accounts
EXIT_NO_ANSWER = 4  # `hedged command`: the keeper did not answer over MQTT
EXIT_AUDIT = EXIT_FAILED  # the name the audit commands used

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="TOML config file.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why, for the audit log.")]


def fail(message: str, code: int = EXIT_CONFIG) -> NoReturn:
    """One line on stderr, then exit non-zero: the shape of every user-facing error."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def load_or_exit(path: Path) -> Config:
    """The config at `path`, or every problem as an `error: ` line on stderr and exit 2."""
    from hedged.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.problems:
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None


@contextmanager
def exit_codes() -> Iterator[None]:
    """Map audit/lock exceptions to one stderr line and an exit code (AccountLocked → 3, others → 1)."""
    from hedged.audit.lock import AccountLocked
    from hedged.audit.store import AuditError

    try:
        yield
    except AccountLocked as exc:
        fail(str(exc), EXIT_LOCKED)
    except AuditError as exc:
        fail(str(exc), EXIT_FAILED)
