"""`Idempotency-Key` on POSTs: a retried request never applies twice; real commits, real concurrency."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.auth import PRINCIPAL_HEADER, CurrentPrincipal, Principal, Role, mint_principal_token
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from tests.conftest import INTERNAL_SECRET
from tests.support import assert_problem, service_app

PATH = "/api/v1/applications/idem-test/disbursements"


class Disbursement(BaseModel):
    loan: str
    amount: int


def headers(principal: Principal, key: str | None) -> dict[str, str]:
    out = {PRINCIPAL_HEADER: mint_principal_token(principal, secret=INTERNAL_SECRET, audience="applications")}
    if key is not None:
        out["Idempotency-Key"] = key
    return out


@pytest.fixture
async def app(engine: AsyncEngine) -> AsyncIterator[FastAPI]:
    async with engine.begin() as conn:
        await conn.execute(
            text("CREATE TABLE applications.idem_test_effects (id serial PRIMARY KEY, loan text, amount int)")
        )
    app = service_app("applications", engine)
    app.state.gate = None
    router = APIRouter(route_class=IdempotentRoute)

    @router.post(PATH, status_code=201)
    async def disburse(
        body: Disbursement, session: SessionDep, principal: CurrentPrincipal, request: Request
    ) -> dict[str, object]:
        new_id = await session.scalar(
            text("INSERT INTO applications.idem_test_effects (loan, amount) VALUES (:l, :a) RETURNING id"),
            {"l": body.loan, "a": body.amount},
        )
        gate: tuple[asyncio.Event, asyncio.Event] | None = request.app.state.gate
        if gate is not None:
            gate[0].set()
            await gate[1].wait()
        if body.amount < 0:
            from shared.problems import Conflict

            raise Conflict("negative disbursement")
        return {"id": new_id, "loan": body.loan, "amount": body.amount}

    app.include_router(router)
    yield app
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE applications.idem_test_effects"))
        await conn.execute(text("DELETE FROM applications.idempotency_keys WHERE path = :p"), {"p": PATH})


async def effects(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM applications.idem_test_effects")) or 0)


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


async def test_a_replay_returns_the_first_response_and_applies_nothing_again(app: FastAPI, engine: AsyncEngine) -> None:
    ica = Principal(key_id=uuid.uuid4(), role=Role.ica, organization_id=uuid.uuid4())
    async with client(app) as c:
        first = await c.post(PATH, json={"loan": "L1", "amount": 100}, headers=headers(ica, "k-1"))
        assert first.status_code == 201
        # same request, keys of the JSON in another order: still the same request
        again = await c.post(
            PATH,
            content=b'{"amount": 100, "loan": "L1"}',
            headers={**headers(ica, "k-1"), "Content-Type": "application/json"},
        )
        assert again.status_code == 201 and again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert await effects(engine) == 1

        other_payload = await c.post(PATH, json={"loan": "L1", "amount": 999}, headers=headers(ica, "k-1"))
        assert_problem(other_payload, 422)
        assert await effects(engine) == 1

        # keys are per client: another API key may use the same value
        other_client = Principal(key_id=uuid.uuid4(), role=Role.ica, organization_id=ica.organization_id)
        assert (
            await c.post(PATH, json={"loan": "L1", "amount": 100}, headers=headers(other_client, "k-1"))
        ).status_code == 201
        # and without a key, nothing is deduplicated
        assert (await c.post(PATH, json={"loan": "L1", "amount": 100}, headers=headers(ica, None))).status_code == 201
        assert await effects(engine) == 3


async def test_a_failed_request_is_not_stored_and_the_key_can_be_retried(app: FastAPI, engine: AsyncEngine) -> None:
    ica = Principal(key_id=uuid.uuid4(), role=Role.ica, organization_id=uuid.uuid4())
    async with client(app) as c:
        assert_problem(await c.post(PATH, json={"loan": "L2", "amount": -5}, headers=headers(ica, "k-2")), 409)
        assert_problem(await c.post(PATH, json={"loan": "L2"}, headers=headers(ica, "k-2")), 422)
        assert await effects(engine) == 0  # the 409's insert was rolled back with it
        ok = await c.post(PATH, json={"loan": "L2", "amount": 5}, headers=headers(ica, "k-2"))
        assert ok.status_code == 201 and await effects(engine) == 1


async def test_while_the_first_is_in_flight_the_same_key_gets_409(app: FastAPI, engine: AsyncEngine) -> None:
    ica = Principal(key_id=uuid.uuid4(), role=Role.ica, organization_id=uuid.uuid4())
    entered, release = asyncio.Event(), asyncio.Event()
    app.state.gate = (entered, release)
    async with client(app) as c:
        first = asyncio.create_task(c.post(PATH, json={"loan": "L3", "amount": 7}, headers=headers(ica, "k-3")))
        await asyncio.wait_for(entered.wait(), 5)
        app.state.gate = None
        body = assert_problem(await c.post(PATH, json={"loan": "L3", "amount": 7}, headers=headers(ica, "k-3")), 409)
        assert body["type"] == "/problems/idempotency-in-flight"
        release.set()
        assert (await first).status_code == 201
        replay = await c.post(PATH, json={"loan": "L3", "amount": 7}, headers=headers(ica, "k-3"))
        assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert await effects(engine) == 1


async def test_many_concurrent_retries_apply_once(app: FastAPI, engine: AsyncEngine) -> None:
    ica = Principal(key_id=uuid.uuid4(), role=Role.ica, organization_id=uuid.uuid4())
    async with client(app) as c:
        answers = await asyncio.gather(
            *(c.post(PATH, json={"loan": "L4", "amount": 1}, headers=headers(ica, "k-4")) for _ in range(12))
        )
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {201, 409} and 201 in statuses
    assert await effects(engine) == 1


async def test_a_malformed_key_is_refused(app: FastAPI) -> None:
    ica = Principal(key_id=uuid.uuid4(), role=Role.ica, organization_id=uuid.uuid4())
    async with client(app) as c:
        assert_problem(await c.post(PATH, json={"loan": "L5", "amount": 1}, headers=headers(ica, "x" * 256)), 422)
