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


async def handle(session: AsyncSession, event: EventEnvelope) -> None:
    recorded = event.parse(Recorded)
    delay = int(os.environ.get("TEST_HANDLER_DELAY_MS", "0"))
    if delay:
        await asyncio.sleep(delay / 1000)
    if recorded.poison:
        fixed = await session.scalar(
            text("SELECT 1 FROM reporting.test_fixed WHERE event_id = :e"), {"e": event.event_id}
        )
        if not fixed:
            raise RuntimeError(f"poison event {event.event_id}")
    await session.execute(
        text(
            "INSERT INTO reporting.test_applied (event_id, aggregate_id, aggregate_seq, amount, position)"
            " VALUES (:e, :a, :s, :m, :p)"
        ),
        {
            "e": event.event_id,
            "a": event.aggregate_id,
            "s": event.aggregate_seq,
            "m": recorded.amount,
            "p": event.position,
        },
    )
    await session.execute(
        text(
            "INSERT INTO reporting.test_totals (aggregate_id, total, events, last_seq) VALUES (:a, :m, 1, :s)"
            " ON CONFLICT (aggregate_id) DO UPDATE SET total = test_totals.total + :m, events = test_totals.events + 1,"
            " last_seq = :s"
        ),
        {"a": event.aggregate_id, "m": recorded.amount, "s": event.aggregate_seq},
    )


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
        subscriptions=[Subscription(SUBSCRIPTION, "applications", frozenset({"test.recorded"}), handle, reset)],
    )


if __name__ == "__main__":
    uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
