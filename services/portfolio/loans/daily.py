"""The daily close of day: once a day is over (UTC), it is closed once, by whichever process gets there first;
days missed while no process ran are closed first, in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.portfolio.loans.arrears import close_of_day
from services.portfolio.loans.models import CloseOfDay
from services.portfolio.loans.service import today
from shared.background import log_failure, running
from shared.db import make_sessionmaker

log = logging.getLogger("services.portfolio.close_of_day")
CATCH_UP_DAYS = 31


async def close_yesterday(engine: AsyncEngine) -> bool:
    """Closes yesterday unless it is closed already, and first any day missed since the last one closed (the
    service was down, say; at most `CATCH_UP_DAYS`), in date order, each day in its own transaction. Answers
    whether this call closed a day."""
    yesterday = today() - timedelta(days=1)
    sessionmaker = make_sessionmaker(engine)
    closed = False
    while True:
        async with sessionmaker() as session, session.begin():
            if not await session.scalar(text("SELECT pg_try_advisory_xact_lock(hashtext('portfolio.close_of_day'))")):
                return closed  # another process is closing
            last = await session.scalar(select(func.max(CloseOfDay.as_of)))
            if last is not None and last >= yesterday:
                return closed
            day = max(last + timedelta(days=1), yesterday - timedelta(days=CATCH_UP_DAYS - 1)) if last else yesterday
            result = await close_of_day(session, day, actor=None)
        log.info("closed %s: %d loans read, %d events, %d failed", day, result.loans, result.events, result.failed)
        closed = True


@contextlib.asynccontextmanager
async def daily_close(engine: AsyncEngine, *, every_seconds: float) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            try:
                await close_yesterday(engine)
            except asyncio.CancelledError:
                raise
            except Exception:
                log_failure(log, "the close of day failed; it will be tried again")
            await asyncio.sleep(every_seconds)

    async with running(loop(), name="portfolio-close-of-day"):
        yield
