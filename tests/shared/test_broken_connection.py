"""A connection PostgreSQL ended in the middle of an operation can surface from asyncpg as an `InternalClientError`
("cannot switch to state 12; another operation (2) is in progress") instead of a closed connection. Seen in
`make load` right after a PostgreSQL restart: SQLAlchemy put such a connection back in the pool and every request
that drew it was answered 500. Now it is discarded, the request is a 503 to retry, and the next one is served."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.db import create_engine
from shared.peers import InternalClient
from shared.problems import ServiceUnavailable, unexpected


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


async def test_a_peer_dying_while_the_connection_opens_is_a_503_not_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    """anyio can ask the just-closed socket for its peer's address (`'NoneType' object has no attribute
    'getpeername'`) when the peer is killed mid-connect: the caller gets the same 503 as for a refused connection."""

    async def dying(self: httpx.AsyncClient, *args: Any, **kw: Any) -> httpx.Response:
        raise AttributeError("'NoneType' object has no attribute 'getpeername'")

    monkeypatch.setattr(httpx.AsyncClient, "request", dying)
    client = InternalClient(secret="s" * 32, caller="applications", purpose="screening")
    with pytest.raises(ServiceUnavailable) as caught:
        await client.get("portfolio", "/internal/fx/cad-equivalent", {})
    assert caught.value.status == 503 and "did not answer" in str(caught.value.detail)

    async def buggy(self: httpx.AsyncClient, *args: Any, **kw: Any) -> httpx.Response:
        raise AttributeError("'Foo' object has no attribute 'bar'")

    monkeypatch.setattr(httpx.AsyncClient, "request", buggy)
    with pytest.raises(AttributeError):  # a bug of ours is not disguised as an unavailable peer
        await client.get("portfolio", "/internal/fx/cad-equivalent", {})


async def test_a_pooled_connection_whose_backend_ended_is_replaced_when_checked_out(database_url: str) -> None:
    """PostgreSQL restarted, or the backend terminated, while a connection sat in the pool: the checkout's ping
    finds it dead and the pool hands out a new one, so the request is served, not answered 503."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    other = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with engine.connect() as conn:  # alive: the same connection, kept
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() == pid
        async with other.connect() as admin:
            assert (await admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})).scalar_one()
        async with engine.connect() as conn:
            served = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert served != pid
    finally:
        await engine.dispose()
        await other.dispose()
