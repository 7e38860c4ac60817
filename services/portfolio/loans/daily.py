"""The daily close of day: once a day is over (UTC), it is closed once, by whichever process gets there first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.portfolio.loans.arrears import close_of_day
from services.portfolio.loans.models import CloseOfDay
from services.portfolio.loans.service import today
from shared.db import make_sessionmaker

log = logging.getLogger("services.portfolio.close_of_day")


async def close_yesterday(engine: AsyncEngine) -> bool:
    """Closes yesterday unless it is closed already; answers whether this call closed it."""
    day = today() - timedelta(days=1)
    async with make_sessionmaker(engine)() as session, session.begin():
        if not await session.scalar(text("SELECT pg_try_advisory_xact_lock(hashtext('portfolio.close_of_day'))")):
            return False  # another process is closing
        if await session.scalar(select(CloseOfDay.as_of).where(CloseOfDay.as_of == day)) is not None:
            return False
        result = await close_of_day(session, day, actor=None)
    log.info("closed %s: %d loans read, %d events", day, result.loans, result.events)
    return True


@contextlib.asynccontextmanager
async def daily_close(engine: AsyncEngine, *, every_seconds: float) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            try:
                await close_yesterday(engine)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the close of day failed; it will be tried again")
            await asyncio.sleep(every_seconds)

    task = asyncio.create_task(loop(), name="portfolio-close-of-day")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
