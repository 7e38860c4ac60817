"""Events published inside `batched()`: written together on leaving the block, numbered per aggregate in the order
published, each payload validated against its contract; `emit()` (which answers no envelope) writes the same
rows as `publish()`, and refuses the same payloads; a `sequenced` batch takes its feed positions itself."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.applications.models import events as applications_events
from shared.db import make_sessionmaker
from shared.events.outbox import batched, emit, publish, sequence_batch
from tests.events.conftest import EventsPlatform
from tests.events.projection import Recorded
from tests.events.test_operations import read_feed


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


async def _feed(engine: AsyncEngine) -> list[tuple[int, str, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT position, aggregate_id, aggregate_seq FROM applications.outbox ORDER BY position NULLS LAST")
        )
        return [(r.position, r.aggregate_id, r.aggregate_seq) for r in rows]


async def _head(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT position FROM applications.outbox_head")) or 0)


async def test_a_sequenced_batch_takes_its_positions_after_every_event_committed_before_it(
    engine: AsyncEngine, platform: EventsPlatform
) -> None:
    """The batch's events reach the feed at its commit, numbered after an event of the same aggregate committed
    before them but not yet sequenced; the feed's head stays locked until the commit, so the sequencer stamps what
    commits meanwhile after them; the sequencer has nothing of theirs left to stamp."""
    sessionmaker = make_sessionmaker(engine)
    common = {"event_type": "test.recorded", "aggregate_type": "test"}
    async with sessionmaker() as early:
        await emit(early, applications_events, aggregate_id="a", payload={"amount": 1}, **common)
        await early.commit()  # committed, not sequenced (no sequencer runs here)
    async with sessionmaker() as session:
        async with batched(session, applications_events, sequenced=True):
            await emit(session, applications_events, aggregate_id="a", payload={"amount": 2}, **common)
            await emit(session, applications_events, aggregate_id="b", payload={"amount": 3}, **common)
        assert await _feed(engine) == [(None, "a", 1)], "nothing of the batch is seen before its commit"
        async with sessionmaker() as late:
            await emit(late, applications_events, aggregate_id="c", payload={"amount": 4}, **common)
            await late.commit()
        sequencer = asyncio.create_task(sequence_batch(engine, applications_events))
        await asyncio.sleep(0.3)
        assert not sequencer.done(), "the sequencer waits for the batch's commit (the head is locked)"
        await session.commit()
    assert await sequencer == 1  # the late event only: the batch's were stamped by the batch
    assert await _feed(engine) == [(1, "a", 1), (2, "a", 2), (3, "b", 1), (4, "c", 1)]
    assert await _head(engine) == 4
    page = await read_feed(engine, applications_events, after=0, limit=10, types=None, subscription=None)
    assert [e.payload["amount"] for e in page.events] == [1, 2, 3, 4]


async def test_a_sequenced_batch_rolled_back_leaves_the_feed_and_its_head_as_they_were(
    engine: AsyncEngine, platform: EventsPlatform
) -> None:
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        async with batched(session, applications_events, sequenced=True):
            await emit(
                session,
                applications_events,
                event_type="test.recorded",
                aggregate_type="test",
                aggregate_id="z",
                payload={"amount": 5},
            )
        await session.rollback()
    assert await _feed(engine) == [] and await _head(engine) == 0
    assert await sequence_batch(engine, applications_events) == 0
