"""audit tables: events (hash chain), orders, fills, cycles

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Types are spelled out here rather than imported from hedged.audit.models, so this file keeps meaning
the same thing when the models change later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Exact decimals: NUMERIC on Postgres, text on SQLite (NUMERIC affinity there means float).
DEC = sa.Numeric().with_variant(sa.String(64), "sqlite")
TS = sa.DateTime(timezone=True)
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("ts", TS, nullable=False),
        sa.Column("keeper", sa.String(64), nullable=False),
        sa.Column("cycle", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("venue", sa.String(64), nullable=True),
        sa.Column("symbol", sa.String(64), nullable=True),
        sa.Column("asset", sa.String(32), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("keeper", "prev_hash", name="uq_events_keeper_prev_hash"),
        sa.UniqueConstraint("hash", name="uq_events_hash"),
    )
    op.create_index("ix_events_keeper_id", "events", ["keeper", "id"])
    op.create_index("ix_events_keeper_kind_id", "events", ["keeper", "kind", "id"])

    op.create_table(
        "orders",
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("keeper", sa.String(64), nullable=False),
        sa.Column("venue", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("amount", DEC, nullable=False),
        sa.Column("price", DEC, nullable=True),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("post_only", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("exchange_order_id", sa.String(128), nullable=True),
        sa.Column("filled", DEC, nullable=False),
        sa.Column("average", DEC, nullable=True),
        sa.Column("fee", DEC, nullable=True),
        sa.Column("fee_currency", sa.String(32), nullable=True),
        sa.Column("notional_usd", DEC, nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("cycle", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("client_order_id", name="pk_orders"),
    )
    op.create_index("ix_orders_keeper_status", "orders", ["keeper", "status"])
    op.create_index("ix_orders_keeper_created_at", "orders", ["keeper", "created_at"])
    op.create_index("ix_orders_venue_exchange_order_id", "orders", ["venue", "exchange_order_id"])

    op.create_table(
        "fills",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("keeper", sa.String(64), nullable=False),
        sa.Column("venue", sa.String(64), nullable=False),
        sa.Column("trade_id", sa.String(128), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=True),
        sa.Column("symbol", sa.String(64), nullable=True),
        sa.Column("side", sa.String(4), nullable=True),
        sa.Column("amount", DEC, nullable=False),
        sa.Column("price", DEC, nullable=False),
        sa.Column("fee", DEC, nullable=True),
        sa.Column("fee_currency", sa.String(32), nullable=True),
        sa.Column("ts", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fills"),
        sa.UniqueConstraint("venue", "trade_id", name="uq_fills_venue_trade_id"),
    )
    op.create_index("ix_fills_client_order_id", "fills", ["client_order_id"])

    op.create_table(
        "cycles",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("keeper", sa.String(64), nullable=False),
        sa.Column("cycle", sa.BigInteger(), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("venue", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        *(sa.Column(name, DEC, nullable=True) for name in (
            "exposure", "hedge", "inflight", "target", "drift", "mark", "band", "funding_rate", "basis",
        )),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cycles"),
        sa.UniqueConstraint("keeper", "cycle", "venue", "symbol", name="uq_cycles_keeper_cycle_venue_symbol"),
    )
    op.create_index("ix_cycles_keeper_venue_symbol_id", "cycles", ["keeper", "venue", "symbol", "id"])


def downgrade() -> None:
    op.drop_table("cycles")
    op.drop_table("fills")
    op.drop_table("orders")
    op.drop_table("events")
