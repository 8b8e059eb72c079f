"""The audit tables (SQLAlchemy 2). One schema for SQLite and Postgres; alembic owns its evolution.

`events` is the append-only, hash-chained record of everything. `orders`, `fills` and `cycles` are
projections written in the same transaction as their event, so they can be queried (reconciliation,
rate caps, status) without replaying the log. Quantities are exact: NUMERIC on Postgres, decimal text
on SQLite (whose NUMERIC affinity would turn them into floats).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from hedged.audit.chain import decimal_str

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Dec(TypeDecorator[Decimal]):
    """Exact decimal: NUMERIC on Postgres, plain-notation text on SQLite."""

    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(64))
        return dialect.type_descriptor(sa.Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            if isinstance(value, float):
                raise TypeError("float refused for an exact column; pass a Decimal")
            value = Decimal(value)
        return decimal_str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite stores them naive, so we put the zone back on read."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: audit times are UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments INTEGER PRIMARY KEY; Postgres gets a BIGINT identity.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    keeper: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    cycle: Mapped[int | None] = mapped_column(sa.BigInteger)
    kind: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    venue: Mapped[str | None] = mapped_column(sa.String(64))
    symbol: Mapped[str | None] = mapped_column(sa.String(64))
    asset: Mapped[str | None] = mapped_column(sa.String(32))
    payload: Mapped[Any] = mapped_column(sa.JSON, nullable=False)
    prev_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)

    __table_args__ = (
        # The chain can never fork: one successor per (keeper, previous hash).
        sa.UniqueConstraint("keeper", "prev_hash"),
        sa.UniqueConstraint("hash"),
        sa.Index(None, "keeper", "id"),
        sa.Index(None, "keeper", "kind", "id"),
    )


class Order(Base):
    __tablename__ = "orders"

    client_order_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    keeper: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    venue: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    symbol: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    side: Mapped[str] = mapped_column(sa.String(4), nullable=False)
    amount: Mapped[Decimal] = mapped_column(Dec(), nullable=False)
    price: Mapped[Decimal | None] = mapped_column(Dec())
    reduce_only: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    post_only: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    exchange_order_id: Mapped[str | None] = mapped_column(sa.String(128))
    filled: Mapped[Decimal] = mapped_column(Dec(), nullable=False)
    average: Mapped[Decimal | None] = mapped_column(Dec())
    fee: Mapped[Decimal | None] = mapped_column(Dec())
    fee_currency: Mapped[str | None] = mapped_column(sa.String(32))
    notional_usd: Mapped[Decimal | None] = mapped_column(Dec())
    reason: Mapped[str] = mapped_column(sa.Text, nullable=False)
    cycle: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)

    __table_args__ = (
        sa.Index(None, "keeper", "status"),
        sa.Index(None, "keeper", "created_at"),
        sa.Index(None, "venue", "exchange_order_id"),
    )


class Fill(Base):
    __tablename__ = "fills"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    keeper: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    venue: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    trade_id: Mapped[str] = mapped_column(sa.String(128), nullable=False)
    client_order_id: Mapped[str | None] = mapped_column(sa.String(64))
    symbol: Mapped[str | None] = mapped_column(sa.String(64))
    side: Mapped[str | None] = mapped_column(sa.String(4))
    amount: Mapped[Decimal] = mapped_column(Dec(), nullable=False)
    price: Mapped[Decimal] = mapped_column(Dec(), nullable=False)
    fee: Mapped[Decimal | None] = mapped_column(Dec())
    fee_currency: Mapped[str | None] = mapped_column(sa.String(32))
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)

    __table_args__ = (
        sa.UniqueConstraint("venue", "trade_id"),
        sa.Index(None, "client_order_id"),
    )


class Cycle(Base):
    __tablename__ = "cycles"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    keeper: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    cycle: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    venue: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    symbol: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    exposure: Mapped[Decimal | None] = mapped_column(Dec())
    hedge: Mapped[Decimal | None] = mapped_column(Dec())
    inflight: Mapped[Decimal | None] = mapped_column(Dec())
    target: Mapped[Decimal | None] = mapped_column(Dec())
    drift: Mapped[Decimal | None] = mapped_column(Dec())
    mark: Mapped[Decimal | None] = mapped_column(Dec())
    band: Mapped[Decimal | None] = mapped_column(Dec())
    funding_rate: Mapped[Decimal | None] = mapped_column(Dec())
    basis: Mapped[Decimal | None] = mapped_column(Dec())
    action: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    reasons: Mapped[Any] = mapped_column(sa.JSON, nullable=False)

    __table_args__ = (
        sa.UniqueConstraint("keeper", "cycle", "venue", "symbol"),
        sa.Index(None, "keeper", "venue", "symbol", "id"),
    )
