"""`create_app()` builds the portfolio service (`uvicorn --factory services.portfolio.app:create_app`)."""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

from services.portfolio.fx.router import internal as fx_internal
from services.portfolio.fx.router import router as fx_router
from services.portfolio.lenders.router import router as lenders_router
from services.portfolio.loans.daily import daily_close
from services.portfolio.loans.events import LOANS_FROM_APPROVALS
from services.portfolio.loans.internal import internal as loans_internal
from services.portfolio.loans.router import admin as loans_admin
from services.portfolio.loans.router import router as loans_router
from services.portfolio.models import SCHEMA, events, metadata
from services.portfolio.pushes.processor import Processor
from services.portfolio.pushes.receive import PushReceiver, push_pool
from services.portfolio.pushes.router import router as pushes_router
from services.portfolio.pushes.router import webhooks as pushes_webhooks
from services.portfolio.settings import Settings
from shared.app import create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def background(app: FastAPI) -> AsyncIterator[None]:
        """Applies lenders' pushes (woken as this process stores one; polling for the others) and closes each day
        once it is over."""
        async with contextlib.AsyncExitStack() as stack:
            # receiving pushes: a small pool of its own (`pushes/receive.py` says why)
            app.state.push_pool = await stack.enter_async_context(
                push_pool(settings.require_database_url(), size=settings.pushes_receive_pool_size)
            )
            if settings.pushes_enabled:
                processor = Processor(app.state.engine, poll_seconds=settings.pushes_poll_seconds)
                app.state.push_processor = processor
                await stack.enter_async_context(processor.running())
            if settings.close_of_day_enabled:
                await stack.enter_async_context(
                    daily_close(app.state.engine, every_seconds=settings.close_of_day_check_seconds)
                )
            yield

    app = create_service_app(
        name=SCHEMA,
        title="FISIQ Portfolio",
        description="Lenders, loans, schedules, disbursements, repayments, arrears, FX rates and lender webhooks.",
        settings=settings,
        migrations_dir=MIGRATIONS,
        metadata=metadata,
        events=events,
        routers=[
            lenders_router,
            loans_router,
            loans_admin,
            pushes_router,
            pushes_webhooks,
            fx_router,
            fx_internal,
            loans_internal,
        ],
        subscriptions=[LOANS_FROM_APPROVALS],
        extra_lifespan=background,
        hot_paths=[PushReceiver],
        configure_logs=configure_logs,
    )
    app.state.settings = settings
    return app
