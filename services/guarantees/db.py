"""The guarantees service's schema, metadata and declarative base (domain models import from here)."""

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from shared.events.tables import event_tables
from shared.idempotency import idempotency_table

SCHEMA = "guarantees"
metadata = MetaData(schema=SCHEMA)


class Base(DeclarativeBase):
    metadata = metadata


idempotency_keys = idempotency_table(metadata)
events = event_tables(metadata)
