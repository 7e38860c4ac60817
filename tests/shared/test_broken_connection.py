"""A connection PostgreSQL ended in the middle of an operation can surface from asyncpg as an `InternalClientError`
("cannot switch to state 12; another operation (2) is in progress") instead of a closed connection. Seen in
`make load` right after a PostgreSQL restart: SQLAlchemy put such a connection back in the pool and every request
that drew it was answered 500. Now it is discarded, the request is a 503 to retry, and the next one is served."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.db import create_engine
from shared.problems import unexpected


@pytest.fixture
def broken_once(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The next statement prepared fails as a connection cut mid-operation does; the ids of connections it hit."""
    hit: list[int] = []
    prepare = asyncpg.connection.Connection.prepare

    async def failing(self: asyncpg.Connection, query: str, *args: Any, **kw: Any) -> Any:
        if not hit and "broken" in query:
            hit.append(id(self))
            raise asyncpg.exceptions.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            )
        return await prepare(self, query, *args, **kw)

    monkeypatch.setattr(asyncpg.connection.Connection, "prepare", failing)
    yield hit


async def test_a_connection_broken_mid_operation_is_discarded_and_answered_503(
    database_url: str, broken_once: list[int]
) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        with pytest.raises(DBAPIError) as caught:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 'broken'"))
        assert caught.value.connection_invalidated  # not put back in the pool as it was
        response = unexpected(caught.value, "GET", "/api/v1/portfolio/loans")
        assert response.status_code == 503
        assert json.loads(bytes(response.body))["type"] == "/problems/database-unavailable"

        # the only pooled connection was the broken one: the next request gets a new, working connection
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert id(raw.driver_connection) != broken_once[0]
            assert (await conn.execute(text("SELECT 'broken' || 1"))).scalar_one() == "broken1"
    finally:
        await engine.dispose()
