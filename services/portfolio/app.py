"""`create_app()` builds the portfolio service (`uvicorn --factory services.portfolio.app:create_app`)."""

from pathlib import Path

from fastapi import FastAPI

from services.portfolio.fx.router import internal as fx_internal
from services.portfolio.fx.router import router as fx_router
from services.portfolio.lenders.router import router as lenders_router
from services.portfolio.loans.events import LOANS_FROM_APPROVALS
from services.portfolio.loans.router import router as loans_router
from services.portfolio.models import SCHEMA, events, metadata
from services.portfolio.pushes.router import router as pushes_router
from services.portfolio.pushes.router import webhooks as pushes_webhooks
from services.portfolio.settings import Settings
from shared.app import create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    return create_service_app(
        name=SCHEMA,
        title="FISIQ Portfolio",
        description="Lenders, loans, schedules, disbursements, repayments, arrears, FX rates and lender webhooks.",
        settings=settings or Settings(),
        migrations_dir=MIGRATIONS,
        metadata=metadata,
        events=events,
        routers=[lenders_router, loans_router, pushes_router, pushes_webhooks, fx_router, fx_internal],
        subscriptions=[LOANS_FROM_APPROVALS],
        configure_logs=configure_logs,
    )
