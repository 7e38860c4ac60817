"""`create_app()` builds the guarantees service (`uvicorn --factory services.guarantees.app:create_app`)."""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

from services.guarantees.capital.router import router as capital_router
from services.guarantees.claims.router import router as claims_router
from services.guarantees.facilities.router import router as facilities_router
from services.guarantees.fees.router import router as fees_router
from services.guarantees.issuance.events import subscription
from services.guarantees.issuance.expiry import admin as expiry_admin
from services.guarantees.issuance.expiry import daily_expiry
from services.guarantees.issuance.room import internal as room_internal
from services.guarantees.issuance.router import router as guarantees_router
from services.guarantees.metrics import router as metrics_router
from services.guarantees.models import SCHEMA, events, metadata
from services.guarantees.policy.router import router as policy_router
from services.guarantees.settings import Settings
from shared.app import create_service_app
from shared.peers import InternalClient

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    settings = settings or Settings()
    peers = InternalClient(secret=settings.require_internal_secret(), caller="guarantees", purpose="guarantees")

    @contextlib.asynccontextmanager
    async def background(app: FastAPI) -> AsyncIterator[None]:
        """Expires the guarantees whose claim deadline passed with no claim."""
        async with contextlib.AsyncExitStack() as stack:
            if settings.expiry_enabled:
                await stack.enter_async_context(
                    daily_expiry(app.state.engine, peers, every_seconds=settings.expiry_check_seconds)
                )
            yield

    app = create_service_app(
        name=SCHEMA,
        title="FISIQ Guarantees",
        description="Guarantee capital ledger, facilities, guarantees, limits, claims, recoveries and fees.",
        settings=settings,
        migrations_dir=MIGRATIONS,
        metadata=metadata,
        events=events,
        routers=[
            capital_router,
            facilities_router,
            policy_router,
            guarantees_router,
            expiry_admin,
            claims_router,
            fees_router,
            metrics_router,
            room_internal,
        ],
        subscriptions=[subscription(peers)],
        extra_lifespan=background,
        configure_logs=configure_logs,
    )
    app.state.peers = peers
    return app
