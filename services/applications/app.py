"""`create_app()` builds the applications service (`uvicorn --factory services.applications.app:create_app`)."""

from pathlib import Path

from fastapi import FastAPI

from services.applications.committee.router import router as committee_router
from services.applications.members.router import router as members_router
from services.applications.models import SCHEMA, events, metadata
from services.applications.partners.router import router as partners_router
from services.applications.pipeline.peers import HttpPeers
from services.applications.pipeline.router import router as pipeline_router
from services.applications.policy.router import router as policy_router
from services.applications.settings import Settings
from shared.app import create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    app = create_service_app(
        name=SCHEMA,
        title="FISIQ Applications",
        description="ICAs, their partner businesses, financing applications, screening, scorecard and committee.",
        settings=settings or Settings(),
        migrations_dir=MIGRATIONS,
        metadata=metadata,
        events=events,
        routers=[members_router, partners_router, policy_router, pipeline_router, committee_router],
        configure_logs=configure_logs,
    )
    app.state.peers = HttpPeers(secret=app.state.internal_secret)
    return app
