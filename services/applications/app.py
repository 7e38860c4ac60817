"""`create_app()` builds the applications service (`uvicorn --factory services.applications.app:create_app`)."""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

from services.applications.committee.router import router as committee_router
from services.applications.documents.router import router as documents_router
from services.applications.members.router import router as members_router
from services.applications.models import SCHEMA, events, metadata, webhooks
from services.applications.notifications.router import router as notifications_router
from services.applications.partners.router import router as partners_router
from services.applications.pipeline.internal import internal as pipeline_internal
from services.applications.pipeline.peers import HttpPeers
from services.applications.pipeline.router import router as pipeline_router
from services.applications.policy.router import router as policy_router
from services.applications.settings import Settings
from shared.app import create_service_app
from shared.events.outbox import listening
from shared.webhooks.outbound import Deliverer, DelivererSettings, wake_channel

MIGRATIONS = Path(__file__).parent / "migrations"


def deliverer_for(app: FastAPI, settings: Settings) -> Deliverer:
    return Deliverer(
        app.state.engine,
        webhooks,
        DelivererSettings(
            max_attempts=settings.webhooks_max_attempts,
            base_backoff_seconds=settings.webhooks_base_backoff_seconds,
            allow_http=settings.webhooks_allow_http,
        ),
    )


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def notifications(app: FastAPI) -> AsyncIterator[None]:
        """Deliver notifications to ICAs from this process (woken by NOTIFY at commit, polling as a fallback)."""
        if not settings.events_enabled:
            yield
            return
        deliverer = deliverer_for(app, settings)
        channels = {wake_channel(SCHEMA): lambda _payload: deliverer.wake()}
        async with deliverer.running(), listening(settings.require_database_url(), channels):
            yield

    app = create_service_app(
        name=SCHEMA,
        title="FISIQ Applications",
        description="ICAs, their partner businesses, financing applications, screening, scorecard and committee.",
        settings=settings,
        migrations_dir=MIGRATIONS,
        metadata=metadata,
        events=events,
        routers=[
            members_router,
            partners_router,
            policy_router,
            pipeline_router,
            committee_router,
            notifications_router,
            documents_router,
            pipeline_internal,
        ],
        extra_lifespan=notifications,
        configure_logs=configure_logs,
    )
    app.state.settings = settings
    app.state.peers = HttpPeers(secret=app.state.internal_secret)
    return app
