"""Alembic, driven from code: upgrade to head, report the revision, compare models with the database.

Why: operators run `hedged db upgrade` (or let the keeper do it on start) without an alembic.ini or a
particular working directory. The scripts live in the repository's `migrations/` folder, found relative
to this package (editable install), or in `hedged/migrations` when installed from a wheel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from hedged.audit.models import Base
from hedged.audit.store import AuditError, AuditSchemaError, async_url, create_engine, safe_url
from hedged.log import get_logger

log = get_logger(__name__)


def migrations_dir() -> Path:
    here = Path(__file__).resolve()
    # A source tree / editable install has <repo>/migrations; a wheel carries it as hedged/migrations
    # (a symlink to ../migrations in the repository, copied by package-data when the wheel is built).
    for candidate in (here.parents[2] / "migrations", here.parents[1] / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise AuditError(f"alembic migrations not found beside {here.parents[1]}")


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection, revision: str) -> str | None:
    command.upgrade(alembic_config(connection), revision)
    return _current(connection)


def _downgrade(connection: Connection, revision: str) -> str | None:
    command.downgrade(alembic_config(connection), revision)
    return _current(connection)


async def upgrade(url: str, revision: str = "head") -> str | None:
    """Bring the database to `revision`; returns the revision it is at afterwards."""
    engine = create_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            rev = await conn.run_sync(_upgrade, revision)
            await conn.commit()
    except AuditError:
        raise
    except Exception as exc:
        raise AuditError(f"upgrade of {safe_url(async_url(url))} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        await engine.dispose()
    log.info("audit.upgraded", url=safe_url(async_url(url)), revision=rev)
    return rev


async def downgrade(url: str, revision: str = "base") -> str | None:
    engine = create_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            rev = await conn.run_sync(_downgrade, revision)
            await conn.commit()
    finally:
        await engine.dispose()
    return rev


async def current_revision(url: str) -> str | None:
    engine = create_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()


async def ensure_schema(url: str, auto_upgrade: bool) -> None:
    """For the keeper's start: upgrade, or refuse to run on a database that is not at head."""
    if auto_upgrade:
        await upgrade(url)
        return
    current = await current_revision(url)
    head = head_revision()
    if current != head:
        raise AuditSchemaError(
            f"audit database is at revision {current or 'none'}, expected {head}: run `hedged db upgrade`"
        )


def _compare(connection: Connection) -> list[Any]:
    ctx = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


async def schema_diff(url: str) -> list[Any]:
    """Differences between the models and the database (empty when migrations and models agree)."""
    engine = create_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_compare)
    finally:
        await engine.dispose()
