"""Consumer side: pull a producer's feed, apply each event exactly once, retry, park, replay.

- Exactly once: the event's id goes into the inbox and the subscription's position moves, in the same
  transaction as the handler's effect. A crash before commit applies nothing; the batch is read again.
- One active consumer per subscription: a session-level advisory lock; other instances wait as stand-bys.
- Per-aggregate order: the feed is in commit order. When an event fails, it goes to `event_retries` (retried with
  exponential backoff and jitter, parked after `max_attempts`), and later events of the same aggregate are held
  behind it there; other aggregates go on.
- Fast path: a batch is applied in one transaction; only if a handler fails is it re-applied event by event with
  a savepoint each, so one failure costs the batch a second pass, never correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import TextClause, and_, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from shared.auth import SERVICE_HEADER, mint_service_token
from shared.background import log_failure
from shared.db import copy_rows, make_sessionmaker
from shared.events.contracts import EventEnvelope
from shared.events.feed import FeedPage
from shared.events.tables import EventTables

log = logging.getLogger("shared.events.consumer")
Handler = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]
BatchHandler = Callable[[AsyncSession, list[EventEnvelope]], Awaitable[None]]
Reset = Callable[[AsyncSession, int], Awaitable[None]]


@dataclass
class Subscription:
    """A consumer's interest in one producer's events. `reset(session, from_position)` must undo what the
    handler built from events after `from_position`; without it the subscription cannot be replayed."""

    name: str
    producer: str
    types: frozenset[str] | None
    handler: Handler
    reset: Reset | None = None
    # optional: the same effect as `handler` on each event in order, in fewer round trips (bulk statements);
    # used on the fast path, while a failing batch falls back to `handler` event by event
    batch_handler: BatchHandler | None = None


@dataclass
class ConsumerSettings:
    batch_size: int = 500
    long_poll_seconds: float = 20.0
    max_attempts: int = 5
    base_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 300.0
    retry_scan_seconds: float = 0.5
    standby_seconds: float = 2.0


def backoff(attempts: int, settings: ConsumerSettings) -> timedelta:
    """Exponential with full jitter: uniform in [base/2, base·2^(n-1)], capped."""
    ceiling = min(settings.max_backoff_seconds, settings.base_backoff_seconds * 2 ** (attempts - 1))
    return timedelta(
        seconds=random.uniform(settings.base_backoff_seconds / 2, max(ceiling, settings.base_backoff_seconds / 2))
    )


def _lock_key(schema: str, subscription: str) -> int:
    return zlib.crc32(f"events:{schema}:{subscription}".encode())


async def _cancel(task: asyncio.Future[Any] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError, ValueError):
            await task
    elif task is not None and not task.cancelled():
        task.exception()  # retrieved, so it is not reported as lost


CUSTOM_PLANS = text("SET LOCAL plan_cache_mode = force_custom_plan")


@functools.cache
def _seen_statement(schema: str) -> TextClause:
    """Which of a page's events the inbox already holds: one primary-key probe per id, written so that no other plan
    is possible (each id's LATERAL subquery, LIMIT 1, on (subscription, event_id)). Written `event_id IN ($2, ...,
    $501)`, or even `= ANY($2)`, PostgreSQL could plan it as a scan of every inbox row of the subscription through
    ix_event_inbox_position, filtered by the ids: it did whenever its statistics still saw the inbox nearly empty (a
    new subscription, a fresh database filling fast), and kept that plan for the prepared statement as the inbox
    grew: 1,041 ms a page at 119,000 rows with `IN`, 213-281 ms at 110,000 with `ANY`, against 1-2 ms probing the
    key (auto_explain in the pushes bench, where the consumers' backends spent 80-95 % of their time there). A
    generic plan made while the inbox was empty could even scan it once per id: the page's transaction plans its
    statements for their values each time (`CUSTOM_PLANS`, a fraction of a millisecond a statement), so a plan
    always sees the tables at their present size."""
    return text(
        f"""
        SELECT x.id FROM unnest(CAST(:ids AS uuid[])) AS x(id)
        CROSS JOIN LATERAL (
            SELECT 1 FROM "{schema}".event_inbox i WHERE i.subscription = :name AND i.event_id = x.id LIMIT 1
        ) found
        """  # noqa: S608 - the schema is the service's own constant
    )


class _Restart(Exception):
    """The subscription's position changed under us (a replay): read it again."""


@dataclass
class Consumer:
    subscription: Subscription
    engine: AsyncEngine
    tables: EventTables
    producer_url: str
    service_name: str
    internal_secret: str
    settings: ConsumerSettings = field(default_factory=ConsumerSettings)
    position: int = 0
    head: int = 0
    active: bool = False
    retry_wake: asyncio.Event = field(default_factory=asyncio.Event)
    interrupt: asyncio.Event = field(default_factory=asyncio.Event)  # set by a replay: re-read the position

    @property
    def ack_name(self) -> str:
        """How the producer knows this subscription (declared in shared.events.topology)."""
        return f"{self.service_name}:{self.subscription.name}"

    # ----------------------------------------------------------------------------------------------- running
    async def run(self) -> None:
        """Forever: become the active consumer (or wait as a stand-by), then consume until cancelled."""
        key = _lock_key(self.tables.schema, self.subscription.name)
        while True:
            try:
                async with self.engine.connect() as lock_conn:
                    got = await lock_conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
                    await lock_conn.commit()
                    if not got:
                        await asyncio.sleep(self.settings.standby_seconds)
                        continue
                    self.active = True
                    try:
                        await self._consume_while_locked(lock_conn)
                    finally:
                        self.active = False
                        # a session-level lock outlives the checkout: release it, or drop the connection
                        try:
                            await asyncio.shield(lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key}))
                            await lock_conn.commit()
                        except BaseException:
                            await lock_conn.invalidate()
                            raise
            except asyncio.CancelledError:
                raise
            except Exception:
                log_failure(log, "consumer %s stopped on an error; restarting", self.subscription.name)
                await asyncio.sleep(1)

    async def _consume_while_locked(self, lock_conn: AsyncConnection) -> None:
        """Consume while the lock's connection is alive: if it dies, so does the lock, and another instance may
        already be consuming; stop at once."""

        async def watch() -> None:
            while True:
                await asyncio.sleep(self.settings.standby_seconds)
                await lock_conn.execute(text("SELECT 1"))
                await lock_conn.commit()

        consuming = asyncio.ensure_future(self._consume())
        watching = asyncio.ensure_future(watch())
        try:
            done, _ = await asyncio.wait({consuming, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (consuming, watching):
                task.cancel()
            for task in (consuming, watching):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for task in done:
            task.result()  # raises what ended it
        raise RuntimeError("lost the subscription lock's connection")

    async def _consume(self) -> None:
        """Fetch page n+1 while page n is applied (the feed is read ahead by one page)."""
        await self._load_state()
        retry_task = asyncio.create_task(self._retry_loop())
        interrupted: asyncio.Future[Any] = asyncio.ensure_future(self.interrupt.wait())
        ahead: asyncio.Future[FeedPage] | None = None
        delay = 0.5
        try:
            async with httpx.AsyncClient(
                base_url=self.producer_url, timeout=httpx.Timeout(self.settings.long_poll_seconds + 10, connect=3)
            ) as client:
                while True:
                    if self.interrupt.is_set():
                        self.interrupt.clear()
                        interrupted = asyncio.ensure_future(self.interrupt.wait())
                        await _cancel(ahead)
                        ahead = None
                        await self._load_state()
                    if ahead is None:
                        ahead = asyncio.ensure_future(
                            self.fetch(client, after=self.position, wait=self.settings.long_poll_seconds)
                        )
                    waiting: set[asyncio.Future[Any]] = {ahead, interrupted}
                    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    if not ahead.done():
                        continue  # interrupted: handled at the top of the loop
                    fetched, ahead = ahead, None
                    try:
                        page = fetched.result()
                        delay = 0.5
                    except (httpx.HTTPError, ValueError) as exc:
                        log.warning(
                            "feed of %s unavailable (%s); retrying in %.1f s", self.subscription.producer, exc, delay
                        )
                        await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                        delay = min(delay * 2, 30)
                        continue
                    self.head = page.head
                    if page.next_after <= self.position:
                        # an idle long poll: check the position has not been moved (a replay by another instance)
                        await self._load_state()
                        continue
                    # read ahead from where this page ends, acknowledging only what is applied
                    ahead = asyncio.ensure_future(
                        self.fetch(client, after=page.next_after, wait=self.settings.long_poll_seconds)
                    )
                    try:
                        await self.apply_page(page)
                    except _Restart:
                        await _cancel(ahead)
                        ahead = None
                        await self._load_state()
        finally:
            interrupted.cancel()
            await _cancel(ahead)
            retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retry_task

    async def fetch(
        self, client: httpx.AsyncClient, *, after: int, wait: float, limit: int | None = None, consuming: bool = True
    ) -> FeedPage:
        """One page of the producer's feed after `after`. `consuming` acknowledges the position to the producer
        (its pruning waits for it) and filters by the subscription's types."""
        token = mint_service_token(self.service_name, secret=self.internal_secret, audience=self.subscription.producer)
        params: dict[str, Any] = {"after": after, "limit": limit or self.settings.batch_size, "wait": wait}
        if consuming:
            params["subscription"] = self.ack_name
            params["ack"] = self.position
            if self.subscription.types is not None:
                params["types"] = ",".join(sorted(self.subscription.types))
        response = await client.get("/internal/events", params=params, headers={SERVICE_HEADER: token})
        response.raise_for_status()
        return FeedPage.model_validate_json(response.content)

    async def _load_state(self) -> None:
        subs = self.tables.subscriptions
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(subs)
                .values(name=self.subscription.name, producer=self.subscription.producer)
                .on_conflict_do_nothing()
            )
            self.position = int(
                await conn.scalar(select(subs.c.position).where(subs.c.name == self.subscription.name)) or 0
            )

    # ----------------------------------------------------------------------------------------------- applying
    async def apply_page(self, page: FeedPage) -> None:
        try:
            await self._apply(page, careful=False)
        except _Restart:
            raise
        except Exception:
            log.info("a handler of %s failed; applying the batch event by event", self.subscription.name)
            await self._apply(page, careful=True)
        self.position = page.next_after

    async def _apply(self, page: FeedPage, *, careful: bool) -> None:
        name = self.subscription.name
        subs, retries = self.tables.subscriptions, self.tables.retries
        applied: list[EventEnvelope] = []
        failures = 0
        async with make_sessionmaker(self.engine)() as session, session.begin():
            stored = await session.scalar(select(subs.c.position).where(subs.c.name == name).with_for_update())
            if stored != self.position:
                raise _Restart
            # Aggregates with an event waiting in the retry table, read under the subscription's lock. Only this loop
            # adds rows there (the retry loop only removes them), so a stale read can hold an event back, never let
            # one overtake an earlier event of its aggregate.
            blocked = {
                (r.aggregate_type, r.aggregate_id)
                for r in await session.execute(
                    select(retries.c.aggregate_type, retries.c.aggregate_id)
                    .where(retries.c.subscription == name)
                    .distinct()
                )
            }
            await session.execute(CUSTOM_PLANS)  # see _seen_statement
            ids = [e.event_id for e in page.events]
            seen = (
                set((await session.scalars(_seen_statement(self.tables.schema), {"name": name, "ids": ids})).all())
                if ids
                else set()
            )
            batch = self.subscription.batch_handler if not careful else None
            for event in page.events:
                if event.event_id in seen:
                    continue
                aggregate = (event.aggregate_type, event.aggregate_id)
                if aggregate in blocked:
                    await session.execute(
                        insert(retries).values(**self._retry_row(event, "held")).on_conflict_do_nothing()
                    )
                    continue
                if not careful:
                    if batch is None:
                        await self.subscription.handler(session, event)
                    applied.append(event)
                    continue
                try:
                    async with session.begin_nested():
                        await self.subscription.handler(session, event)
                    applied.append(event)
                except Exception as exc:
                    failures += 1
                    blocked.add(aggregate)
                    status = "parked" if self.settings.max_attempts <= 1 else "retrying"
                    row = self._retry_row(event, status, attempts=1, error=exc)
                    await session.execute(insert(retries).values(**row).on_conflict_do_nothing())
                    log.warning("event %s (%s) failed in %s: %s", event.event_id, event.type, name, exc)
            if batch is not None and applied:
                await batch(session, applied)
            if applied:  # one COPY of the page's ids (executemany cost a round of work per event)
                await copy_rows(
                    session,
                    self.tables.schema,
                    "event_inbox",
                    ("subscription", "event_id", "position"),
                    [(name, e.event_id, e.position) for e in applied],
                )
            await session.execute(
                update(subs)
                .where(subs.c.name == name)
                .values(
                    position=page.next_after,
                    applied_count=subs.c.applied_count + len(applied),
                    failed_count=subs.c.failed_count + failures,
                    last_applied_at=func.now() if applied else subs.c.last_applied_at,
                    updated_at=func.now(),
                )
            )
        if blocked:
            self.retry_wake.set()

    def _retry_row(
        self, event: EventEnvelope, status: str, attempts: int = 0, error: BaseException | None = None
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "subscription": self.subscription.name,
            "event_id": event.event_id,
            "position": event.position,
            "aggregate_type": event.aggregate_type,
            "aggregate_id": event.aggregate_id,
            "aggregate_seq": event.aggregate_seq,
            "envelope": event.model_dump(mode="json"),
            "status": status,
            "attempts": attempts,
            "next_attempt_at": now + backoff(attempts, self.settings) if status == "retrying" else None,
            "last_error": f"{type(error).__name__}: {error}"[:2000] if error else None,
            "first_failed_at": now,
            "updated_at": now,
        }

    # ----------------------------------------------------------------------------------------------- retries
    async def _retry_loop(self) -> None:
        while True:
            self.retry_wake.clear()
            try:
                await self.run_due_retries()
            except asyncio.CancelledError:
                raise
            except Exception:
                log_failure(
                    log, "retrying the failed events of %s did not finish; trying again later", self.subscription.name
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.retry_wake.wait(), self.settings.retry_scan_seconds)

    async def run_due_retries(self) -> int:
        """Retry the head event of every blocked aggregate whose turn has come; answers how many were applied."""
        now = datetime.now(UTC)
        async with self.engine.connect() as conn:
            heads = await self._aggregate_heads(conn)
        applied = 0
        for aggregate_type, aggregate_id, status, next_attempt_at in heads:
            if status == "parked" or (status == "retrying" and next_attempt_at is not None and next_attempt_at > now):
                continue
            applied += await self._retry_aggregate(aggregate_type, aggregate_id)
        return applied

    async def _aggregate_heads(self, conn: AsyncConnection) -> list[Any]:
        retries = self.tables.retries
        first = (
            select(
                retries.c.aggregate_type,
                retries.c.aggregate_id,
                func.min(retries.c.aggregate_seq).label("seq"),
            )
            .where(retries.c.subscription == self.subscription.name)
            .group_by(retries.c.aggregate_type, retries.c.aggregate_id)
            .subquery()
        )
        query = select(
            retries.c.aggregate_type, retries.c.aggregate_id, retries.c.status, retries.c.next_attempt_at
        ).join(
            first,
            and_(
                retries.c.subscription == self.subscription.name,
                retries.c.aggregate_type == first.c.aggregate_type,
                retries.c.aggregate_id == first.c.aggregate_id,
                retries.c.aggregate_seq == first.c.seq,
            ),
        )
        return list((await conn.execute(query)).all())

    async def _retry_aggregate(self, aggregate_type: str, aggregate_id: str) -> int:
        name = self.subscription.name
        subs, inbox, retries = self.tables.subscriptions, self.tables.inbox, self.tables.retries
        applied = 0
        failures = 0
        async with make_sessionmaker(self.engine)() as session, session.begin():
            rows = (
                await session.execute(
                    select(retries)
                    .where(
                        retries.c.subscription == name,
                        retries.c.aggregate_type == aggregate_type,
                        retries.c.aggregate_id == aggregate_id,
                    )
                    .order_by(retries.c.aggregate_seq)
                    .with_for_update()  # not SKIP LOCKED: never pass over an aggregate's head
                )
            ).all()
            now = datetime.now(UTC)
            for row in rows:
                if row.status == "parked" or (
                    row.status == "retrying" and row.next_attempt_at and row.next_attempt_at > now
                ):
                    break
                event = EventEnvelope.model_validate(row.envelope)
                done = await session.scalar(
                    select(inbox.c.event_id).where(inbox.c.subscription == name, inbox.c.event_id == event.event_id)
                )
                try:
                    if done is None:
                        async with session.begin_nested():
                            await self.subscription.handler(session, event)
                        await session.execute(
                            insert(inbox).values(subscription=name, event_id=event.event_id, position=event.position)
                        )
                        applied += 1
                except Exception as exc:
                    failures += 1
                    attempts = row.attempts + 1
                    parked = attempts >= self.settings.max_attempts
                    await session.execute(
                        update(retries)
                        .where(retries.c.subscription == name, retries.c.event_id == event.event_id)
                        .values(
                            status="parked" if parked else "retrying",
                            attempts=attempts,
                            next_attempt_at=None if parked else now + backoff(attempts, self.settings),
                            last_error=f"{type(exc).__name__}: {exc}"[:2000],
                            updated_at=now,
                        )
                    )
                    if parked:
                        log.error(
                            "event %s (%s) parked in %s after %d attempts: %s",
                            event.event_id,
                            event.type,
                            name,
                            attempts,
                            exc,
                        )
                    break
                await session.execute(
                    delete(retries).where(retries.c.subscription == name, retries.c.event_id == event.event_id)
                )
            if applied or failures:
                await session.execute(
                    update(subs)
                    .where(subs.c.name == name)
                    .values(
                        applied_count=subs.c.applied_count + applied,
                        failed_count=subs.c.failed_count + failures,
                        last_applied_at=func.now() if applied else subs.c.last_applied_at,
                        updated_at=func.now(),
                    )
                )
        return applied
