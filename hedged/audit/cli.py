"""CLI commands over the audit store: db upgrade, audit verify|tail|export|lock, status, halt, pause,
resume, reduce-only. Heavy imports stay inside the commands so `hedged --help` is fast.

Exit codes (hedged.clikit): 0 ok, 1 the work failed (bad chain, unreadable or unwritable store, database
unreachable), 2 bad config, 3 the trading account is locked by another keeper.
"""

from __future__ import annotations

import asyncio
import csv
import re
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from hedged.clikit import EXIT_AUDIT, EXIT_LOCKED, ConfigOpt, JsonOpt, ReasonOpt, exit_codes, fail, load_or_exit

if TYPE_CHECKING:
    from hedged.audit.store import AuditStore, EventRecord
    from hedged.config import Config

T = TypeVar("T")
__all__ = ["EXIT_AUDIT", "EXIT_LOCKED", "exit_codes", "register"]  # exit_codes: its old home, kept for callers


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


def _fail(message: str, code: int) -> NoReturn:
    fail(message, code)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    with exit_codes():
        try:
            return asyncio.run(coro)
        except (typer.Exit, KeyboardInterrupt, BrokenPipeError):
            raise
        except OSError as exc:
            _fail(f"{type(exc).__name__}: {exc}", EXIT_AUDIT)


def _config(path: Path) -> Config:
    import structlog

    from hedged.log import configure

    if not structlog.is_configured():
        configure(level="warning")  # stdout is for the command's output (export, --json)
    return load_or_exit(path)


async def _open(config: Config, *, read_only: bool) -> AuditStore:
    from hedged.audit.store import AuditStore

    return await AuditStore.open(
        config.audit_url, config.keeper.name, read_only=read_only, write_timeout=config.audit.write_timeout,
        allow_keys=config.venues.keys(), head_file=config.head_file,
    )


def parse_since(text: str) -> datetime:
    """RFC 3339 time (`2025-01-31T00:00:00Z`, a date) or an age like `90m`, `24h`, `7d`."""
    m = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(m.group(1))})
    try:
        ts = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter("expected an RFC 3339 time (2025-01-31T00:00:00Z) or an age (24h, 7d)") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _event_line(e: EventRecord) -> str:
    from hedged.audit.chain import canonical_json

    where = "/".join(x for x in (e.venue, e.symbol) if x) or "-"
    cyc = f"c{e.cycle}" if e.cycle is not None else "-"
    return f"{e.id:>6} {e.ts:%Y-%m-%d %H:%M:%S} {cyc:>6} {e.kind:<8} {where:<24} {canonical_json(e.payload)}"


# --- commands ----------------------------------------------------------------------------------------


def db_upgrade(config: ConfigOpt) -> None:
    """Create or upgrade the audit tables to the latest schema."""
    cfg = _config(config)

    async def go() -> str | None:
        from hedged.audit.migrate import upgrade

        return await upgrade(cfg.audit_url)

    from hedged.audit.store import async_url, safe_url

    rev = _run(go())
    typer.echo(f"audit database {safe_url(async_url(cfg.audit_url))} at revision {rev}")


def audit_verify(
    config: ConfigOpt,
    head: Annotated[str, typer.Option(
        "--head", help="HASH:COUNT published by the keeper (retained MQTT state `audit.head`, or the head "
                       "file): the chain must hold it, so a truncated store is detected. The head file and, "
                       "with [mqtt] enabled, the retained state are checked without it too.")] = "",
) -> None:
    """Walk the hash chain and replay the orders projection: `ok N events`, or name the first bad row, exit 1.

    The chain is also checked against every head published outside the store that can be found: --head,
    the head file (`[audit] head_file`; beside SQLite by default) and, with [mqtt] enabled, the keeper's
    retained state. The ok line names each anchor used; a `warning:` line says which could not be found.
    """
    from hedged.audit.anchor import Anchor, Bad, Missing, from_head_file, from_mqtt, parse_head

    cfg = _config(config)
    anchors: list[Anchor] = []
    if head:
        parsed = parse_head(head)
        if parsed is None:
            _fail("--head: expected HASH:COUNT (64 hex digits, a colon, the number of events)", 2)
        anchors.append(Anchor("--head", cfg.keeper.name, *parsed))

    async def go() -> tuple[bool, list[str]]:
        # the anchors first: the store written after them holds at least what they say
        found: list[Anchor | Missing | Bad] = [from_head_file(cfg)]
        mqtt = await from_mqtt(cfg)
        if mqtt is not None:
            found.append(mqtt)
        bad = [f"bad {b.source}: {b.why}" for b in found if isinstance(b, Bad)]
        if bad:
            return False, bad
        used = [*anchors, *(a for a in found if isinstance(a, Anchor))]
        missing = [m for m in found if isinstance(m, Missing)]
        async with await _open(cfg, read_only=True) as store:
            result = await store.verify(anchors=[(a.keeper, a.hash, a.count) for a in used])
            projection = await store.verify_projection() if result.ok else ""
        if result.ok and projection:
            return False, [f"bad {projection}"]
        if not result.ok:
            return False, [f"bad {result.problem} ({result.events} events ok before it)"]
        pruned = f" ({result.pruned} pruned before a checkpoint)" if result.pruned else ""
        lines = [f"ok {result.events} events{pruned}" + (" matching " + " and ".join(a.text for a in used)
                                                             if used else "")]
        lines += [f"warning: {n}" for n in result.notes]
        lines += [f"warning: no published head from the {m.source}: {m.why}" for m in missing]
        if not used:
            lines.append("warning: not checked against any head published outside the store: a store whose "
                         "newest events were deleted would pass (docs/audit.md)")
        return True, lines

    ok, lines = _run(go())
    for line in lines:
        typer.echo(line)
    if not ok:
        raise typer.Exit(EXIT_AUDIT)


def audit_prune(
    config: ConfigOpt,
    before: Annotated[str, typer.Option("--before", help="Delete events older than this: RFC 3339 time or age (90d).")],
) -> None:
    """Delete old events (and cycle rows) behind a checkpoint that `audit verify` checks (docs/audit.md)."""
    cfg = _config(config)
    when = parse_since(before)

    async def go() -> str:
        async with await _open(cfg, read_only=False) as store:
            n, checkpoint = await store.prune(when)
        return f"pruned {n} events before {when:%Y-%m-%d %H:%M:%S}Z" + (
            f"; checkpoint event {checkpoint.id}" if checkpoint is not None else "")

    typer.echo(_run(go()))


def audit_tail(
    config: ConfigOpt,
    n: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many events.")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
    as_json: JsonOpt = False,
    all_keepers: Annotated[bool, typer.Option("--all", help="Events of every keeper in the store.")] = False,
) -> None:
    """The last N events of this keeper, oldest first; --follow waits for more."""
    cfg = _config(config)

    def show(e: EventRecord) -> None:
        from hedged.audit.chain import canonical_json

        typer.echo(canonical_json(e.as_dict()) if as_json else _event_line(e))

    async def go() -> None:
        async with await _open(cfg, read_only=True) as store:
            events = await store.tail(n, all_keepers=all_keepers)
            for e in events:
                show(e)
            last = events[-1].id if events else 0
            while follow:
                sys.stdout.flush()
                await asyncio.sleep(0.5)
                for e in await store.events_after(last, all_keepers=all_keepers):
                    show(e)
                    last = e.id

    try:
        _run(go())
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def audit_export(
    config: ConfigOpt,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv.")] = ExportFormat.jsonl,
    since: Annotated[str | None, typer.Option("--since", help="RFC 3339 time or age (24h, 7d).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File (default stdout).")] = None,
    all_keepers: Annotated[bool, typer.Option("--all", help="Events of every keeper in the store.")] = False,
) -> None:
    """Every event (or those since TIME) as JSON lines or CSV, with hashes, for analysis or archiving."""
    cfg = _config(config)
    start = parse_since(since) if since else None

    async def go() -> int:
        from hedged.audit.chain import canonical_json

        out = output.open("w", newline="") if output else sys.stdout
        count = 0
        try:
            async with await _open(cfg, read_only=True) as store:
                writer: Any = None
                async for e in store.iter_events(start, all_keepers=all_keepers):
                    row = e.as_dict()
                    if fmt is ExportFormat.jsonl:
                        out.write(canonical_json(row) + "\n")
                    else:
                        if writer is None:
                            writer = csv.DictWriter(out, fieldnames=list(row))
                            writer.writeheader()
                        writer.writerow({**row, "payload": canonical_json(row["payload"])})
                    count += 1
        finally:
            if output:
                out.close()
        return count

    count = _run(go())
    if output:
        typer.echo(f"exported {count} events to {output}", err=True)


def audit_lock(
    config: ConfigOpt,
    hold: Annotated[float, typer.Option("--hold", help="Seconds to hold (0: until interrupted).")] = 0.0,
) -> None:
    """Take this config's account locks and hold them: checks no keeper runs, or reserves the accounts."""
    cfg = _config(config)

    async def go() -> None:
        from hedged.audit.lock import config_locks, hold_locks

        async with hold_locks(config_locks(cfg)) as held:
            for lock in held:
                typer.echo(f"holding {lock.account}")
            sys.stdout.flush()
            if hold > 0:
                await asyncio.sleep(hold)
            else:
                await asyncio.Event().wait()

    from hedged.config import ConfigError

    try:
        _run(go())
    except ConfigError as exc:
        _fail("; ".join(exc.problems), 2)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def status(
    config: ConfigOpt,
    as_json: JsonOpt = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")] = False,
    every: Annotated[float, typer.Option("--every", min=0.2, help="Seconds between refreshes with --watch.")] = 2.0,
) -> None:
    """Is the keeper alive, what may it do and why, how each hedge stands, open orders, the last error."""
    cfg = _config(config)

    async def once() -> Any:
        from hedged.status import collect

        async with await _open(cfg, read_only=True) as store:
            return await collect(cfg, store, datetime.now(UTC))

    def show(view: Any) -> None:
        from hedged.status import as_json as view_json
        from hedged.status import render

        if as_json:
            import json

            typer.echo(json.dumps(view_json(view), indent=2))
        else:
            typer.echo(render(view), nl=False)

    if not watch:
        show(_run(once()))
        return

    async def loop() -> None:
        from hedged.status import collect

        async with await _open(cfg, read_only=True) as store:
            while True:
                view = await collect(cfg, store, datetime.now(UTC))
                if sys.stdout.isatty() and not as_json:
                    typer.echo("\033[H\033[2J", nl=False)  # clear the screen, cursor home
                show(view)
                if not sys.stdout.isatty():
                    sys.stdout.flush()
                await asyncio.sleep(every)

    try:
        _run(loop())
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _command(config: Path, state_name: str, reason: str) -> None:
    cfg = _config(config)

    async def go() -> int:
        from hedged.audit.store import TradingState

        async with await _open(cfg, read_only=False) as store:
            event = await store.command(TradingState(state_name), via="cli", reason=reason)
            return event.id

    event_id = _run(go())
    typer.echo(f"requested {state_name} for keeper {cfg.keeper.name} (event {event_id})")


def halt(config: ConfigOpt, reason: ReasonOpt = "") -> None:
    """Ask the keeper to stop trading (cancels only) from its next cycle."""
    _command(config, "HALTED", reason)


def resume(config: ConfigOpt, reason: ReasonOpt = "") -> None:
    """Ask the keeper to trade normally again."""
    _command(config, "RUNNING", reason)


def reduce_only(config: ConfigOpt, reason: ReasonOpt = "") -> None:
    """Ask the keeper to place only orders that shrink the hedge."""
    _command(config, "REDUCING", reason)


def pause(config: ConfigOpt, reason: ReasonOpt = "") -> None:
    """Ask the keeper to place no new orders, leaving those on the book alone."""
    _command(config, "PAUSED", reason)


def register(app: typer.Typer) -> None:
    """Add the audit commands to the main `hedged` app."""
    db_app = typer.Typer(help="The audit database.", no_args_is_help=True)
    db_app.command("upgrade")(db_upgrade)
    app.add_typer(db_app, name="db")
    audit_app = typer.Typer(help="The audit log: verify, tail, export, lock.", no_args_is_help=True)
    audit_app.command("verify")(audit_verify)
    audit_app.command("prune")(audit_prune)
    audit_app.command("tail")(audit_tail)
    audit_app.command("export")(audit_export)
    audit_app.command("lock")(audit_lock)
    app.add_typer(audit_app, name="audit")
    app.command("status")(status)
    app.command("halt")(halt)
    app.command("pause")(pause)
    app.command("resume")(resume)
    app.command("reduce-only")(reduce_only)
