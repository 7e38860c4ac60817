"""Lenders and their webhook secrets: shown once, rotated with two valid at once, never listed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from services.portfolio.lenders.service import valid_secrets
from shared.auth import Role
from shared.db import make_sessionmaker
from shared.webhooks.secrets import WebhookRejected, sign, verify
from tests.portfolio.conftest import ADMIN, as_role
from tests.support import assert_problem

LENDERS = "/api/v1/portfolio/lenders"
BODY = {"name": "Crédit Mutuel du Sénégal", "institution_type": "credit_union", "country": "SN", "currencies": ["XOF"]}


async def secrets_of(connection: AsyncConnection, lender_id: str) -> list[str]:
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        return [s.secret for s in await valid_secrets(session, uuid.UUID(lender_id))]


def signed(secret: str, body: bytes) -> dict[str, str]:
    return sign(secret, msg_id=f"msg_{uuid.uuid4().hex}", timestamp=datetime.now(UTC), body=body)


async def test_a_lender_gets_a_secret_once_and_rotation_keeps_two_valid(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    created = await api.post(LENDERS, json=BODY, headers=ADMIN)
    assert created.status_code == 201, created.text
    lender = created.json()
    first = lender["webhook_secret"]["secret"]
    assert first.startswith("whsec_")
    listed = (await api.get(f"{LENDERS}/{lender['id']}/webhook-secrets", headers=ADMIN)).json()
    assert len(listed) == 1 and "secret" not in listed[0]

    second = (await api.post(f"{LENDERS}/{lender['id']}/webhook-secrets", headers=ADMIN)).json()["secret"]
    push = b'{"items": []}'
    valid = await secrets_of(connection, lender["id"])
    assert set(valid) == {first, second}
    # a push signed with either is accepted during the rotation
    for secret in (first, second):
        assert verify(valid, signed(secret, push), push)

    # the lender switched: the old one is retired, and refused from then on
    old_id = next(
        s["id"]
        for s in (await api.get(f"{LENDERS}/{lender['id']}/webhook-secrets", headers=ADMIN)).json()
        if s["created_at"] == listed[0]["created_at"]
    )
    assert (await api.delete(f"{LENDERS}/{lender['id']}/webhook-secrets/{old_id}", headers=ADMIN)).status_code == 200
    valid = await secrets_of(connection, lender["id"])
    assert valid == [second]
    try:
        verify(valid, signed(first, push), push)
    except WebhookRejected:
        pass
    else:
        raise AssertionError("a retired secret must not verify")
    # the only valid secret cannot be retired
    only = (await api.get(f"{LENDERS}/{lender['id']}/webhook-secrets", headers=ADMIN)).json()[0]["id"]
    assert_problem(await api.delete(f"{LENDERS}/{lender['id']}/webhook-secrets/{only}", headers=ADMIN), 409)


async def test_rotating_twice_never_leaves_three_valid(api: httpx.AsyncClient, connection: AsyncConnection) -> None:
    lender = (await api.post(LENDERS, json={**BODY, "name": "Banque Agricole"}, headers=ADMIN)).json()
    for _ in range(3):
        await api.post(f"{LENDERS}/{lender['id']}/webhook-secrets", headers=ADMIN)
    assert len(await secrets_of(connection, lender["id"])) == 2


async def test_who_may_see_and_manage_lenders(api: httpx.AsyncClient) -> None:
    lender = (await api.post(LENDERS, json={**BODY, "name": "Fonkoze"}, headers=ADMIN)).json()
    own = as_role(Role.lender, uuid.UUID(lender["id"]))
    assert (await api.get(f"{LENDERS}/{lender['id']}", headers=own)).json()["name"] == "Fonkoze"
    assert_problem(await api.get(f"{LENDERS}/{lender['id']}", headers=as_role(Role.lender, uuid.uuid4())), 404)
    assert_problem(await api.get(LENDERS, headers=own), 403)
    assert_problem(await api.get(f"{LENDERS}/{lender['id']}", headers=as_role(Role.ica, uuid.uuid4())), 403)
    assert_problem(await api.post(LENDERS, json={**BODY, "name": "Rogue"}, headers=as_role(Role.analyst)), 403)
    assert_problem(await api.post(f"{LENDERS}/{lender['id']}/webhook-secrets", headers=own), 403)
    assert_problem(await api.post(LENDERS, json={**BODY, "name": "Fonkoze"}, headers=ADMIN), 409)
    for bad in (
        {"currencies": ["XOF", "XOF"]},
        {"currencies": ["ABC"]},
        {"country": "XX"},
        {"institution_type": "hedge_fund"},
    ):
        assert_problem(await api.post(LENDERS, json={**BODY, "name": "Other", **bad}, headers=ADMIN), 422)
    assert (await api.patch(f"{LENDERS}/{lender['id']}", json={"active": False}, headers=ADMIN)).json()[
        "active"
    ] is False
