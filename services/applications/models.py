"""Tables of the applications service, all in its own `applications` schema."""

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from shared.events.tables import event_tables
from shared.idempotency import idempotency_table

SCHEMA = "applications"
metadata = MetaData(schema=SCHEMA)


class Base(DeclarativeBase):
    metadata = metadata


idempotency_keys = idempotency_table(metadata)
events = event_tables(metadata)
