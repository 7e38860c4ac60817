"""The applications service's schema, metadata and declarative base (domain models import from here)."""

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from shared.events.tables import event_tables
from shared.idempotency import idempotency_table
from shared.webhooks.outbound import webhook_tables

SCHEMA = "applications"
metadata = MetaData(schema=SCHEMA)


class Base(DeclarativeBase):
    metadata = metadata


idempotency_keys = idempotency_table(metadata)
events = event_tables(metadata)
webhooks = webhook_tables(metadata)
