"""The audit store: hash-chained events, write-ahead orders, one keeper per account.

Import from the submodules (hedged.audit.store, .lock, .migrate); `open_store` below is the keeper's
one-call start. This package file stays light so `hedged --help` does not import SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hedged.audit.store import AuditStore
    from hedged.config import Config


async def open_store(config: Config, *, secrets: tuple[str, ...] = (), read_only: bool = False) -> AuditStore:
    """Upgrade the schema (unless `[audit] auto_upgrade = false`, then require head) and open the store.

    Registers the venues' API secrets for redaction and allows venue names as payload keys.
    Raises AuditSchemaError / AuditError (one-line messages) when the database is not usable.
    """
    from hedged.audit.migrate import ensure_schema
    from hedged.audit.store import AuditStore

    url = config.audit_url
    if not read_only:
        await ensure_schema(url, config.audit.auto_upgrade)
    found: list[str] = list(secrets)
    for venue in config.venues.values():
        try:
            found.extend(v.get_secret_value() for v in venue.credentials(config.base_dir).values())
        except Exception:  # missing secrets are the keeper's error to report, not ours
            continue
    return await AuditStore.open(
        url, config.keeper.name, secrets=found, allow_keys=config.venues.keys(),
        write_timeout=config.audit.write_timeout, read_only=read_only, head_file=config.head_file,
    )
