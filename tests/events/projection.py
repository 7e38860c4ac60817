"""A test consumer of the event table: the reporting schema's event tables plus a small projection.

Run as a real process: `python -m tests.events.projection <port>`. Its handler records every application (so a
test can see duplicates and order), keeps per-aggregate totals (the "read model"), fails on a poison event until
the event is marked fixed, and can be slowed down (TEST_HANDLER_DELAY_MS) to be killed in the middle of a batch.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.models import SCHEMA, events, metadata
from services.reporting.settings import Settings
from shared.app import create_service_app
from shared.events.consumer import Subscription
from shared.events.contracts import EventEnvelope, event_contract

SUBSCRIPTION = "test-projection"
DDL = [
    "CREATE TABLE IF NOT EXISTS reporting.test_applied (seq bigserial PRIMARY KEY, event_id uuid NOT NULL,"
    " aggregate_id text NOT NULL, aggregate_seq bigint NOT NULL, amount bigint NOT NULL, position bigint NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    "CREATE TABLE IF NOT EXISTS reporting.test_totals (aggregate_id text PRIMARY KEY, total bigint NOT NULL,"
    " events bigint NOT NULL, last_seq bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS reporting.test_fixed (event_id uuid PRIMARY KEY)",
]
DROP = ["DROP TABLE IF EXISTS reporting.test_applied, reporting.test_totals, reporting.test_fixed"]


@event_contract("test.recorded", version=1)
class Recorded(BaseModel):
    amount: int
    poison: bool = False


IS_FIXED = text("SELECT 1 FROM reporting.test_fixed WHERE event_id = :e")
RECORD = text(
    "INSERT INTO reporting.test_applied (event_id, aggregate_id, aggregate_seq, amount, position)"
    " VALUES (:e, :a, :s, :m, :p)"
)
ADD_TO_TOTAL = text(
    "INSERT INTO reporting.test_totals (aggregate_id, total, events, last_seq) VALUES (:a, :m, 1, :s)"
    " ON CONFLICT (aggregate_id) DO UPDATE SET total = test_totals.total + :m, events = test_totals.events + 1,"
    " last_seq = :s"
)


async def handle(session: AsyncSession, event: EventEnvelope) -> None:
    recorded = event.parse(Recorded)
    delay = int(os.environ.get("TEST_HANDLER_DELAY_MS", "0"))
    if delay:
        await asyncio.sleep(delay / 1000)
    if recorded.poison:
        fixed = await session.scalar(IS_FIXED, {"e": event.event_id})
        if not fixed:
            raise RuntimeError(f"poison event {event.event_id}")
    await session.execute(
        RECORD,
        {
            "e": event.event_id,
            "a": event.aggregate_id,
            "s": event.aggregate_seq,
            "m": recorded.amount,
            "p": event.position,
        },
    )
    await session.execute(ADD_TO_TOTAL, {"a": event.aggregate_id, "m": recorded.amount, "s": event.aggregate_seq})


ADD_TOTALS = text(
    "INSERT INTO reporting.test_totals (aggregate_id, total, events, last_seq) VALUES (:a, :m, :n, :s)"
    " ON CONFLICT (aggregate_id) DO UPDATE SET total = test_totals.total + :m, events = test_totals.events + :n,"
    " last_seq = :s"
)


async def handle_batch(session: AsyncSession, batch: list[EventEnvelope]) -> None:
    """The same effect as `handle` on each event in order, in two bulk statements."""
    recorded = [(event, event.parse(Recorded)) for event in batch]
    if any(r.poison for _, r in recorded):
        raise RuntimeError("a poison event in the batch: let the per-event handler deal with it")
    await session.execute(
        RECORD,
        [
            {"e": e.event_id, "a": e.aggregate_id, "s": e.aggregate_seq, "m": r.amount, "p": e.position}
            for e, r in recorded
        ],
    )
    totals: dict[str, dict[str, int]] = {}
    for e, r in recorded:
        entry = totals.setdefault(e.aggregate_id, {"m": 0, "n": 0, "s": 0})
        entry.update(m=entry["m"] + r.amount, n=entry["n"] + 1, s=max(entry["s"], e.aggregate_seq))
    await session.execute(ADD_TOTALS, [{**v, "a": k} for k, v in totals.items()])


async def reset(session: AsyncSession, from_position: int) -> None:
    await session.execute(text("DELETE FROM reporting.test_applied WHERE position > :p"), {"p": from_position})
    await session.execute(text("DELETE FROM reporting.test_totals"))
    await session.execute(
        text(
            "INSERT INTO reporting.test_totals (aggregate_id, total, events, last_seq)"
            " SELECT aggregate_id, sum(amount), count(*), max(aggregate_seq) FROM reporting.test_applied GROUP BY aggregate_id"
        )
    )


def create_app() -> FastAPI:
    return create_service_app(
        name=SCHEMA,
        title="test projection",
        description="test consumer",
        settings=Settings(),
        migrations_dir=Path(__file__).resolve().parents[2] / "services" / "reporting" / "migrations",
        metadata=metadata,
        events=events,
        subscriptions=[
            Subscription(
                SUBSCRIPTION,
                "applications",
                frozenset({"test.recorded"}),
                handle,
                reset,
                batch_handler=None if os.environ.get("TEST_PER_EVENT_HANDLER") else handle_batch,
            )
        ],
    )


if __name__ == "__main__":
    uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
