"""Signed notifications to ICAs: each status change reaches the ICA's callback, retried, logged, verifiable.

Real commits (the deliverer works in its own transactions, as in production) on the session's test database.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from services.applications.app import create_app, deliverer_for
from services.applications.settings import Settings
from shared.app import bind_database
from shared.auth import Role
from tests.applications.conftest import APPS, FakePeers, application_body, as_role, business_body
from tests.conftest import INTERNAL_SECRET
from tests.support import assert_problem, serving

NOTIFY = "/api/v1/applications/notifications"


@pytest.fixture
async def committed(engine: AsyncEngine, database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = Settings(
        internal_secret=INTERNAL_SECRET,
        database_url=database_url,
        webhooks_allow_http=True,
        webhooks_base_backoff_seconds=0.02,
        webhooks_max_attempts=5,
    )
    app = create_app(settings, configure_logs=False)
    bind_database(app, engine)
    app.state.peers = FakePeers()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://applications") as client:
        yield app, client


def flaky_callback(received: list[dict[str, Any]]) -> FastAPI:
    """Answers 500 to the first two tries of each notification, then 200."""
    tries: Counter[str] = Counter()
    callback = FastAPI()

    @callback.post("/fisiq")
    async def receive(request: Request) -> Response:
        webhook_id = request.headers.get("webhook-id", "")
        tries[webhook_id] += 1
        if tries[webhook_id] <= 2:
            return Response(status_code=500)
        received.append({"headers": dict(request.headers), "body": await request.body()})
        return Response(status_code=200)

    return callback


async def test_a_callback_failing_twice_gets_each_signed_notification_on_the_third_attempt(
    committed: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, api = committed
    received: list[dict[str, Any]] = []
    async with serving(flaky_callback(received)) as callback:
        ica = uuid.UUID(
            (
                await api.post(
                    "/api/v1/applications/icas",
                    json={"name": f"ICA {uuid.uuid4().hex[:6]}"},
                    headers=as_role(Role.admin),
                )
            ).json()["id"]
        )
        headers = as_role(Role.ica, ica)
        endpoint = await api.post(f"{NOTIFY}/endpoints", json={"url": f"{callback.url}/fisiq"}, headers=headers)
        assert endpoint.status_code == 201, endpoint.text
        secret = endpoint.json()["secret"]
        assert secret.startswith("whsec_")
        assert "secret" not in (await api.get(f"{NOTIFY}/endpoints", headers=headers)).json()[0]

        business = (await api.post("/api/v1/applications/businesses", json=business_body(), headers=headers)).json()
        draft = (await api.post(APPS, json=application_body(business["id"]), headers=headers)).json()
        assert (await api.post(f"{APPS}/{draft['id']}/submit", json={}, headers=headers)).json()[
            "status"
        ] == "under_review"

        deliverer = deliverer_for(app, app.state.settings)
        deadline = time.monotonic() + 15
        while len(received) < 3 and time.monotonic() < deadline:
            await deliverer.run_once()
            await asyncio.sleep(0.03)

    moves = [(r["body"], r["headers"]) for r in received]
    assert len(moves) == 3, "submitted, screening and under_review were each notified"
    statuses = []
    for body, sent in moves:
        payload = Webhook(secret).verify(body, sent)  # the standardwebhooks package's own verification
        assert payload["type"] == "application.status_changed"
        assert payload["data"]["application_id"] == draft["id"]
        statuses.append(payload["data"]["to_status"])
    assert sorted(statuses) == ["screening", "submitted", "under_review"]

    deliveries = (await api.get(f"{NOTIFY}/deliveries", headers=headers)).json()
    assert len(deliveries) == 3
    for delivery in deliveries:
        assert delivery["status"] == "delivered" and delivery["attempts"] == 3
        assert [a["response_status"] for a in delivery["attempt_log"]] == [500, 500, 200]

    # another ICA sees none of it, and cannot resend it
    stranger = as_role(Role.ica, uuid.uuid4())
    assert (await api.get(f"{NOTIFY}/deliveries", headers=stranger)).json() == []
    assert_problem(await api.post(f"{NOTIFY}/deliveries/{deliveries[0]['id']}/resend", json={}, headers=stranger), 404)
    # the ICA asks for one again: it is due now
    again = await api.post(f"{NOTIFY}/deliveries/{deliveries[0]['id']}/resend", json={}, headers=headers)
    assert again.status_code == 200 and again.json()["status"] == "pending"


async def test_endpoints_are_https_and_belong_to_an_ica(api: httpx.AsyncClient) -> None:
    ica = uuid.uuid4()
    refused = await api.post(
        f"{NOTIFY}/endpoints", json={"url": "http://partner.example/hook"}, headers=as_role(Role.ica, ica)
    )
    assert assert_problem(refused, 422)["errors"][0]["pointer"] == "#/url"
    assert_problem(
        await api.post(f"{NOTIFY}/endpoints", json={"url": "https://10.0.0.5/hook"}, headers=as_role(Role.ica, ica)),
        422,
    )
    assert_problem(
        await api.post(
            f"{NOTIFY}/endpoints", json={"url": "https://partner.example/hook"}, headers=as_role(Role.analyst)
        ),
        403,
    )
