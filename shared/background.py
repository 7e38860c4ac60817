"""A coroutine running in the background for the life of a block: started on entry, cancelled and awaited on
exit (so nothing outlives the service's lifespan)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from shared.problems import database_unavailable


@contextlib.asynccontextmanager
async def running(coroutine: Coroutine[Any, Any, None], *, name: str) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(coroutine, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def log_failure(log: logging.Logger, message: str, *args: object) -> None:
    """Logs why a background loop's round failed (call it in the `except`; the loop retries). The database being
    away (a restart, a failover) is expected now and then: one WARNING line naming the cause, with no trace. Anything
    else is an ERROR with its trace, for someone to look at."""
    exc = sys.exc_info()[1]
    if exc is not None and database_unavailable(exc):
        cause = exc.__cause__ or exc
        log.warning(message + " (the database is unavailable: %s: %s)", *args, type(cause).__name__, cause)
        return
    log.error(message, *args, exc_info=exc)
