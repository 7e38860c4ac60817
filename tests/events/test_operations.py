"""Poison events, parking, retry, replay, lag, and the feed's own guarantees."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.applications.models import events as applications_events
from shared.auth import SERVICE_HEADER, mint_service_token
from shared.db import make_sessionmaker
from shared.events.contracts import EventEnvelope
from shared.events.feed import FeedPage, read_feed_json
from shared.events.outbox import publish, sequence_batch
from tests.conftest import INTERNAL_SECRET
from tests.events.conftest import EventsPlatform, assert_exactly_once_in_order
from tests.events.projection import SUBSCRIPTION, Recorded


async def read_feed(engine: AsyncEngine, tables: Any, **options: Any) -> FeedPage:
    """The page the feed route serves (`read_feed_json`), as a consumer reads it."""
    body, _ = await read_feed_json(engine, tables, **options)
    return FeedPage.model_validate_json(body)


async def wait_until(predicate, timeout: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_a_poison_event_is_parked_without_blocking_others_then_applied_once_when_fixed(
    platform: EventsPlatform,
) -> None:
    platform.start_producer()
    platform.start_consumer(REPORTING_EVENTS_MAX_ATTEMPTS="3")
    await platform.produce(
        transactions=30, aggregates=["poisoned", "healthy-1", "healthy-2"], per_txn=(1, 1), poison={("poisoned", 2)}
    )
    poisoned = [c for c in platform.committed if c.aggregate_id == "poisoned"]
    healthy = [c for c in platform.committed if c.aggregate_id != "poisoned"]
    assert len(poisoned) >= 3, "the scenario needs events after the poison one"

    async def parked():  # type: ignore[no-untyped-def]
        rows = (await platform.admin("GET", "/api/v1/reporting/admin/events/failed?status=parked")).json()
        return rows or None

    rows = await wait_until(parked)
    assert len(rows) == 1
    assert rows[0]["aggregate_id"] == "poisoned" and rows[0]["aggregate_seq"] == 2 and rows[0]["attempts"] == 3
    assert "poison event" in rows[0]["last_error"] and rows[0]["type"] == "test.recorded"

    # every other aggregate was applied; the poisoned one only up to its poison event, the rest held behind it
    applied = await platform.wait_applied(len(healthy) + 1)
    assert {a[0] for a in applied} == {c.event_id for c in healthy} | {poisoned[0].event_id}
    held = (await platform.admin("GET", "/api/v1/reporting/admin/events/failed?status=held")).json()
    assert sorted(r["aggregate_seq"] for r in held) == list(range(3, len(poisoned) + 1))
    subscription = (await platform.admin("GET", "/api/v1/reporting/admin/events/subscriptions")).json()[0]
    assert subscription["name"] == SUBSCRIPTION and subscription["parked"] == 1 and subscription["failed_attempts"] == 3
    assert subscription["lag_events"] == 0 and subscription["active_here"] is True

    # the handler is fixed (the poison is cured), then the operator retries it
    async with platform.engine.begin() as conn:
        await conn.execute(text("INSERT INTO reporting.test_fixed VALUES (:e)"), {"e": rows[0]["event_id"]})
    retried = await platform.admin("POST", f"/api/v1/reporting/admin/events/failed/{rows[0]['event_id']}/retry")
    assert retried.status_code == 200 and retried.json() == {"requeued": 1}
    applied = await platform.wait_applied(len(platform.committed))
    assert_exactly_once_in_order(applied, platform.committed)
    assert (await platform.admin("GET", "/api/v1/reporting/admin/events/failed?status=held")).json() == []
    unknown = await platform.admin("POST", f"/api/v1/reporting/admin/events/failed/{uuid.uuid4()}/retry")
    assert unknown.status_code == 404


async def test_replay_from_the_start_rebuilds_the_same_read_model(platform: EventsPlatform) -> None:
    platform.start_producer()
    platform.start_consumer()
    await asyncio.gather(*(platform.produce(transactions=60, aggregates=[f"a{i}" for i in range(6)]) for _ in range(3)))
    await platform.wait_applied(len(platform.committed))

    async def totals() -> list[tuple[str, int, int, int]]:
        async with platform.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT aggregate_id, total, events, last_seq FROM reporting.test_totals ORDER BY 1")
            )
            return [tuple(r) for r in rows]  # type: ignore[misc]

    incremental = await totals()
    assert sum(r[2] for r in incremental) == len(platform.committed)
    replayed = await platform.admin(
        "POST", f"/api/v1/reporting/admin/events/subscriptions/{SUBSCRIPTION}/replay", json={"from_position": 0}
    )
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["previous_position"] == len(platform.committed)
    await asyncio.sleep(0.2)
    await platform.wait_applied(len(platform.committed))

    async def caught_up():  # type: ignore[no-untyped-def]
        return (await totals()) == incremental

    await wait_until(caught_up)

    assert_exactly_once_in_order(await platform.applied(), platform.committed)

    # replay from a middle position: only the events after it are applied again
    middle = len(platform.committed) // 2
    again = await platform.admin(
        "POST", f"/api/v1/reporting/admin/events/subscriptions/{SUBSCRIPTION}/replay", json={"from_position": middle}
    )
    assert again.status_code == 200
    await wait_until(caught_up)

    bad = await platform.admin(
        "POST", f"/api/v1/reporting/admin/events/subscriptions/{SUBSCRIPTION}/replay", json={"from_position": 10**9}
    )
    assert bad.status_code == 409


async def test_a_late_committing_lower_id_is_never_skipped(engine: AsyncEngine, platform: EventsPlatform) -> None:
    """The pitfall: T1 takes outbox id n, T2 takes n+1 and commits first; a reader has read n+1 before T1 commits."""
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as first, sessionmaker() as second:
        early = await publish(
            first,
            applications_events,
            event_type="test.recorded",
            aggregate_type="test",
            aggregate_id="x",
            payload=Recorded(amount=1),
        )
        late = await publish(
            second,
            applications_events,
            event_type="test.recorded",
            aggregate_type="test",
            aggregate_id="y",
            payload=Recorded(amount=2),
        )
        await second.commit()
        assert await sequence_batch(engine, applications_events) == 1
        page = await read_feed(engine, applications_events, after=0, limit=10, types=None, subscription=None)
        assert [e.event_id for e in page.events] == [late.event_id]
        await first.commit()
    assert await sequence_batch(engine, applications_events) == 1
    page = await read_feed(engine, applications_events, after=page.next_after, limit=10, types=None, subscription=None)
    assert [e.event_id for e in page.events] == [early.event_id]
    async with engine.connect() as conn:
        ids = dict((await conn.execute(text("SELECT event_id, id FROM applications.outbox"))).all())
    assert ids[early.event_id] < ids[late.event_id], "the scenario needs the lower id to commit last"


async def test_a_rolled_back_event_never_reaches_the_feed(engine: AsyncEngine, platform: EventsPlatform) -> None:
    async with make_sessionmaker(engine)() as session:
        await publish(
            session,
            applications_events,
            event_type="test.recorded",
            aggregate_type="test",
            aggregate_id="z",
            payload=Recorded(amount=5),
        )
        await session.rollback()
    assert await sequence_batch(engine, applications_events) == 0
    page = await read_feed(engine, applications_events, after=0, limit=10, types=None, subscription=None)
    assert page.events == [] and page.head == 0


async def test_the_feed_refuses_callers_without_a_service_token(platform: EventsPlatform) -> None:
    platform.start_producer()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.producer_port}") as client:
        assert (await client.get("/internal/events")).status_code == 401
        forged = mint_service_token("reporting", secret="y" * 48, audience="applications")
        assert (await client.get("/internal/events", headers={SERVICE_HEADER: forged})).status_code == 401
        wrong_audience = mint_service_token("reporting", secret=INTERNAL_SECRET, audience="portfolio")
        assert (await client.get("/internal/events", headers={SERVICE_HEADER: wrong_audience})).status_code == 401
        good = mint_service_token("reporting", secret=INTERNAL_SECRET, audience="applications")
        assert (await client.get("/internal/events", headers={SERVICE_HEADER: good})).status_code == 200


async def test_a_second_consumer_instance_stands_by_and_takes_over_after_a_kill(platform: EventsPlatform) -> None:
    from tests.support import free_port

    platform.start_producer()
    platform.start_consumer("first")
    second_port = free_port()
    platform.start_consumer("second", port=second_port)
    await platform.produce(transactions=50, aggregates=["a", "b"])
    await platform.wait_applied(len(platform.committed))
    first = (await platform.admin("GET", "/api/v1/reporting/admin/events/subscriptions")).json()[0]
    second = (await platform.admin("GET", "/api/v1/reporting/admin/events/subscriptions", port=second_port)).json()[0]
    assert [first["active_here"], second["active_here"]].count(True) == 1, "exactly one instance consumes"
    active = "first" if first["active_here"] else "second"
    platform.kill(active)
    await platform.produce(transactions=50, aggregates=["a", "b"])
    applied = await platform.wait_applied(len(platform.committed))
    assert_exactly_once_in_order(applied, platform.committed)


async def test_retention_prunes_only_what_every_subscriber_consumed(
    engine: AsyncEngine, platform: EventsPlatform
) -> None:
    from datetime import timedelta

    from shared.events.outbox import prune
    from shared.problems import Problem

    async with make_sessionmaker(engine)() as session:
        for amount in range(3):
            await publish(
                session,
                applications_events,
                event_type="test.recorded",
                aggregate_type="test",
                aggregate_id="r",
                payload=Recorded(amount=amount),
            )
        await session.commit()
    await sequence_batch(engine, applications_events)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE applications.outbox SET occurred_at = now() - interval '40 days' WHERE position <= 2")
        )
        await conn.execute(
            text("INSERT INTO applications.outbox_subscribers (subscription, position) VALUES ('reporting:x', 2)")
        )
    declared = ["reporting:x", "guarantees:y"]
    # guarantees:y has never read anything: nothing may go
    assert await prune(engine, applications_events, retention=timedelta(days=30), subscribers=declared) == 0
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO applications.outbox_subscribers (subscription, position) VALUES ('guarantees:y', 1)")
        )
    # both have consumed position 1; position 2 is old enough but guarantees:y has not read it; 3 is too recent
    assert await prune(engine, applications_events, retention=timedelta(days=30), subscribers=declared) == 1
    page = await read_feed(engine, applications_events, after=1, limit=10, types=None, subscription=None)
    assert [e.position for e in page.events] == [2, 3] and page.pruned_through == 1
    try:
        await read_feed(engine, applications_events, after=0, limit=10, types=None, subscription=None)
    except Problem as gone:
        assert gone.status == 410 and gone.extensions["pruned_through"] == 1
    else:
        raise AssertionError("a subscriber behind the pruned events must be told, not silently skip them")


async def test_the_feed_served_as_json_reads_as_the_outbox_rows(engine: AsyncEngine, platform: EventsPlatform) -> None:
    """The route writes its page straight from the rows (payloads passed through as text): a consumer reading it
    gets the envelopes of the outbox rows themselves, filtered by type, with the next position after the page."""
    async with make_sessionmaker(engine)() as session:
        for n, aggregate in enumerate(["a", "b", "a"], start=1):
            await publish(
                session,
                applications_events,
                event_type="test.recorded",
                aggregate_type="test",
                aggregate_id=aggregate,
                payload=Recorded(amount=n * 1000, poison=n == 2),
            )
        await session.commit()
    assert await sequence_batch(engine, applications_events) == 3
    async with engine.connect() as conn:
        outbox = applications_events.outbox
        rows = (await conn.execute(select(outbox).order_by(outbox.c.position))).all()
    stored = [EventEnvelope.model_validate(row._asdict()) for row in rows]
    for types in (None, {"test.recorded"}, {"some.other"}):
        for after in (0, 1):
            body, next_after = await read_feed_json(
                engine, applications_events, after=after, limit=10, types=types, subscription=None
            )
            served = FeedPage.model_validate_json(body)
            wanted = [e for e in stored if e.position is not None and e.position > after]
            assert served.events == [e for e in wanted if types is None or e.type in types]
            assert next_after == served.next_after == served.head == 3
    assert served.events == []  # "some.other": none
    everything = FeedPage.model_validate_json(
        (await read_feed_json(engine, applications_events, after=0, limit=10, types=None, subscription=None))[0]
    )
    assert [(e.aggregate_id, e.aggregate_seq, e.payload) for e in everything.events] == [
        ("a", 1, {"amount": 1000, "poison": False}),
        ("b", 1, {"amount": 2000, "poison": True}),
        ("a", 2, {"amount": 3000, "poison": False}),
    ]
