"""Test fixtures: a real PostgreSQL, a fresh database migrated through Alembic, one rolled-back transaction a test.

The server is `TEST_DATABASE_URL` when set, else the one at 127.0.0.1:5432 when it answers, else the embedded
server (started under `.data/test-postgres`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from deploy.database import DATA_DIR, create_database, drop_database, resolve_server, stop_embedded
from deploy.migrate import migrate_all
from shared.db import create_engine

INTERNAL_SECRET = secrets.token_urlsafe(48)
os.environ["INTERNAL_SECRET"] = INTERNAL_SECRET


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server_url, embedded = resolve_server(DATA_DIR / "test-postgres")
    url = make_url(server_url).set(database=f"fisiq_test_{uuid.uuid4().hex[:8]}").render_as_string(hide_password=False)
    asyncio.run(create_database(url))
    try:
        migrate_all(url)
        yield url
    finally:
        asyncio.run(drop_database(url))
        if embedded is not None:
            stop_embedded(embedded)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=5, max_overflow=5, application_name="tests")
    yield eng
    await eng.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One outer transaction per test, rolled back at the end: sessions inside it use savepoints."""
    async with engine.connect() as conn:
        trans = await conn.begin()
        try:
            yield conn
        finally:
            await trans.rollback()
