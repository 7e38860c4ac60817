"""Events published inside `batched()`: written together on leaving the block, numbered per aggregate in the order
published, each payload validated against its contract; `emit()` (which answers no envelope) writes the same
rows as `publish()`, and refuses the same payloads."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.applications.models import events as applications_events
from shared.db import make_sessionmaker
from shared.events.outbox import batched, emit, publish
from tests.events.projection import Recorded


async def _rows(connection: AsyncConnection, aggregate: str) -> list[tuple[int, dict[str, object], str]]:
    rows = await connection.execute(
        text(
            "SELECT aggregate_seq, payload, type FROM applications.outbox WHERE aggregate_id = :a"
            " ORDER BY aggregate_seq"
        ),
        {"a": aggregate},
    )
    return [(r.aggregate_seq, r.payload, r.type) for r in rows]


async def test_emit_and_publish_in_a_batch_write_the_same_events_numbered_in_order(connection: AsyncConnection) -> None:
    aggregate = f"batch-{uuid.uuid4().hex[:8]}"
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        async with batched(session, applications_events):
            for amount in (1, 2, 3, 4):
                common = {"event_type": "test.recorded", "aggregate_type": "test", "aggregate_id": aggregate}
                if amount % 2:
                    await publish(session, applications_events, payload=Recorded(amount=amount), **common)
                else:
                    await emit(session, applications_events, payload={"amount": amount}, **common)
            assert await _rows(connection, aggregate) == []  # nothing written before the block ends
        await session.commit()
    assert await _rows(connection, aggregate) == [
        (1, {"amount": 1, "poison": False}, "test.recorded"),
        (2, {"amount": 2, "poison": False}, "test.recorded"),  # the contract's default filled in, as publish does
        (3, {"amount": 3, "poison": False}, "test.recorded"),
        (4, {"amount": 4, "poison": False}, "test.recorded"),
    ]


async def test_emit_refuses_a_payload_its_contract_refuses_in_a_batch_or_not(connection: AsyncConnection) -> None:
    aggregate = f"bad-{uuid.uuid4().hex[:8]}"
    common = {"event_type": "test.recorded", "aggregate_type": "test", "aggregate_id": aggregate}
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        with pytest.raises(ValidationError):
            async with batched(session, applications_events):
                await emit(session, applications_events, payload={"amount": "not a number"}, **common)
        with pytest.raises(ValidationError):
            await emit(session, applications_events, payload={"amount": "not a number"}, **common)
        await session.rollback()
    assert await _rows(connection, aggregate) == []
