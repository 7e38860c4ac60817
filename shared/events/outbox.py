"""Producer side: `publish()` writes an event in the caller's transaction; the sequencer stamps feed positions.

Why a sequencer: a reader that tails the outbox by its `id` skips a row whose id was taken before a higher one
that committed first (the higher one is read, the reader moves past, then the lower one commits). So ids only
order rows; the feed's order is `position`, stamped after commit by one sequencer transaction at a time (the
`outbox_head` row lock serializes them). A sequencer only sees committed rows, and a batch's positions become
visible all at once, before any later batch's: a reader of `position > p` can never skip a row. A transaction
writing many events at its end (`batched(..., sequenced=True)`, a lender's push) stamps its own the same way: it
takes the head's lock, stamps the committed events still waiting, then its own after them, and commits holding it.

Per-aggregate order: `publish()` takes the aggregate's counter row lock (`outbox_aggregates`) before inserting, so
events of one aggregate are numbered 1, 2, 3... in their commit order, and their outbox ids follow the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel
from sqlalchemy import TextClause, delete, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from shared.background import log_failure
from shared.db import copy_rows, dumps_json
from shared.events.contracts import EventEnvelope, contract_for
from shared.events.tables import ENVELOPE_COLUMNS, EventTables
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
    batch: _Batch | None = session.info.get(_BATCH_KEY)
    if batch is not None and batch.tables is tables:
        batch.rows.append(
            _row(event_id, event_type, version, aggregate_type, aggregate_id, occurred_at, dumps_json(body))
        )
        # built from values this function made and a payload the contract has just validated: not validated again
        # (pydantic's check of the envelope cost as much as the contract's, once per event of a 500-item push)
        return EventEnvelope.model_construct(
            event_id=event_id,
            type=event_type,
            schema_version=version,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_seq=0,  # numbered when the batch is written
            occurred_at=occurred_at,
            producer=tables.schema,
            request_id=request_id,
            payload=body,
        )
    # one round trip: take the aggregate's next number (and its lock) and write the event
    row = _row(event_id, event_type, version, aggregate_type, aggregate_id, occurred_at, dumps_json(body))
    seq = await session.scalar(_insert_statement(tables.schema), {**row, "producer": tables.schema})
    assert seq is not None
    # delivered at commit, and only then; wakes the sequencer at once instead of at its next poll (once a transaction)
    transaction = session.get_transaction()
    notified: set[int] = session.info.setdefault("fisiq_events_notified", set())
    if transaction is not None and id(transaction) not in notified:
        notified.add(id(transaction))
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": outbox_channel(tables.schema)})
    return EventEnvelope.model_construct(
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


async def emit(
    session: AsyncSession,
    tables: EventTables,
    *,
    event_type: str,
    aggregate_type: str,
    aggregate_id: str,
    payload: dict[str, Any],
    version: int = 1,
) -> None:
    """`publish()` for a caller that does not read the event back. Inside `batched()`, the payload is validated
    against its contract and written to JSON in one step by pydantic-core, and no envelope is built: a lender's
    push of 500 repayments announces 500 of them (dumping the validated payload to a dict, then the dict to JSON,
    then building an envelope nobody read was half of each event's cost). Elsewhere, `publish()`."""
    batch: _Batch | None = session.info.get(_BATCH_KEY)
    if batch is None or batch.tables is not tables:
        await publish(
            session,
            tables,
            event_type=event_type,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            payload=payload,
            version=version,
        )
        return
    body = contract_for(event_type, version).model_validate(payload).model_dump_json()
    batch.rows.append(_row(uuid.uuid4(), event_type, version, aggregate_type, aggregate_id, datetime.now(UTC), body))


_BATCH_KEY = "fisiq_events_batch"
_OUTBOX_COLUMNS = (*ENVELOPE_COLUMNS, "payload", "sequenced_at")


@dataclass
class _Batch:
    tables: EventTables
    rows: list[dict[str, Any]] = field(default_factory=list)


def _row(
    event_id: uuid.UUID,
    event_type: str,
    version: int,
    aggregate_type: str,
    aggregate_id: str,
    occurred_at: datetime,
    payload: str,
) -> dict[str, Any]:
    """An outbox row's values (but its producer, the schema's, and its numbers): `payload` as JSON text."""
    return {
        "event_id": event_id,
        "type": event_type,
        "version": version,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "occurred_at": occurred_at,
        "request_id": request_id_var.get(),
        "payload": payload,
    }


@contextlib.asynccontextmanager
async def batched(session: AsyncSession, tables: EventTables, *, sequenced: bool = False) -> AsyncIterator[None]:
    """Within the block, `publish()` collects events instead of writing each; they are written on leaving it, in
    two statements whatever their number (the counters' upsert and a COPY; a `sequenced` batch adds its stamps and
    the head's move), in the same transaction and with the same guarantees (numbered per
    aggregate in publication order, the aggregates' counters locked in a stable order). For a transaction that
    announces hundreds of changes, e.g. a lender's push of 500 repayments. The envelopes `publish()` answers
    inside the block carry `aggregate_seq` 0.

    `sequenced`: the events also take their feed positions in this transaction, after those of every event
    committed before them, so the sequencer has nothing to stamp: it rewrote each row (a ~1 KB tuple and its five
    index entries, ~30 us of the database's CPU an event). The feed's head stays locked from leaving the block
    until the transaction ends, holding the sequencer (and any other `sequenced` batch) back meanwhile: leaving
    the block should be the transaction's last work before its commit."""
    if session.info.get(_BATCH_KEY) is not None:
        raise RuntimeError("event batches do not nest")
    batch = _Batch(tables)
    session.info[_BATCH_KEY] = batch
    try:
        yield
    finally:
        session.info.pop(_BATCH_KEY, None)
    await _write_batch(session, batch, sequenced=sequenced)


async def _write_batch(session: AsyncSession, batch: _Batch, *, sequenced: bool) -> None:
    if not batch.rows:
        return
    schema = batch.tables.schema
    keys: dict[tuple[str, str], int] = {}
    for row in batch.rows:
        key = (row["aggregate_type"], row["aggregate_id"])
        keys[key] = keys.get(key, 0) + 1
    ordered = sorted(keys)
    result = await session.execute(
        text(
            f"""
            INSERT INTO "{schema}".outbox_aggregates AS a (aggregate_type, aggregate_id, last_seq)
            SELECT t, i, n FROM unnest(CAST(:types AS text[]), CAST(:ids AS text[]), CAST(:counts AS bigint[]))
                 WITH ORDINALITY AS v(t, i, n, k) ORDER BY k
            ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET last_seq = a.last_seq + excluded.last_seq
            RETURNING aggregate_type, aggregate_id, last_seq
            """  # noqa: S608 - the schema is the service's own constant
        ),
        {"types": [k[0] for k in ordered], "ids": [k[1] for k in ordered], "counts": [keys[k] for k in ordered]},
    )
    next_seq = {
        (r.aggregate_type, r.aggregate_id): r.last_seq - keys[(r.aggregate_type, r.aggregate_id)] + 1 for r in result
    }
    seqs = []
    for row in batch.rows:
        key = (row["aggregate_type"], row["aggregate_id"])
        seqs.append(next_seq[key])
        next_seq[key] += 1
    rows = batch.rows
    positions: list[int | None] = [None] * len(rows)
    sequenced_at: datetime | None = None
    if sequenced:
        # after the aggregates' counters are locked (above): an event of the same aggregate committed before is
        # then among the waiting ones stamped here, ahead of this batch's
        head, stamped, sequenced_at = await _stamp_waiting(session, batch.tables, limit=None)
        first = head + stamped + 1
        positions = list(range(first, first + len(rows)))
    await copy_rows(
        session,
        schema,
        "outbox",
        _OUTBOX_COLUMNS,
        (
            (
                r["event_id"],
                r["type"],
                r["version"],
                r["aggregate_type"],
                r["aggregate_id"],
                seq,
                r["occurred_at"],
                schema,
                r["request_id"],
                position,
                r["payload"],
                sequenced_at if position is not None else None,
            )
            for r, seq, position in zip(rows, seqs, positions, strict=True)
        ),
    )
    if sequenced:
        await _advance_head(session, batch.tables, positions[-1])  # type: ignore[arg-type]
    else:
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": outbox_channel(schema)})


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
    async with engine.begin() as conn:
        head, stamped, _ = await _stamp_waiting(conn, tables, limit=batch_size)
        if stamped:
            await _advance_head(conn, tables, head + stamped)
    return stamped


async def _stamp_waiting(
    executor: AsyncConnection | AsyncSession, tables: EventTables, *, limit: int | None
) -> tuple[int, int, datetime]:
    """Locks the feed's head (until the transaction ends) and stamps the next positions on the committed,
    unsequenced events, in id order (`limit` of them at most); answers the head before, how many it stamped and
    the time it stamped them at (the clock's, not the transaction's start: a push batch stamps at its end). The caller moves the head (`_advance_head`)."""
    outbox, head = tables.outbox, tables.outbox_head
    locked = (
        await executor.execute(select(head.c.position, func.clock_timestamp()).where(head.c.id == 1).with_for_update())
    ).one_or_none()
    assert locked is not None, "outbox_head is missing its row: run the migrations"
    current, now = locked
    waiting = select(outbox.c.id).where(outbox.c.position.is_(None)).order_by(outbox.c.id)
    ids = (await executor.scalars(waiting if limit is None else waiting.limit(limit))).all()
    if ids:
        await executor.execute(
            text(
                f'UPDATE "{tables.schema}".outbox AS o SET position = :base + v.n, sequenced_at = :now '  # noqa: S608
                "FROM unnest(CAST(:ids AS bigint[])) WITH ORDINALITY AS v(id, n) WHERE o.id = v.id"
            ),
            {"base": current, "ids": list(ids), "now": now},
        )
    return int(current), len(ids), now


async def _advance_head(executor: AsyncConnection | AsyncSession, tables: EventTables, position: int) -> None:
    """Moves the feed's head (locked by `_stamp_waiting`) and wakes the feed's readers at commit."""
    head = tables.outbox_head
    await executor.execute(update(head).where(head.c.id == 1).values(position=position))
    await executor.execute(
        text("SELECT pg_notify(:channel, :head)"), {"channel": feed_channel(tables.schema), "head": str(position)}
    )


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
                log_failure(log, "sequencer failed; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.poll_seconds)
