"""The admin API for keys, and what the gateway answers to missing, wrong, revoked and expired keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Role
from tests.support import assert_problem, bearer, gateway_client, insert_key

ORG = uuid.UUID("5b0c7f0e-3d0e-4f38-9a4a-0c2a8e7f1d11")


async def test_admin_creates_a_key_that_is_shown_once_and_stored_only_as_a_hash(connection: AsyncConnection) -> None:
    admin = await insert_key(connection)
    async with gateway_client(connection) as client:
        created = await client.post(
            "/api/v1/admin/api-keys",
            json={"name": "SUCO partner system", "role": "ica", "organization_id": str(ORG)},
            headers=bearer(admin),
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["key"].startswith("fsk_") and body["role"] == "ica" and body["organization_id"] == str(ORG)

        listed = await client.get("/api/v1/admin/api-keys", headers=bearer(admin))
        assert listed.status_code == 200
        assert body["key"] not in listed.text
        assert [k["name"] for k in listed.json()].count("SUCO partner system") == 1
        assert all("key" not in k for k in listed.json())

    stored = (
        await connection.execute(
            text("SELECT key_hash, prefix FROM gateway.api_keys WHERE id = :id"), {"id": body["id"]}
        )
    ).one()
    assert stored.key_hash != body["key"] and len(stored.key_hash) == 64
    assert body["key"] not in stored.key_hash


async def test_a_new_ica_key_authenticates_as_its_organization(connection: AsyncConnection) -> None:
    admin = await insert_key(connection)
    async with gateway_client(connection) as client:
        created = await client.post(
            "/api/v1/admin/api-keys",
            json={"name": "ICA", "role": "ica", "organization_id": str(ORG)},
            headers=bearer(admin),
        )
        ica_key = created.json()["key"]
        refused = await client.get("/api/v1/admin/api-keys", headers=bearer(ica_key))
        body = assert_problem(refused, 403)
        assert "ica" in body["detail"]


async def test_no_key_is_401_with_a_problem(connection: AsyncConnection) -> None:
    async with gateway_client(connection) as client:
        for path in ("/api/v1/admin/api-keys", "/api/v1/applications/whoami", "/api/v1/reporting/anything"):
            response = await client.get(path)
            assert_problem(response, 401)
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_an_unknown_key_is_401(connection: AsyncConnection) -> None:
    async with gateway_client(connection) as client:
        response = await client.get("/api/v1/admin/api-keys", headers=bearer("fsk_" + "x" * 43))
        assert_problem(response, 401)
        response = await client.get("/api/v1/admin/api-keys", headers={"X-API-Key": "not-a-key"})
        assert_problem(response, 401)


async def test_an_ica_key_on_the_admin_api_is_403(connection: AsyncConnection) -> None:
    ica = await insert_key(connection, Role.ica, ORG)
    async with gateway_client(connection) as client:
        response = await client.post(
            "/api/v1/admin/api-keys", json={"name": "sneaky", "role": "admin"}, headers=bearer(ica)
        )
        assert_problem(response, 403)
    count = await connection.scalar(text("SELECT count(*) FROM gateway.api_keys WHERE name = 'sneaky'"))
    assert count == 0


async def test_a_revoked_key_is_refused_at_once(connection: AsyncConnection) -> None:
    admin = await insert_key(connection)
    async with gateway_client(connection) as client:
        created = (
            await client.post(
                "/api/v1/admin/api-keys", json={"name": "analyst", "role": "analyst"}, headers=bearer(admin)
            )
        ).json()
        # used once, so the gateway has it cached
        assert (await client.get("/api/v1/admin/api-keys", headers=bearer(created["key"]))).status_code == 403
        revoked = await client.delete(f"/api/v1/admin/api-keys/{created['id']}", headers=bearer(admin))
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        body = assert_problem(await client.get("/api/v1/portfolio/whoami", headers=bearer(created["key"])), 401)
        assert "revoked" in body["detail"]
        listed = await client.get("/api/v1/admin/api-keys", headers=bearer(admin))
        assert created["id"] not in listed.text
        with_revoked = await client.get("/api/v1/admin/api-keys?include_revoked=true", headers=bearer(admin))
        assert created["id"] in with_revoked.text


async def test_an_expired_key_is_401(connection: AsyncConnection) -> None:
    expired = await insert_key(connection, Role.funder, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    async with gateway_client(connection) as client:
        body = assert_problem(await client.get("/api/v1/reporting/whoami", headers=bearer(expired)), 401)
        assert "expired" in body["detail"]


async def test_key_creation_refuses_bad_input_with_pointers_and_writes_nothing(connection: AsyncConnection) -> None:
    admin = await insert_key(connection)
    before = await connection.scalar(text("SELECT count(*) FROM gateway.api_keys"))
    async with gateway_client(connection) as client:
        missing_org = await client.post(
            "/api/v1/admin/api-keys", json={"name": "lender", "role": "lender"}, headers=bearer(admin)
        )
        body = assert_problem(missing_org, 422)
        assert "organization_id" in body["errors"][0]["detail"]

        bad_role = await client.post(
            "/api/v1/admin/api-keys", json={"name": "x", "role": "root"}, headers=bearer(admin)
        )
        body = assert_problem(bad_role, 422)
        assert body["errors"][0]["pointer"] == "#/role"

        malformed = await client.post(
            "/api/v1/admin/api-keys",
            content=b'{"name": "x", "role": ',
            headers={**bearer(admin), "Content-Type": "application/json"},
        )
        body = assert_problem(malformed, 422)
        assert body["errors"][0]["pointer"] == "#" and "malformed JSON" in body["errors"][0]["detail"]

        unknown_key = await client.delete(f"/api/v1/admin/api-keys/{uuid.uuid4()}", headers=bearer(admin))
        assert_problem(unknown_key, 404)
        not_a_uuid = await client.delete("/api/v1/admin/api-keys/12", headers=bearer(admin))
        body = assert_problem(not_a_uuid, 422)
        assert body["errors"][0]["parameter"] == "key_id"
    assert await connection.scalar(text("SELECT count(*) FROM gateway.api_keys")) == before


async def test_unknown_routes_and_methods_are_problems(connection: AsyncConnection) -> None:
    async with gateway_client(connection) as client:
        assert_problem(await client.get("/nowhere"), 404)
        assert_problem(await client.get("/api/v1/nobody/here"), 404)
        assert_problem(await client.put("/healthz"), 405)


async def test_a_keys_last_use_is_recorded(connection: AsyncConnection) -> None:
    admin = await insert_key(connection)
    async with gateway_client(connection) as client:

        async def mine() -> dict[str, Any]:
            # other tests' keys may be committed in this database: find this test's own by its prefix
            listed = (await client.get("/api/v1/admin/api-keys", headers=bearer(admin))).json()
            return next(k for k in listed if admin.startswith(k["prefix"]))

        assert (await mine())["last_used_at"] is None  # written in batches, not on the request's path
        await client._transport.app.app.api.state.keystore.flush_last_used()  # type: ignore[attr-defined]
        used = datetime.fromisoformat((await mine())["last_used_at"])
        assert abs((datetime.now(UTC) - used).total_seconds()) < 60
