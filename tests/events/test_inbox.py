"""The inbox of a page applied on the fast path: every applied event's id, with its position, in the transaction
of the effect, so an event delivered again (a replay of the feed) is never applied twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.reporting.models import events as tables
from shared.events.consumer import Consumer, Subscription
from shared.events.contracts import EventEnvelope
from shared.events.feed import FeedPage
from tests.conftest import INTERNAL_SECRET


def event(position: int) -> EventEnvelope:
    return EventEnvelope(
        event_id=uuid.uuid4(),
        type="test.recorded",
        aggregate_type="test",
        aggregate_id=f"a{position % 2}",
        aggregate_seq=position,
        occurred_at=datetime.now(UTC),
        producer="applications",
        payload={},
        position=position,
    )


async def test_a_page_redelivered_after_a_replay_applies_only_its_new_events(engine: AsyncEngine) -> None:
    applied: list[uuid.UUID] = []

    async def one(session: AsyncSession, e: EventEnvelope) -> None:
        applied.append(e.event_id)

    async def many(session: AsyncSession, page: list[EventEnvelope]) -> None:
        applied.extend(e.event_id for e in page)

    name = f"test-inbox-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(
        Subscription(name, "applications", None, one, batch_handler=many),
        engine,
        tables,
        producer_url="http://unused",
        service_name="reporting",
        internal_secret=INTERNAL_SECRET,
    )
    first = [event(1), event(2), event(3)]
    try:
        await consumer._load_state()
        await consumer.apply_page(FeedPage(events=first, next_after=3, head=3, pruned_through=0))
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT event_id, position FROM reporting.event_inbox WHERE subscription = :s ORDER BY position"),
                {"s": name},
            )
            assert [tuple(r) for r in rows] == [(e.event_id, e.position) for e in first]
            # the feed replayed from the start: the same events come again, with one new
            await conn.execute(
                text("UPDATE reporting.event_subscriptions SET position = 0 WHERE name = :s"), {"s": name}
            )
            await conn.commit()
        await consumer._load_state()
        again = [*first, event(4)]
        await consumer.apply_page(FeedPage(events=again, next_after=4, head=4, pruned_through=0))
        assert applied == [e.event_id for e in again]  # each once
        async with engine.connect() as conn:
            count = await conn.scalar(
                text("SELECT count(*) FROM reporting.event_inbox WHERE subscription = :s"), {"s": name}
            )
            assert count == 4
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM reporting.event_inbox WHERE subscription = :s"), {"s": name})
            await conn.execute(text("DELETE FROM reporting.event_subscriptions WHERE name = :s"), {"s": name})
