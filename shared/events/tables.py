"""The event tables every service keeps in its own schema (producer side and consumer side)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID


@dataclass(frozen=True)
class EventTables:
    schema: str
    outbox: Table
    outbox_aggregates: Table
    outbox_head: Table
    outbox_subscribers: Table
    subscriptions: Table
    inbox: Table
    retries: Table


def event_tables(metadata: MetaData) -> EventTables:
    schema = metadata.schema
    assert schema, "event tables live in the service's own schema"
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
        Column("type", String(100), nullable=False),
        Column("schema_version", Integer, nullable=False),
        Column("aggregate_type", String(50), nullable=False),
        Column("aggregate_id", String(100), nullable=False),
        Column("aggregate_seq", BigInteger, nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("producer", String(50), nullable=False),
        Column("request_id", String(128)),
        Column("payload", JSONB, nullable=False),
        # stamped by the sequencer after commit, in commit order: the feed's only ordering
        Column("position", BigInteger, unique=True),
        Column("sequenced_at", DateTime(timezone=True)),
        Index("ix_outbox_unsequenced", "id", postgresql_where=text("position IS NULL")),
        Index("ix_outbox_occurred_at", "occurred_at"),
    )
    outbox_aggregates = Table(
        "outbox_aggregates",
        metadata,
        Column("aggregate_type", String(50), nullable=False),
        Column("aggregate_id", String(100), nullable=False),
        Column("last_seq", BigInteger, nullable=False),
        PrimaryKeyConstraint("aggregate_type", "aggregate_id"),
    )
    outbox_head = Table(
        "outbox_head",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("position", BigInteger, nullable=False),
        Column("pruned_through", BigInteger, nullable=False, server_default="0"),
        CheckConstraint("id = 1", name="ck_outbox_head_single_row"),
    )
    outbox_subscribers = Table(
        "outbox_subscribers",
        metadata,
        Column("subscription", String(100), primary_key=True),
        Column("position", BigInteger, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    subscriptions = Table(
        "event_subscriptions",
        metadata,
        Column("name", String(100), primary_key=True),
        Column("producer", String(50), nullable=False),
        Column("position", BigInteger, nullable=False, server_default="0"),
        Column("applied_count", BigInteger, nullable=False, server_default="0"),
        Column("failed_count", BigInteger, nullable=False, server_default="0"),
        Column("last_applied_at", DateTime(timezone=True)),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    inbox = Table(
        "event_inbox",
        metadata,
        Column("subscription", String(100), nullable=False),
        Column("event_id", UUID(as_uuid=True), nullable=False),
        Column("position", BigInteger, nullable=False),
        Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("subscription", "event_id"),
        Index("ix_event_inbox_position", "subscription", "position"),
    )
    retries = Table(
        "event_retries",
        metadata,
        Column("subscription", String(100), nullable=False),
        Column("event_id", UUID(as_uuid=True), nullable=False),
        Column("position", BigInteger, nullable=False),
        Column("aggregate_type", String(50), nullable=False),
        Column("aggregate_id", String(100), nullable=False),
        Column("aggregate_seq", BigInteger, nullable=False),
        Column("envelope", JSONB, nullable=False),
        # retrying: failed, will be tried again at next_attempt_at; parked: gave up after N attempts, waits for an
        # operator; held: an earlier event of the same aggregate is retrying or parked, so this one waits its turn
        Column("status", String(10), nullable=False),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("next_attempt_at", DateTime(timezone=True)),
        Column("last_error", Text),
        Column("first_failed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("subscription", "event_id"),
        CheckConstraint("status IN ('retrying', 'parked', 'held')", name="ck_event_retries_status"),
        Index("ix_event_retries_aggregate", "subscription", "aggregate_type", "aggregate_id", "aggregate_seq"),
    )
    return EventTables(
        schema, outbox, outbox_aggregates, outbox_head, outbox_subscribers, subscriptions, inbox, retries
    )


# an event's columns as its envelope names them (`EventEnvelope`), its payload aside
ENVELOPE_COLUMNS = (
    "event_id",
    "type",
    "schema_version",
    "aggregate_type",
    "aggregate_id",
    "aggregate_seq",
    "occurred_at",
    "producer",
    "request_id",
    "position",
)
