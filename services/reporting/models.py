"""Tables of the reporting service, all in its own `reporting` schema."""

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from shared.events.tables import event_tables
from shared.idempotency import idempotency_table

SCHEMA = "reporting"
metadata = MetaData(schema=SCHEMA)


class Base(DeclarativeBase):
    metadata = metadata


idempotency_keys = idempotency_table(metadata)
events = event_tables(metadata)
