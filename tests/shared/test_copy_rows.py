"""`copy_rows`: rows inserted by COPY on the session's connection, in its transaction and in the order given."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import copy_rows, dumps_json, make_sessionmaker
from shared.events.tables import ENVELOPE_COLUMNS

COLUMNS = (*ENVELOPE_COLUMNS[:8], "payload")  # event_id ... producer, payload


def _row(aggregate: str, seq: int, amount: int) -> tuple[object, ...]:
    payload = dumps_json({"amount": amount, "note": "é"})
    return (uuid.uuid4(), "test.recorded", 1, "test", aggregate, seq, datetime.now(UTC), "applications", payload)


async def _stored(engine: AsyncEngine, aggregate: str) -> list[tuple[int, dict[str, object]]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT aggregate_seq, payload FROM applications.outbox WHERE aggregate_id = :a ORDER BY id"),
            {"a": aggregate},
        )
        return [(r.aggregate_seq, r.payload) for r in rows]


async def test_rows_are_inserted_in_the_order_given_and_only_when_the_transaction_commits(engine: AsyncEngine) -> None:
    aggregate = f"copy-{uuid.uuid4().hex[:8]}"
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        await copy_rows(session, "applications", "outbox", COLUMNS, [_row(aggregate, n, n * 10) for n in (3, 1, 2)])
        assert await _stored(engine, aggregate) == [], "not visible before the commit"
        seen = await session.execute(
            text("SELECT aggregate_seq FROM applications.outbox WHERE aggregate_id = :a ORDER BY id"), {"a": aggregate}
        )
        assert [r.aggregate_seq for r in seen] == [3, 1, 2], "ids (a sequence's defaults) follow the order given"
        await session.rollback()
    assert await _stored(engine, aggregate) == []
    async with sessionmaker() as session:
        await copy_rows(session, "applications", "outbox", COLUMNS, [_row(aggregate, 1, 10)])
        await session.commit()
    assert await _stored(engine, aggregate) == [(1, {"amount": 10, "note": "é"})]  # JSON text stored as jsonb


async def test_a_row_the_table_refuses_refuses_them_all(engine: AsyncEngine) -> None:
    aggregate = f"copy-{uuid.uuid4().hex[:8]}"
    twice = _row(aggregate, 1, 10)
    async with make_sessionmaker(engine)() as session:
        with pytest.raises(asyncpg.UniqueViolationError):
            await copy_rows(session, "applications", "outbox", COLUMNS, [_row(aggregate, 2, 20), twice, twice])
        await session.rollback()
    assert await _stored(engine, aggregate) == []
