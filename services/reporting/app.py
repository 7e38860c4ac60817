"""`create_app()` builds the reporting service (`uvicorn --factory services.reporting.app:create_app`)."""

from pathlib import Path

from fastapi import FastAPI

from services.reporting.models import SCHEMA, events, metadata
from services.reporting.readmodel.applications import SUBSCRIPTION as APPLICATIONS
from services.reporting.readmodel.guarantees import SUBSCRIPTION as GUARANTEES
from services.reporting.readmodel.portfolio import SUBSCRIPTION as PORTFOLIO
from services.reporting.reports.common import REPORTS_SESSION
from services.reporting.reports.reconciliation import router as reconciliation_router
from services.reporting.reports.router import router as reports_router
from services.reporting.settings import Settings
from shared.app import create_service_app
from shared.peers import InternalClient

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        name=SCHEMA,
        title="FISIQ Reporting",
        description="Read models built from events: portfolio quality, guarantees, impact and pipeline reports.",
        settings=settings,
        migrations_dir=MIGRATIONS,
        metadata=metadata,
        events=events,
        routers=[reports_router, reconciliation_router],
        subscriptions=[PORTFOLIO, APPLICATIONS, GUARANTEES],
        configure_logs=configure_logs,
        session_settings=REPORTS_SESSION,
    )
    app.state.peers = InternalClient(
        secret=settings.require_internal_secret(), caller="reporting", purpose="the reconciliation"
    )
    return app
