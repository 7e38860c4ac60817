"""`python -m services.portfolio.pushes.worker`: applies lenders' stored pushes in a process of its own.

The web process then only receives (verifies and stores) pushes, with `PORTFOLIO_PUSHES_ENABLED=false`, and this
process applies them: on a small machine the two no longer share one event loop, so a burst of applying never
delays the 2xx of the pushes arriving meanwhile, and it runs at a lower CPU priority (`PORTFOLIO_PUSHES_WORKER_NICE`,
default 5), so receiving wins the cores when both want them. It polls for stored pushes every
`PORTFOLIO_PUSHES_WORKER_POLL_SECONDS` (nothing wakes it across processes: a push is stored by one autocommitted
INSERT, kept free of NOTIFY, which would serialize the commits). Several workers (and web processes with the
processor on) may run at once: pushes are claimed with `FOR UPDATE SKIP LOCKED`, a lender's in the order received.
SIGTERM or SIGINT stops it between two batches; a batch cut short by `kill -9` is rolled back and taken again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal

from services.portfolio.pushes.processor import Processor
from services.portfolio.settings import Settings
from shared.db import create_engine
from shared.logging import configure_logging

log = logging.getLogger("services.portfolio.pushes.worker")
GC_ALLOCATIONS = 50_000  # allocations between two collections of the youngest generation (the default: 700)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    engine = create_engine(
        settings.require_database_url(), pool_size=2, max_overflow=2, application_name="portfolio-push-worker"
    )
    processor = Processor(
        engine,
        poll_seconds=settings.pushes_worker_poll_seconds,
        linger_seconds=0.0,
        batch_items=settings.pushes_worker_batch_items,
    )
    try:
        async with processor.running():
            log.info("applying lenders' pushes (polling every %.2f s)", settings.pushes_worker_poll_seconds)
            await stop.wait()
    finally:
        await engine.dispose()


async def main_async(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)


def tune_gc() -> None:
    """A batch allocates millions of short-lived objects: the cyclic collector ran every 700 allocations and walked
    the batch's live ledgers each time (13 % of the CPU of an applied item, `tests/bench/apply_profile.py`). What
    was imported at start is set aside from its walks."""
    gc.set_threshold(GC_ALLOCATIONS, 50, 100)
    gc.freeze()


def main() -> None:
    tune_gc()
    settings = Settings()
    configure_logging("portfolio-pushes", settings.log_level)
    if settings.pushes_worker_nice:
        with contextlib.suppress(OSError):  # a lower priority is a preference, never a reason not to run
            os.nice(settings.pushes_worker_nice)
    asyncio.run(main_async(settings))
    log.info("stopped")


if __name__ == "__main__":
    main()
