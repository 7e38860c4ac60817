"""Lenders' signed pushes: verified over the raw bytes, stored before the 2xx, never stored twice."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Role
from shared.webhooks.secrets import sign
from tests.portfolio.conftest import ADMIN, as_role
from tests.support import assert_problem

PUSH = json.dumps(
    {"items": [{"type": "repayment", "transaction_id": "CMS-1", "amount": {"amount": "250000", "currency": "XOF"}}]}
).encode()


async def new_lender(api: httpx.AsyncClient, name: str) -> tuple[str, str]:
    body = {"name": name, "institution_type": "bank", "country": "SN", "currencies": ["XOF"]}
    created = (await api.post("/api/v1/portfolio/lenders", json=body, headers=ADMIN)).json()
    return created["id"], created["webhook_secret"]["secret"]


async def push(
    api: httpx.AsyncClient,
    lender_id: str,
    secret: str,
    body: bytes = PUSH,
    *,
    msg_id: str | None = None,
    at: datetime | None = None,
    tamper: bool = False,
) -> httpx.Response:
    headers = sign(secret, msg_id=msg_id or f"msg_{uuid.uuid4().hex}", timestamp=at or datetime.now(UTC), body=body)
    sent = body + b" " if tamper else body
    return await api.post(
        f"/webhooks/lenders/{lender_id}", content=sent, headers={**headers, "Content-Type": "application/json"}
    )


async def stored(connection: AsyncConnection, lender_id: str) -> list[bytes]:
    rows = await connection.execute(
        text("SELECT raw_body FROM portfolio.lender_pushes WHERE lender_id = :l"), {"l": lender_id}
    )
    return [bytes(r.raw_body) for r in rows]


async def test_a_signed_push_is_stored_as_received_and_a_retry_is_not_stored_twice(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    lender_id, secret = await new_lender(api, "CMS")
    first = await push(api, lender_id, secret, msg_id="msg_cms_0001")
    assert first.status_code == 202, first.text
    receipt = first.json()
    assert receipt["items"] == 1 and receipt["status"] == "received" and receipt["duplicate"] is False
    again = await push(api, lender_id, secret, msg_id="msg_cms_0001")
    assert (
        again.status_code == 200 and again.json()["push_id"] == receipt["push_id"] and again.json()["duplicate"] is True
    )
    assert await stored(connection, lender_id) == [PUSH]
    # reconciliation: the lender sees what it pushed; another lender does not
    own = as_role(Role.lender, uuid.UUID(lender_id))
    pushes = (await api.get(f"/api/v1/portfolio/lenders/{lender_id}/pushes", headers=own)).json()["items"]
    assert [p["webhook_id"] for p in pushes] == ["msg_cms_0001"]
    assert_problem(
        await api.get(f"/api/v1/portfolio/lenders/{lender_id}/pushes", headers=as_role(Role.lender, uuid.uuid4())), 404
    )
    assert_problem(
        await api.get(f"/api/v1/portfolio/lenders/{lender_id}/pushes", headers=as_role(Role.ica, uuid.uuid4())), 403
    )


async def test_forged_stale_and_foreign_pushes_are_refused_and_nothing_is_stored(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    lender_id, secret = await new_lender(api, "Banque Régionale")
    other_id, other_secret = await new_lender(api, "Other Bank")
    refusals = [
        (await push(api, lender_id, secret, tamper=True), "no-matching-signature"),
        (await push(api, lender_id, other_secret), "no-matching-signature"),
        (await push(api, lender_id, secret, at=datetime.now(UTC) - timedelta(minutes=6)), "timestamp-too-old"),
        (await push(api, lender_id, secret, at=datetime.now(UTC) + timedelta(minutes=6)), "timestamp-too-new"),
    ]
    for response, reason in refusals:
        assert assert_problem(response, 401)["reason"] == reason
    unsigned = await api.post(
        f"/webhooks/lenders/{lender_id}", content=PUSH, headers={"Content-Type": "application/json"}
    )
    assert assert_problem(unsigned, 401)["reason"] == "missing-header"
    assert_problem(await push(api, str(uuid.uuid4()), secret), 401)  # an unknown lender gets the same answer
    assert await stored(connection, lender_id) == []
    malformed = await push(api, lender_id, secret, body=b'{"rows": []}')
    assert assert_problem(malformed, 422)["errors"][0]["pointer"] == "#/items"
    assert await stored(connection, lender_id) == [] and await stored(connection, other_id) == []


async def test_during_a_rotation_both_secrets_are_accepted(api: httpx.AsyncClient) -> None:
    lender_id, old = await new_lender(api, "Rotating Bank")
    new = (await api.post(f"/api/v1/portfolio/lenders/{lender_id}/webhook-secrets", headers=ADMIN)).json()["secret"]
    assert (await push(api, lender_id, old)).status_code == 202
    assert (await push(api, lender_id, new)).status_code == 202


async def test_the_receiving_hot_path_refuses_oversized_pushes_and_leaves_odd_paths_to_the_routing(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    lender_id, secret = await new_lender(api, "Hot Path Bank")
    huge = b'{"items": [' + b" " * (5 * 1024 * 1024) + b"]}"
    too_large = await push(api, lender_id, secret, body=huge)
    assert assert_problem(too_large, 413)["type"].endswith("body-too-large")
    assert too_large.json()["instance"] == f"/webhooks/lenders/{lender_id}"
    assert await stored(connection, lender_id) == []
    # not a lender id: FastAPI's validation answers, as for any route
    malformed = await api.post(
        "/webhooks/lenders/not-a-uuid", content=PUSH, headers={"Content-Type": "application/json"}
    )
    assert assert_problem(malformed, 422)["errors"]
    # the receipt is the documented one
    receipt = await push(api, lender_id, secret)
    assert receipt.status_code == 202 and receipt.headers["content-type"] == "application/json"
    assert set(receipt.json()) == {"push_id", "webhook_id", "items", "status", "received_at", "duplicate"}


async def test_a_pooled_connection_broken_by_a_database_restart_is_dropped_and_the_push_stored_on_another(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    """After a PostgreSQL restart a pooled connection can fail mid-operation with asyncpg's InternalClientError
    (seen in `make load` as 500s): it is terminated, not reused, and the push is stored on a fresh connection."""
    good = (await connection.get_raw_connection()).driver_connection  # the test's transaction

    class Broken:
        terminated = False

        async def fetchrow(self, *args: object) -> None:
            raise asyncpg.exceptions.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            )

        def terminate(self) -> None:
            self.terminated = True

    broken = Broken()

    class AfterRestart:
        handed = 0

        async def acquire(self, timeout: float) -> object:
            self.handed += 1
            return broken if self.handed == 1 else good

        async def release(self, conn: object) -> None:
            pass

    lender_id, secret = await new_lender(api, "Restarted Bank")
    app = api._transport.app  # type: ignore[attr-defined]
    app.state.push_pool = AfterRestart()
    answer = await push(api, lender_id, secret)
    assert answer.status_code == 202, answer.text
    assert broken.terminated
    assert len(await stored(connection, lender_id)) == 1


async def test_when_every_connection_for_pushes_is_busy_the_lender_is_told_to_retry(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    class Exhausted:
        async def acquire(self, timeout: float) -> None:
            raise TimeoutError

    lender_id, secret = await new_lender(api, "Busy Bank")
    app = api._transport.app  # type: ignore[attr-defined]
    app.state.push_pool = Exhausted()
    busy = await push(api, lender_id, secret)
    assert assert_problem(busy, 503)["type"].endswith("busy") and busy.headers["retry-after"] == "5"
    assert await stored(connection, lender_id) == []
