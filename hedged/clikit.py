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

# Exit codes of every command: one table, in hedged/exits.py (README "Exit codes", docs/audit.md).
from hedged.exits import EXIT_BAD_INPUT as EXIT_CONFIG
from hedged.exits import EXIT_LOCKED as EXIT_LOCKED
from hedged.exits import EXIT_NO_ANSWER as EXIT_NO_ANSWER
from hedged.exits import EXIT_OK as EXIT_OK
from hedged.exits import EXIT_OTHER as EXIT_FAILED

__all__ = ["EXIT_AUDIT", "EXIT_CONFIG", "EXIT_FAILED", "EXIT_LOCKED", "EXIT_NO_ANSWER", "EXIT_OK", "ConfigOpt",
           "JsonOpt", "ReasonOpt", "exit_codes", "fail", "load_or_exit"]

if TYPE_CHECKING:
    from hedged.config import Config

EXIT_AUDIT = EXIT_FAILED  # the name the audit commands used

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="TOML config file.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why, for the audit log.")]


def fail(message: str, code: int = EXIT_CONFIG) -> NoReturn:
    """One line on stderr, then exit non-zero: the shape of every user-facing error (secrets scrubbed)."""
    from hedged.log import scrub_text

    typer.echo(f"error: {scrub_text(message)}", err=True)
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
