"""The outbound delivery engine against the real PostgreSQL and a real HTTP receiver."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI, Request, Response
from sqlalchemy import MetaData, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from shared.db import make_sessionmaker
from shared.webhooks.outbound import (
    Deliverer,
    DelivererSettings,
    InvalidEndpoint,
    WebhookTables,
    check_endpoint_url,
    create_endpoint,
    enqueue,
    resend,
    webhook_tables,
)
from shared.webhooks.secrets import generate_secret
from tests.support import free_port, serving
from tests.webhooks.conftest import run_migration

FAST = DelivererSettings(base_backoff_seconds=0.05, poll_seconds=0.05, timeout_seconds=2, allow_http=True)


@dataclass
class Receiver:
    """Answers the scripted statuses in turn (the last one repeats) and keeps what it received."""

    statuses: list[int]
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            self.received.append((dict(request.headers), await request.body()))
            status = self.statuses[min(len(self.received), len(self.statuses)) - 1]
            return Response(f"answered {status}", status_code=status)

        return app


async def add_endpoint(engine: AsyncEngine, tables: WebhookTables, url: str) -> tuple[uuid.UUID, str]:
    async with make_sessionmaker(engine)() as session, session.begin():
        return await create_endpoint(session, tables, organization_id=uuid.uuid4(), url=url, allow_http=True)


async def add_delivery(engine: AsyncEngine, tables: WebhookTables, endpoint_id: uuid.UUID, **payload: Any) -> uuid.UUID:
    async with make_sessionmaker(engine)() as session, session.begin():
        return await enqueue(
            session, tables, endpoint_id=endpoint_id, event_type="application.status_changed", payload=payload
        )


async def delivery(engine: AsyncEngine, tables: WebhookTables, delivery_id: uuid.UUID) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(tables.deliveries).where(tables.deliveries.c.id == delivery_id))).one()


async def attempts(engine: AsyncEngine, tables: WebhookTables, delivery_id: uuid.UUID) -> Sequence[Any]:
    a = tables.attempts
    async with engine.connect() as conn:
        return (await conn.execute(select(a).where(a.c.delivery_id == delivery_id).order_by(a.c.attempt))).all()


async def settled(engine: AsyncEngine, tables: WebhookTables, delivery_id: uuid.UUID, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await delivery(engine, tables, delivery_id)
        if row.status != "pending":
            return row
        await asyncio.sleep(0.02)
    raise AssertionError(f"delivery {delivery_id} still pending after {timeout} s")


async def test_a_notification_is_retried_until_accepted_and_verifies_with_the_reference_package(
    engine: AsyncEngine, tables: WebhookTables
) -> None:
    receiver = Receiver([500, 500, 200])
    async with serving(receiver.app()) as upstream:
        endpoint_id, secret = await add_endpoint(engine, tables, f"{upstream.url}/hook")
        delivery_id = await add_delivery(engine, tables, endpoint_id, application_id="A-1", status="approved")
        async with Deliverer(engine, tables, FAST).running():
            row = await settled(engine, tables, delivery_id)

    assert row.status == "delivered" and row.attempts == 3
    assert row.delivered_at is not None and row.next_attempt_at is None
    assert len(receiver.received) == 3
    assert {headers["webhook-id"] for headers, _ in receiver.received} == {str(delivery_id)}  # one id, every attempt
    headers, body = receiver.received[-1]
    assert headers["content-type"] == "application/json"
    message = Webhook(secret).verify(body, headers)
    assert message["type"] == "application.status_changed"
    assert message["data"] == {"application_id": "A-1", "status": "approved"}
    assert message["timestamp"]

    log = await attempts(engine, tables, delivery_id)
    assert [(a.attempt, a.response_status) for a in log] == [(1, 500), (2, 500), (3, 200)]
    assert log[0].error == "HTTP 500: answered 500" and log[2].error is None
    assert all(a.duration_ms is not None and a.duration_ms >= 0 for a in log)
    assert log[0].attempted_at < log[1].attempted_at < log[2].attempted_at


async def test_enqueue_belongs_to_the_callers_transaction(engine: AsyncEngine, tables: WebhookTables) -> None:
    endpoint_id, _ = await add_endpoint(engine, tables, "http://127.0.0.1:9/hook")
    async with make_sessionmaker(engine)() as session:
        async with session.begin():
            kept = await enqueue(session, tables, endpoint_id=endpoint_id, event_type="t", payload={"n": 1})
        transaction = await session.begin()
        dropped = await enqueue(session, tables, endpoint_id=endpoint_id, event_type="t", payload={"n": 2})
        await transaction.rollback()
    async with engine.connect() as conn:
        ids = set((await conn.scalars(select(tables.deliveries.c.id))).all())
    assert ids == {kept} and dropped not in ids
    row = await delivery(engine, tables, kept)
    assert (row.status, row.attempts, row.payload) == ("pending", 0, {"n": 1})


async def test_a_delivery_that_keeps_failing_is_failed_after_n_attempts_and_resend_makes_it_due_again(
    engine: AsyncEngine, tables: WebhookTables
) -> None:
    receiver = Receiver([503])
    settings = DelivererSettings(**{**FAST.__dict__, "max_attempts": 3})
    async with serving(receiver.app()) as upstream:
        endpoint_id, secret = await add_endpoint(engine, tables, f"{upstream.url}/hook")
        delivery_id = await add_delivery(engine, tables, endpoint_id, n=1)
        async with Deliverer(engine, tables, settings).running():
            row = await settled(engine, tables, delivery_id)
            await asyncio.sleep(0.3)  # a failed delivery is left alone
        assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 3, None)
        assert len(receiver.received) == 3
        assert [a.response_status for a in await attempts(engine, tables, delivery_id)] == [503, 503, 503]

        async with make_sessionmaker(engine)() as session, session.begin():
            assert await resend(session, tables, delivery_id)
            assert not await resend(session, tables, uuid.uuid4())
        async with engine.connect() as conn:
            due = await conn.scalar(
                select(tables.deliveries.c.next_attempt_at <= text("now()")).where(
                    tables.deliveries.c.id == delivery_id
                )
            )
        row = await delivery(engine, tables, delivery_id)
        assert row.status == "pending" and due

        receiver.statuses = [200]
        async with Deliverer(engine, tables, settings).running():
            row = await settled(engine, tables, delivery_id)
    assert (row.status, row.attempts) == ("delivered", 4)
    assert [a.attempt for a in await attempts(engine, tables, delivery_id)] == [1, 2, 3, 4]
    Webhook(secret).verify(receiver.received[-1][1], receiver.received[-1][0])


async def test_an_unreachable_endpoint_is_logged_as_an_error_without_status(
    engine: AsyncEngine, tables: WebhookTables
) -> None:
    endpoint_id, _ = await add_endpoint(engine, tables, f"http://127.0.0.1:{free_port()}/hook")
    delivery_id = await add_delivery(engine, tables, endpoint_id, n=1)
    async with Deliverer(engine, tables, DelivererSettings(**{**FAST.__dict__, "max_attempts": 2})).running():
        row = await settled(engine, tables, delivery_id)
    assert (row.status, row.attempts) == ("failed", 2)
    log = await attempts(engine, tables, delivery_id)
    assert [a.response_status for a in log] == [None, None]
    assert all(a.error and "ConnectError" in a.error for a in log)


async def test_only_https_public_endpoints_are_accepted_in_production(
    engine: AsyncEngine, tables: WebhookTables
) -> None:
    assert check_endpoint_url("https://ica.example.org/hooks/fisiq") == "https://ica.example.org/hooks/fisiq"
    for url in (
        "http://ica.example.org/hook",
        "ftp://ica.example.org/hook",
        "https:///hook",
        "https://user:pass@ica.example.org/hook",
        "https://localhost/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest",
        "https://[::1]/hook",
    ):
        with pytest.raises(InvalidEndpoint):
            check_endpoint_url(url)
    assert check_endpoint_url("http://127.0.0.1:8080/hook", allow_http=True)
    async with make_sessionmaker(engine)() as session, session.begin():
        with pytest.raises(InvalidEndpoint):
            await create_endpoint(session, tables, organization_id=uuid.uuid4(), url="http://ica.example.org/hook")
        with pytest.raises(InvalidEndpoint):
            await create_endpoint(
                session, tables, organization_id=uuid.uuid4(), url="https://ica.example.org/h", secret="whsec_x"
            )
        endpoint_id, secret = await create_endpoint(
            session, tables, organization_id=uuid.uuid4(), url="https://ica.example.org/h", secret=generate_secret()
        )
        assert secret.startswith("whsec_")

    # an http endpoint that got in (e.g. registered in development) is never posted to by a production deliverer
    endpoint_id, _ = await add_endpoint(engine, tables, "http://127.0.0.1:9/hook")
    delivery_id = await add_delivery(engine, tables, endpoint_id, n=1)
    assert await Deliverer(engine, tables, DelivererSettings()).run_once() == 1
    row = await delivery(engine, tables, delivery_id)
    assert (row.status, row.attempts) == ("failed", 1)
    (attempt,) = await attempts(engine, tables, delivery_id)
    assert attempt.response_status is None and attempt.error.startswith("not sent: ")


async def test_deliveries_of_an_inactive_endpoint_wait_until_it_is_active(
    engine: AsyncEngine, tables: WebhookTables
) -> None:
    receiver = Receiver([204])
    async with serving(receiver.app()) as upstream:
        endpoint_id, _ = await add_endpoint(engine, tables, f"{upstream.url}/hook")
        async with engine.begin() as conn:
            await conn.execute(update(tables.endpoints).values(active=False))
        delivery_id = await add_delivery(engine, tables, endpoint_id, n=1)
        deliverer = Deliverer(engine, tables, FAST)
        assert await deliverer.run_once() == 0
        async with engine.begin() as conn:
            await conn.execute(update(tables.endpoints).values(active=True))
        assert await deliverer.run_once() == 1
    assert (await delivery(engine, tables, delivery_id)).status == "delivered"


async def test_concurrent_deliverers_send_each_delivery_once(engine: AsyncEngine, tables: WebhookTables) -> None:
    receiver = Receiver([200])
    async with serving(receiver.app()) as upstream:
        endpoint_id, _ = await add_endpoint(engine, tables, f"{upstream.url}/hook")
        ids = [await add_delivery(engine, tables, endpoint_id, n=n) for n in range(30)]
        settings = DelivererSettings(**{**FAST.__dict__, "batch_size": 4})
        async with Deliverer(engine, tables, settings).running(), Deliverer(engine, tables, settings).running():
            for delivery_id in ids:
                await settled(engine, tables, delivery_id)
    sent = [headers["webhook-id"] for headers, _ in receiver.received]
    assert sorted(sent) == sorted(str(i) for i in ids)
    assert sorted(json.loads(body)["data"]["n"] for _, body in receiver.received) == list(range(30))


async def test_the_migration_builds_exactly_the_tables_and_goes_down(
    engine: AsyncEngine, tables: WebhookTables
) -> None:
    metadata = MetaData(schema=tables.schema)
    webhook_tables(metadata)

    def compare(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": True,
                "include_name": lambda name, type_, _: name == tables.schema if type_ == "schema" else True,
                "compare_type": True,
            },
        )
        return list(compare_metadata(context, metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(compare) == []
    async with engine.begin() as conn:
        await conn.run_sync(run_migration, tables.schema, up=False)
        left = await conn.scalar(
            text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"), {"s": tables.schema}
        )
        assert left == 0
        await conn.run_sync(run_migration, tables.schema)


async def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(
    engine: AsyncEngine, tables: WebhookTables
) -> None:
    app = FastAPI()

    @app.post("/hook")
    async def slow() -> Response:
        await asyncio.sleep(2)
        return Response(status_code=200)

    settings = DelivererSettings(**{**FAST.__dict__, "timeout_seconds": 0.2, "max_attempts": 1})
    async with serving(app) as upstream:
        endpoint_id, _ = await add_endpoint(engine, tables, f"{upstream.url}/hook")
        delivery_id = await add_delivery(engine, tables, endpoint_id, n=1)
        assert await Deliverer(engine, tables, settings).run_once() == 1
    (attempt,) = await attempts(engine, tables, delivery_id)
    assert attempt.response_status is None and attempt.error.startswith("timeout after 0.2 s")
    assert attempt.duration_ms < 1500
    assert (await delivery(engine, tables, delivery_id)).status == "failed"
