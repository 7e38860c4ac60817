"""Helpers the tests share: real HTTP servers for services, a gateway wired to the test database, API keys."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from services.gateway.apikeys import service as key_service
from services.gateway.apikeys.schemas import ApiKeyCreate
from services.gateway.app import create_app as create_gateway
from services.gateway.app import start_runtime
from services.gateway.keystore import new_key
from services.gateway.settings import Settings as GatewaySettings
from shared.app import bind_database
from shared.auth import SERVICE_HEADER, Role, mint_service_token
from shared.db import make_sessionmaker
from shared.events.contracts import EventEnvelope
from shared.peers import InternalClient
from tests.conftest import INTERNAL_SECRET

SERVICE_NAMES = ("applications", "portfolio", "guarantees", "reporting")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_app(name: str, bind: AsyncEngine | AsyncConnection) -> FastAPI:
    module = importlib.import_module(f"services.{name}.app")
    settings_module = importlib.import_module(f"services.{name}.settings")
    app: FastAPI = module.create_app(
        settings_module.Settings(internal_secret=INTERNAL_SECRET, database_url="postgresql://unused/x"),
        configure_logs=False,
    )
    if isinstance(bind, AsyncConnection):
        app.state.sessionmaker = make_sessionmaker(bind, join_transaction_mode="create_savepoint")
        app.state.engine = bind  # what reads through the driver use (`shared.db.fetch_one_statement`)
    else:
        bind_database(app, bind)
    return app


class Upstream:
    """An ASGI app served over real TCP by uvicorn in this event loop; can be stopped and started again."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_config=None, lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(200):
            if self._server.started:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError("upstream did not start")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[Upstream]:
    upstream = Upstream(app)
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


@contextlib.asynccontextmanager
async def gateway_client(
    connection: AsyncConnection, upstream_urls: dict[str, str] | None = None, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The whole gateway (request-id middleware, proxy, admin API) over ASGI, its database the test transaction."""
    urls = {f"{name}_url": (upstream_urls or {}).get(name, f"http://127.0.0.1:{free_port()}") for name in SERVICE_NAMES}
    settings = GatewaySettings(
        database_url="postgresql://unused/x", internal_secret=INTERNAL_SECRET, **{**urls, **overrides}
    )
    outer = create_gateway(settings, configure_logs=False)
    api: FastAPI = outer.app.api
    api.state.sessionmaker = make_sessionmaker(connection, join_transaction_mode="create_savepoint")
    api.state.engine = connection
    start_runtime(api, settings, INTERNAL_SECRET)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer), base_url="http://gateway") as client:
            yield client
    finally:
        await api.state.proxy.close()


async def insert_key(
    connection: AsyncConnection,
    role: Role = Role.admin,
    organization_id: uuid.UUID | None = None,
    **spec: Any,
) -> str:
    """A key stored straight in the test transaction (as the bootstrap does); answers its plaintext."""
    plaintext = new_key()
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        await key_service.store_key(
            session,
            plaintext=plaintext,
            spec=ApiKeyCreate(name=f"test {role.value}", role=role, organization_id=organization_id, **spec),
            created_by=None,
        )
        await session.commit()
    return plaintext


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["request_id"] and body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


class AsgiPeers(InternalClient):
    """The platform's InternalClient, its calls served by the services' apps in this process."""

    def __init__(self, apps: dict[str, FastAPI], caller: str) -> None:
        super().__init__(secret=INTERNAL_SECRET, caller=caller, purpose=caller)
        self.apps = apps

    async def _call(
        self,
        method: str,
        service: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        problem_404: bool = False,
    ) -> httpx.Response:
        token = mint_service_token(self.caller, secret=self.secret, audience=service)
        transport = httpx.ASGITransport(app=self.apps[service])
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{service}") as client:
            response = await client.request(method, path, params=params, json=json, headers={SERVICE_HEADER: token})
        allowed_404 = problem_404 and "problem" in response.headers.get("content-type", "")
        if response.status_code != 200 and not (response.status_code == 404 and allowed_404):
            raise self.unexpected(service)
        return response


def wired(connection: AsyncConnection) -> dict[str, FastAPI]:
    """The four services on the test transaction; the guarantees' and the reporting service's internal calls (an
    `InternalClient`) served by the others in this process."""
    apps = {name: service_app(name, connection) for name in SERVICE_NAMES}
    for name in ("guarantees", "reporting"):
        apps[name].state.peers = AsgiPeers(apps, name)
    return apps


async def handle_in_pages(
    session: AsyncSession,
    batch_handler: Callable[[AsyncSession, list[EventEnvelope]], Awaitable[None]] | None,
    events: list[EventEnvelope],
    sizes: Sequence[int],
) -> None:
    """Hands `events` to a subscription's batch handler in consecutive pages of `sizes` (covering them all)."""
    assert batch_handler is not None
    i = 0
    for size in sizes:
        await batch_handler(session, events[i : i + size])
        i += size
    assert i >= len(events)
