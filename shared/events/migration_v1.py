"""Migration step that creates the event tables in one service's schema (frozen: never edit; add a v2)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


def upgrade(schema: str) -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("aggregate_type", sa.String(50), nullable=False),
        sa.Column("aggregate_id", sa.String(100), nullable=False),
        sa.Column("aggregate_seq", sa.BigInteger, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("producer", sa.String(50), nullable=False),
        sa.Column("request_id", sa.String(128)),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column("position", sa.BigInteger, unique=True),
        sa.Column("sequenced_at", sa.DateTime(timezone=True)),
        schema=schema,
    )
    op.create_index(
        "ix_outbox_unsequenced", "outbox", ["id"], schema=schema, postgresql_where=sa.text("position IS NULL")
    )
    op.create_index("ix_outbox_occurred_at", "outbox", ["occurred_at"], schema=schema)
    op.create_table(
        "outbox_aggregates",
        sa.Column("aggregate_type", sa.String(50), nullable=False),
        sa.Column("aggregate_id", sa.String(100), nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("aggregate_type", "aggregate_id"),
        schema=schema,
    )
    op.create_table(
        "outbox_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("pruned_through", sa.BigInteger, nullable=False, server_default="0"),
        sa.CheckConstraint("id = 1", name="ck_outbox_head_single_row"),
        schema=schema,
    )
    op.execute(f'INSERT INTO "{schema}".outbox_head (id, position, pruned_through) VALUES (1, 0, 0)')  # noqa: S608
    op.create_table(
        "outbox_subscribers",
        sa.Column("subscription", sa.String(100), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
    op.create_table(
        "event_subscriptions",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("producer", sa.String(50), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("applied_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failed_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_applied_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
    op.create_table(
        "event_inbox",
        sa.Column("subscription", sa.String(100), nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("subscription", "event_id"),
        schema=schema,
    )
    op.create_index("ix_event_inbox_position", "event_inbox", ["subscription", "position"], schema=schema)
    op.create_table(
        "event_retries",
        sa.Column("subscription", sa.String(100), nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("aggregate_type", sa.String(50), nullable=False),
        sa.Column("aggregate_id", sa.String(100), nullable=False),
        sa.Column("aggregate_seq", sa.BigInteger, nullable=False),
        sa.Column("envelope", postgresql.JSONB, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("subscription", "event_id"),
        sa.CheckConstraint("status IN ('retrying', 'parked', 'held')", name="ck_event_retries_status"),
        schema=schema,
    )
    op.create_index(
        "ix_event_retries_aggregate",
        "event_retries",
        ["subscription", "aggregate_type", "aggregate_id", "aggregate_seq"],
        schema=schema,
    )


def downgrade(schema: str) -> None:
    for table in (
        "event_retries",
        "event_inbox",
        "event_subscriptions",
        "outbox_subscribers",
        "outbox_head",
        "outbox_aggregates",
        "outbox",
    ):
        op.drop_table(table, schema=schema)
