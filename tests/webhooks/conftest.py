"""Fixtures for the webhook kernel: its tables in a throw-away schema (built by its migration helper), real commits."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.webhooks import migration_v1
from shared.webhooks.outbound import WebhookTables, webhook_tables


def run_migration(conn: Connection, schema: str, *, up: bool = True) -> None:
    with Operations.context(MigrationContext.configure(conn)):
        if up:
            migration_v1.upgrade(schema)
        else:
            migration_v1.downgrade(schema)


@pytest.fixture
async def tables(engine: AsyncEngine) -> AsyncIterator[WebhookTables]:
    schema = f"webhooks_test_{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await conn.run_sync(run_migration, schema)
    try:
        yield webhook_tables(MetaData(schema=schema))
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
