"""Producer side: `publish()` writes an event in the caller's transaction; the sequencer stamps feed positions.

Why a sequencer: a reader that tails the outbox by its `id` skips a row whose id was taken before a higher one
that committed first (the higher one is read, the reader moves past, then the lower one commits). So ids only
order rows; the feed's order is `position`, stamped after commit by one sequencer transaction at a time (the
`outbox_head` row lock serializes them). A sequencer only sees committed rows, and a batch's positions become
visible all at once, before any later batch's: a reader of `position > p` can never skip a row.

Per-aggregate order: `publish()` takes the aggregate's counter row lock (`outbox_aggregates`) before inserting, so
events of one aggregate are numbered 1, 2, 3... in their commit order, and their outbox ids follow the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel
from sqlalchemy import TextClause, delete, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.events.contracts import EventEnvelope, contract_for
from shared.events.tables import EventTables
from shared.logging import request_id_var

log = logging.getLogger("shared.events.outbox")


def outbox_channel(schema: str) -> str:
    return f"fisiq_outbox_{schema}"


def feed_channel(schema: str) -> str:
    return f"fisiq_feed_{schema}"


async def publish(
    session: AsyncSession,
    tables: EventTables,
    *,
    event_type: str,
    aggregate_type: str,
    aggregate_id: str,
    payload: BaseModel | dict[str, Any],
    version: int = 1,
) -> EventEnvelope:
    """Write an event in the session's transaction: it exists if and only if the change it announces commits.

    Takes the aggregate's counter lock until commit; a transaction announcing changes to several aggregates
    should publish them in a stable order (e.g. sorted ids), as with any row locks, or risk deadlocks.
    """
    contract = contract_for(event_type, version)
    data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
    body = contract.model_validate(data).model_dump(mode="json")
    event_id, occurred_at, request_id = uuid.uuid4(), datetime.now(UTC), request_id_var.get()
    # one round trip: take the aggregate's next number (and its lock) and write the event
    seq = await session.scalar(
        _insert_statement(tables.schema),
        {
            "event_id": event_id,
            "type": event_type,
            "version": version,
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "occurred_at": occurred_at,
            "producer": tables.schema,
            "request_id": request_id,
            "payload": json.dumps(body),
        },
    )
    assert seq is not None
    # delivered at commit, and only then; wakes the sequencer at once instead of at its next poll (once a transaction)
    transaction = session.get_transaction()
    notified: set[int] = session.info.setdefault("fisiq_events_notified", set())
    if transaction is not None and id(transaction) not in notified:
        notified.add(id(transaction))
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": outbox_channel(tables.schema)})
    return EventEnvelope(
        event_id=event_id,
        type=event_type,
        schema_version=version,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_seq=seq,
        occurred_at=occurred_at,
        producer=tables.schema,
        request_id=request_id,
        payload=body,
    )


@functools.cache
def _insert_statement(schema: str) -> TextClause:
    return text(
        f"""
        WITH seq AS (
            INSERT INTO "{schema}".outbox_aggregates AS a (aggregate_type, aggregate_id, last_seq)
            VALUES (:aggregate_type, :aggregate_id, 1)
            ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET last_seq = a.last_seq + 1
            RETURNING last_seq
        )
        INSERT INTO "{schema}".outbox (event_id, type, schema_version, aggregate_type, aggregate_id, aggregate_seq,
                                       occurred_at, producer, request_id, payload)
        SELECT :event_id, :type, :version, :aggregate_type, :aggregate_id, seq.last_seq,
               :occurred_at, :producer, :request_id, CAST(:payload AS jsonb)
        FROM seq
        RETURNING aggregate_seq
        """  # noqa: S608 - the schema is the service's own constant
    )


async def sequence_batch(engine: AsyncEngine, tables: EventTables, batch_size: int = 2000) -> int:
    """Stamp positions on committed, unsequenced events, in id order. Answers how many were stamped."""
    outbox, head = tables.outbox, tables.outbox_head
    async with engine.begin() as conn:
        current = await conn.scalar(select(head.c.position).where(head.c.id == 1).with_for_update())
        assert current is not None, "outbox_head is missing its row: run the migrations"
        ids = (
            await conn.scalars(
                select(outbox.c.id).where(outbox.c.position.is_(None)).order_by(outbox.c.id).limit(batch_size)
            )
        ).all()
        if not ids:
            return 0
        await conn.execute(
            text(
                f'UPDATE "{tables.schema}".outbox AS o SET position = :base + v.n, sequenced_at = now() '  # noqa: S608
                "FROM unnest(CAST(:ids AS bigint[])) WITH ORDINALITY AS v(id, n) WHERE o.id = v.id"
            ),
            {"base": current, "ids": list(ids)},
        )
        await conn.execute(update(head).where(head.c.id == 1).values(position=current + len(ids)))
        await conn.execute(
            text("SELECT pg_notify(:channel, :head)"),
            {"channel": feed_channel(tables.schema), "head": str(current + len(ids))},
        )
    return len(ids)


async def prune(engine: AsyncEngine, tables: EventTables, *, retention: timedelta, subscribers: list[str]) -> int:
    """Delete events older than the retention that every declared subscriber has already consumed."""
    outbox, head, acks = tables.outbox, tables.outbox_head, tables.outbox_subscribers
    async with engine.begin() as conn:
        known = {r.subscription: r.position for r in await conn.execute(select(acks.c.subscription, acks.c.position))}
        everyone = set(subscribers) | set(known)
        consumed = min((known.get(s, 0) for s in everyone), default=None)
        cutoff = datetime.now(UTC) - retention
        query = delete(outbox).where(outbox.c.position.is_not(None), outbox.c.occurred_at < cutoff)
        if consumed is not None:
            query = query.where(outbox.c.position <= consumed)
        result = await conn.execute(query.returning(outbox.c.position))
        positions = [p for (p,) in result]
        if positions:
            await conn.execute(
                update(head)
                .where(head.c.id == 1)
                .values(pruned_through=func.greatest(head.c.pruned_through, max(positions)))
            )
        # the consumer side's dedupe record need not outlive the events it guards against
        await conn.execute(delete(tables.inbox).where(tables.inbox.c.applied_at < cutoff))
    return len(positions)


def asyncpg_dsn(sqlalchemy_url: str) -> dict[str, Any]:
    url = make_url(sqlalchemy_url)
    host = url.query.get("host") or url.host
    return {
        "user": url.username,
        "password": url.password,
        "host": host if isinstance(host, str) else None,
        "port": url.port,
        "database": url.database,
    }


@contextlib.asynccontextmanager
async def listening(database_url: str, channels: dict[str, Callable[[str], None]]) -> AsyncIterator[None]:
    """Keep a LISTEN connection open (reconnecting after failures) calling `channels[name](payload)`."""

    async def keep_listening() -> None:
        delay = 0.5
        while True:
            try:
                conn = await asyncpg.connect(**asyncpg_dsn(database_url))
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _conn, done=closed: done.set())
                try:
                    for channel, callback in channels.items():
                        await conn.add_listener(channel, lambda _c, _pid, _ch, payload, cb=callback: cb(payload))
                    for callback in channels.values():
                        callback("")  # anything committed while we were not listening is picked up now
                    delay = 0.5
                    await closed.wait()
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN connection lost (%s); polling meanwhile, reconnecting", type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)

    task = asyncio.create_task(keep_listening())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Sequencer:
    """Runs in each producing service: stamps positions as soon as a commit is announced, polls as a fallback."""

    def __init__(
        self,
        engine: AsyncEngine,
        tables: EventTables,
        *,
        poll_seconds: float = 1.0,
        retention: timedelta = timedelta(days=3650),
        prune_every: float = 300.0,
        subscribers: list[str] | None = None,
        on_sequenced: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.tables = tables
        self.poll_seconds = poll_seconds
        self.retention = retention
        self.prune_every = prune_every
        self.subscribers = subscribers or []
        self.on_sequenced = on_sequenced
        self.wake = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_prune = loop.time() + self.prune_every
        delay = 0.5
        while True:
            self.wake.clear()  # before the batch: a commit announced during it wakes the next round at once
            try:
                stamped = await sequence_batch(self.engine, self.tables)
                delay = 0.5
                if stamped and self.on_sequenced is not None:
                    self.on_sequenced()
                if loop.time() >= next_prune:
                    next_prune = loop.time() + self.prune_every
                    pruned = await prune(
                        self.engine, self.tables, retention=self.retention, subscribers=self.subscribers
                    )
                    if pruned:
                        log.info("pruned %d delivered events older than the retention", pruned)
                if stamped:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sequencer failed; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.poll_seconds)
