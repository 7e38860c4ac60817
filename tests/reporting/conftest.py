"""Fixtures of the reporting tests: the app on the test transaction, the read model emptied first (other tests'
processes may have committed rows), events applied through the subscriptions' own handlers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.readmodel.applications import SUBSCRIPTION as APPLICATIONS
from services.reporting.readmodel.guarantees import SUBSCRIPTION as GUARANTEES
from services.reporting.readmodel.portfolio import SUBSCRIPTION as PORTFOLIO
from shared.auth import PRINCIPAL_HEADER, Principal, Role, mint_principal_token
from shared.db import make_sessionmaker
from shared.events.contracts import EventEnvelope
from tests.conftest import INTERNAL_SECRET
from tests.reporting.scenario import applications_events, guarantees_events, portfolio_events
from tests.support import service_app


def as_role(role: Role, org: uuid.UUID | None = None) -> dict[str, str]:
    principal = Principal(key_id=uuid.uuid4(), role=role, organization_id=org)
    token = mint_principal_token(principal, secret=INTERNAL_SECRET, audience="reporting", ttl_seconds=3600)
    return {PRINCIPAL_HEADER: token}


FUNDER = as_role(Role.funder)
ANALYST = as_role(Role.analyst)


async def rebuild_from(connection: AsyncConnection, events: Iterable[EventEnvelope]) -> None:
    """Empty the read model (the subscriptions' reset from position 0), then apply `events` in order."""
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        for subscription in (PORTFOLIO, APPLICATIONS, GUARANTEES):
            assert subscription.reset is not None
            await subscription.reset(session, 0)
        await session.commit()
    await apply(connection, events)


async def apply(connection: AsyncConnection, events: Iterable[EventEnvelope]) -> None:
    handlers = {"portfolio": PORTFOLIO.handler, "applications": APPLICATIONS.handler, "guarantees": GUARANTEES.handler}
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        for event in events:
            producer = (
                "portfolio"
                if event.type.startswith(("loan.", "fx."))
                else "applications"
                if event.type.startswith(("business.", "application."))
                else "guarantees"
            )
            await handlers[producer](session, event)
        await session.commit()


@pytest.fixture
async def api(connection: AsyncConnection) -> AsyncIterator[httpx.AsyncClient]:
    app = service_app("reporting", connection)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reporting") as client:
        yield client


@pytest.fixture
async def scenario(connection: AsyncConnection) -> list[EventEnvelope]:
    """The whole scenario applied (A's late repayment of 07-10 included); answers the event log."""
    events = applications_events() + portfolio_events() + guarantees_events()
    await rebuild_from(connection, events)
    return events
