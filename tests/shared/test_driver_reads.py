"""`fetch_one_statement`: a read of one statement through the driver (the whole fund's impact report), in no
transaction of its own (no BEGIN, none left open), its parameters bound by name; a connection that broke under it is discarded and the request answered
503, and the pool serves the next read."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import text

from shared.db import DriverStatement, create_engine, fetch_one_statement
from shared.problems import unexpected


async def test_one_statement_is_read_outside_a_transaction_with_its_parameters_by_name(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    statement = DriverStatement.compile(
        "SELECT CAST(:b AS int) - CAST(:a AS int) AS difference, CAST(:a AS int) AS a,"
        " current_setting('transaction_read_only') AS read_only"
    )
    try:
        assert statement.names == ("b", "a")
        rows = await fetch_one_statement(engine, statement, {"a": 2, "b": 7})
        assert [(r["difference"], r["a"], r["read_only"]) for r in rows] == [(5, 2, "off")]
        async with engine.connect() as conn:  # the pool's only connection: back in the pool, in no transaction
            assert not (await conn.get_raw_connection()).driver_connection.is_in_transaction()
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_a_connection_ended_under_the_statement_is_a_503_and_the_next_read_is_served(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    other = create_engine(database_url, pool_size=1, max_overflow=0)
    pid_of = DriverStatement.compile("SELECT pg_backend_pid() AS pid")
    try:
        pid = (await fetch_one_statement(engine, pid_of, {}))[0]["pid"]
        slow = asyncio.create_task(fetch_one_statement(engine, DriverStatement.compile("SELECT pg_sleep(5)"), {}))
        await asyncio.sleep(0.3)
        async with other.connect() as admin:
            assert (await admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})).scalar_one()
        with pytest.raises(Exception) as caught:  # whichever the driver raises: judged below
            await slow
        response = unexpected(caught.value, "GET", "/api/v1/reporting/impact")
        assert response.status_code == 503
        assert json.loads(bytes(response.body))["type"] == "/problems/database-unavailable"
        served = (await fetch_one_statement(engine, pid_of, {}))[0]["pid"]
        assert served != pid
    finally:
        await engine.dispose()
        await other.dispose()
