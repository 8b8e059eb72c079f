"""Alembic environment for the audit store.

Used two ways: programmatically by hedged.audit.migrate (which hands us an open connection in
`config.attributes["connection"]`), or by the alembic CLI (`alembic -c migrations/alembic.ini upgrade
head`, URL from HEDGED_AUDIT_URL or sqlalchemy.url), in which case we open an async engine ourselves.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from hedged.audit.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    from hedged.audit.store import async_url, create_engine

    engine = create_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_configure)
            await conn.commit()
    finally:
        await engine.dispose()


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                          literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = os.environ.get("HEDGED_AUDIT_URL") or config.get_main_option("sqlalchemy.url") or ""
    if not url:
        raise SystemExit("set HEDGED_AUDIT_URL or sqlalchemy.url")
    asyncio.run(_run_async(url))


run()
