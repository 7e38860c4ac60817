"""`create_app()` builds the gateway (`uvicorn --factory services.gateway.app:create_app`).

The outer ASGI callable sends `/api/v1/<service>/...` and `/webhooks/<kind>/...` straight to the proxy (no
framework routing on the hot path); everything else — health, the admin API, the merged OpenAPI and its docs —
is served by the gateway's own FastAPI app.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from services.gateway.apikeys.router import router as api_keys_router
from services.gateway.breaker import CircuitBreaker
from services.gateway.keystore import KeyStore, last_used_flusher
from services.gateway.models import SCHEMA
from services.gateway.openapi import OpenApiCache
from services.gateway.proxy import Proxy, Upstream
from services.gateway.ratelimit import RateLimiter
from services.gateway.settings import Settings
from shared.app import bind_database, readiness, settle_heap
from shared.db import create_engine
from shared.logging import configure_logging
from shared.middleware import RequestContextMiddleware
from shared.migrations import head_revision
from shared.problems import install_problem_handlers, problem_responses

MIGRATIONS = Path(__file__).parent / "migrations"
WEBHOOK_ROUTES = {"lenders": "portfolio"}  # /webhooks/lenders/... is received by the portfolio service
DESCRIPTION = """
The REST API of FISIQ's operating platform: a co-financing and guarantee fund for cooperatives, mutuals and
associations in Africa, Asia, Latin America and the Caribbean.

**Authentication**: every call under `/api/v1/` carries an API key issued by a fund admin, as
`Authorization: Bearer fsk_...` (or `X-API-Key`). A key has one role (`admin`, `analyst`, `committee`,
`fund_manager`, `ica`, `lender`, `funder`); `ica` and `lender` keys see their own organization's data only.

**Errors** are RFC 9457 `application/problem+json` bodies with a `request_id`; validation errors list each bad
field with a JSON `pointer`. **Money** is a string amount with an ISO 4217 currency (`"1250.50"`, `"CAD"`).
**Retries**: send an `Idempotency-Key` header on POSTs; a replay returns the first response.
**Rate limits**: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`; past the limit, 429 with
`Retry-After`. **Tracing**: send `X-Request-ID` or read the one each response carries.
"""


def build_fastapi(settings: Settings, *, configure_logs: bool = True) -> FastAPI:
    if configure_logs:
        configure_logging(SCHEMA, settings.log_level)
    secret = settings.require_internal_secret()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            settings.require_database_url(),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            application_name="gateway",
        )
        bind_database(app, engine)
        start_runtime(app, settings, secret)
        settle_heap()
        try:
            async with last_used_flusher(app.state.keystore, settings.last_used_flush_seconds):
                yield
        finally:
            await app.state.proxy.close()
            await engine.dispose()

    app = FastAPI(
        title="FISIQ platform API",
        description=DESCRIPTION,
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        responses=problem_responses(500),
    )
    app.state.settings = settings
    app.state.service_name = SCHEMA
    app.state.schema = SCHEMA
    app.state.head_revision = head_revision(MIGRATIONS)
    app.state.openapi_cache = OpenApiCache(settings.upstreams(), settings.openapi_cache_seconds)
    install_problem_handlers(app)
    app.include_router(api_keys_router)
    app.mount("/docs/static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger-static")

    @app.get("/healthz", tags=["health"], summary="The gateway process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "gateway"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The gateway and every service are ready",
        description="200 when the gateway's database and every service answer ready; 503 otherwise, saying which.",
        responses={503: {"description": "some part is not ready"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        own, _ = await readiness(app)
        proxy: Proxy = app.state.proxy

        async def probe(name: str, base: str) -> tuple[str, Any]:
            try:
                async with proxy.session.get(base + "/readyz", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    return name, await resp.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                return name, {"status": "unreachable", "error": type(exc).__name__}

        services = dict(await asyncio.gather(*(probe(n, b) for n, b in settings.upstreams().items())))
        ok = own.get("status") == "ready" and all(s.get("status") == "ready" for s in services.values())
        body = {"status": "ready" if ok else "not ready", "gateway": own, "services": services}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_json() -> JSONResponse:
        proxy: Proxy = app.state.proxy
        return JSONResponse(await app.state.openapi_cache.get(app.openapi(), proxy.session))

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="FISIQ platform API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
        )

    return app


def start_runtime(app: FastAPI, settings: Settings, secret: str) -> None:
    """The per-process state of the hot path (also called by tests that bind their own database)."""
    app.state.keystore = KeyStore(app.state.sessionmaker, cache_seconds=settings.key_cache_seconds)
    app.state.limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    upstreams = {
        name: Upstream(
            name,
            url.rstrip("/"),
            CircuitBreaker(settings.breaker_failure_threshold, settings.breaker_reset_seconds),
        )
        for name, url in settings.upstreams().items()
    }
    app.state.proxy = Proxy(
        upstreams=upstreams,
        webhook_routes=WEBHOOK_ROUTES,
        keystore=app.state.keystore,
        limiter=app.state.limiter,
        internal_secret=secret,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        pool_wait_timeout=settings.pool_wait_timeout,
        pool_size=settings.pool_size_per_upstream,
        max_body_bytes=settings.max_body_bytes,
    )


class Gateway:
    """The outer ASGI app: proxy for service paths, the FastAPI app for the rest."""

    def __init__(self, api: FastAPI) -> None:
        self.api = api
        self.state = api.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            proxy: Proxy | None = getattr(self.api.state, "proxy", None)
            target = proxy.route(scope["path"]) if proxy is not None else None
            if target is not None:
                assert proxy is not None
                await proxy.handle(scope, receive, send, target[0], authenticate=target[1])
                return
        await self.api(scope, receive, send)


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> Any:
    settings = settings or Settings()
    api = build_fastapi(settings, configure_logs=configure_logs)
    gateway = Gateway(api)
    return RequestContextMiddleware(gateway, log_access=settings.access_log)
