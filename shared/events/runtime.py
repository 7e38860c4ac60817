"""Wiring of the event table into a service process: sequencer, LISTEN wake-ups, feed signal, consumers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.events.consumer import Consumer, ConsumerSettings, Subscription
from shared.events.feed import FeedSignal
from shared.events.outbox import Sequencer, feed_channel, listening, outbox_channel
from shared.events.tables import EventTables
from shared.events.topology import subscribers_of
from shared.settings import ServiceSettings, peer_url


def build_consumers(
    *,
    service: str,
    engine: AsyncEngine,
    tables: EventTables,
    subscriptions: Sequence[Subscription],
    internal_secret: str,
    settings: ServiceSettings,
) -> dict[str, Consumer]:
    consumer_settings = ConsumerSettings(
        batch_size=settings.events_batch_size,
        max_attempts=settings.events_max_attempts,
        base_backoff_seconds=settings.events_base_backoff_seconds,
    )
    return {
        s.name: Consumer(
            subscription=s,
            engine=engine,
            tables=tables,
            producer_url=peer_url(s.producer),
            service_name=service,
            internal_secret=internal_secret,
            settings=consumer_settings,
        )
        for s in subscriptions
    }


@contextlib.asynccontextmanager
async def event_runtime(
    app: FastAPI, *, tables: EventTables, subscriptions: Sequence[Subscription], settings: ServiceSettings
) -> AsyncIterator[None]:
    engine: AsyncEngine = app.state.engine
    service: str = app.state.service_name
    signal = FeedSignal()
    app.state.feed_signal = signal
    app.state.consumers = build_consumers(
        service=service,
        engine=engine,
        tables=tables,
        subscriptions=subscriptions,
        internal_secret=app.state.internal_secret,
        settings=settings,
    )
    if not settings.events_enabled:
        yield
        return
    sequencer = Sequencer(
        engine,
        tables,
        poll_seconds=settings.events_poll_seconds,
        retention=timedelta(days=settings.events_retention_days),
        subscribers=subscribers_of(service),
        on_sequenced=signal.notify,
    )
    channels = {
        outbox_channel(tables.schema): lambda _p: sequencer.wake.set(),
        feed_channel(tables.schema): signal.notify,
    }
    async with listening(settings.require_database_url(), channels):
        tasks = [asyncio.create_task(sequencer.run())]
        tasks += [asyncio.create_task(c.run()) for c in app.state.consumers.values()]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
