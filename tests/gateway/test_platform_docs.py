"""Readiness of the whole platform and its one merged OpenAPI, as a partner sees them through the gateway."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.support import SERVICE_NAMES, Upstream, gateway_client, service_app


@pytest.fixture
async def services(engine: AsyncEngine) -> AsyncIterator[dict[str, Upstream]]:
    servers = {name: Upstream(service_app(name, engine)) for name in SERVICE_NAMES}
    for server in servers.values():
        await server.start()
    yield servers
    for server in servers.values():
        await server.stop()


async def test_readyz_reports_every_service_and_their_migrations(
    connection: AsyncConnection, engine: AsyncEngine, services: dict[str, Upstream]
) -> None:
    async with gateway_client(connection, {n: s.url for n, s in services.items()}) as client:
        client._transport.app.app.api.state.engine = engine  # type: ignore[attr-defined]  # readiness needs an engine
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready"
        assert set(body["services"]) == set(SERVICE_NAMES)
        for name in SERVICE_NAMES:
            migration = body["services"][name]["migration"]
            assert migration["current"] == migration["head"] is not None

        await services["guarantees"].stop()
        degraded = await client.get("/readyz")
        assert degraded.status_code == 503
        assert degraded.json()["services"]["guarantees"]["status"] == "unreachable"
        assert degraded.json()["services"]["portfolio"]["status"] == "ready"
        await services["guarantees"].start()


async def test_merged_openapi_has_every_service_and_the_api_key_scheme(
    connection: AsyncConnection, services: dict[str, Upstream]
) -> None:
    async with gateway_client(connection, {n: s.url for n, s in services.items()}) as client:
        doc = (await client.get("/openapi.json")).json()
        assert "x-unavailable-services" not in doc["info"]
        for name in SERVICE_NAMES:
            assert f"/api/v1/{name}/whoami" in doc["paths"]
        assert "/api/v1/admin/api-keys" in doc["paths"]
        assert set(doc["components"]["securitySchemes"]) == {"ApiKeyBearer", "ApiKeyHeader"}
        assert doc["paths"]["/healthz"]["get"]["security"] == []
        create = doc["paths"]["/api/v1/admin/api-keys"]["post"]
        assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ApiKeyCreate")
        assert doc["components"]["schemas"]["ApiKeyCreate"]["examples"]
        # every $ref resolves inside the merged document
        text = (await client.get("/openapi.json")).text

        for ref in set(re.findall(r'"#/components/schemas/([^"]+)"', text)):
            assert ref in doc["components"]["schemas"], ref

        docs = await client.get("/docs")
        assert docs.status_code == 200 and "/openapi.json" in docs.text
        assert (await client.get("/docs/static/swagger-ui-bundle.js")).status_code == 200


async def test_openapi_says_which_services_are_missing(connection: AsyncConnection) -> None:
    async with gateway_client(connection) as client:
        doc = (await client.get("/openapi.json")).json()
        assert sorted(doc["info"]["x-unavailable-services"]) == sorted(SERVICE_NAMES)
        assert "/api/v1/admin/api-keys" in doc["paths"]
