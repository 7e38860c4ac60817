"""The event table's guarantees, with real commits and real processes (no mocks)."""

from __future__ import annotations

import asyncio
import random

from tests.events.conftest import EventsPlatform, assert_exactly_once_in_order


async def test_concurrent_producers_with_rollbacks_lose_nothing_and_keep_order(platform: EventsPlatform) -> None:
    platform.start_producer()
    platform.start_consumer()
    aggregates = [f"agg-{i}" for i in range(12)]
    random.seed(7)
    await asyncio.gather(
        *(platform.produce(transactions=40, aggregates=aggregates, rollback_rate=0.2, pause=0.004) for _ in range(8))
    )
    assert len(platform.committed) > 200
    applied = await platform.wait_applied(len(platform.committed))
    await asyncio.sleep(0.5)  # nothing more arrives later (a rolled-back event, a duplicate)
    assert_exactly_once_in_order(await platform.applied(), platform.committed)
    assert len(applied) == len(platform.committed)


async def test_kill_9_of_consumer_and_producer_mid_batch_loses_and_doubles_nothing(platform: EventsPlatform) -> None:
    platform.start_producer()
    platform.start_consumer(TEST_HANDLER_DELAY_MS="3", TEST_PER_EVENT_HANDLER="1")
    aggregates = [f"agg-{i}" for i in range(20)]
    await asyncio.gather(*(platform.produce(transactions=120, aggregates=aggregates, per_txn=(1, 2)) for _ in range(4)))
    total = len(platform.committed)
    partial = await platform.wait_applied(total // 5)
    assert 0 < len(partial) < total, "the consumer must be killed in the middle of the stream"
    platform.kill("consumer")
    platform.kill("producer")  # the sequencer and the feed die too
    more = asyncio.create_task(platform.produce(transactions=50, aggregates=aggregates))
    await asyncio.sleep(0.3)
    platform.start_producer()
    platform.start_consumer(TEST_HANDLER_DELAY_MS="3", TEST_PER_EVENT_HANDLER="1")
    await more
    applied = await platform.wait_applied(len(platform.committed), timeout=90)
    assert len(applied) == len(platform.committed)
    assert_exactly_once_in_order(applied, platform.committed)


async def test_a_consumer_down_for_a_while_drains_in_order_when_it_returns(platform: EventsPlatform) -> None:
    platform.start_producer()
    await asyncio.gather(*(platform.produce(transactions=100, aggregates=["a", "b", "c"]) for _ in range(3)))
    await asyncio.sleep(0.5)
    assert await platform.applied() == []
    status = (await platform_outbox(platform)).json()
    assert status["head"] == len(platform.committed) and status["unsequenced"] == 0
    platform.start_consumer()
    applied = await platform.wait_applied(len(platform.committed))
    assert_exactly_once_in_order(applied, platform.committed)


async def platform_outbox(platform: EventsPlatform):  # type: ignore[no-untyped-def]
    import uuid

    import httpx

    from shared.auth import PRINCIPAL_HEADER, Principal, Role, mint_principal_token
    from tests.conftest import INTERNAL_SECRET

    token = mint_principal_token(
        Principal(key_id=uuid.uuid4(), role=Role.admin), secret=INTERNAL_SECRET, audience="applications"
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.producer_port}") as client:
        return await client.get("/api/v1/applications/admin/events/outbox", headers={PRINCIPAL_HEADER: token})
