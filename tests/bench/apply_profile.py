"""Profiles the push applier in-process: the pushes bench's 2,000 XOF loans, then 30 stored pushes of 500 repayments
applied by `process_next` as the worker does (15,000 items a transaction), twice, timed and under cProfile.
Run: `.venv/bin/python -m tests.bench.apply_profile` (a scratch database; prints CPU per item and the top functions;
`NOPROFILE=1`: timed only; `ROUNDS=n`; `DEFAULT_GC=1`: Python's own collector thresholds, not the worker's)."""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import time
import uuid

from sqlalchemy import text

from services.portfolio.loans.service import today
from services.portfolio.pushes.processor import process_next
from services.portfolio.pushes.worker import tune_gc
from shared.db import create_engine, make_sessionmaker
from tests.bench.harness import scratch_database
from tests.bench.pushes import BATCH, repayments_body, setup

PUSHES = 30


async def store(url: str, lender_id: str, loans: list[str], round_: int) -> None:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    day = today().isoformat()
    async with engine.begin() as conn:
        for n in range(PUSHES):
            body = repayments_body(f"P{round_}-{n}", loans, n, BATCH, day)
            await conn.execute(
                text(
                    "INSERT INTO portfolio.lender_pushes (id, lender_id, webhook_id, raw_body, item_count, received_at)"
                    " VALUES (:id, :lender, :w, :body, :n, clock_timestamp())"
                ),
                {
                    "id": uuid.uuid4(),
                    "lender": uuid.UUID(lender_id),
                    "w": f"msg_{round_}_{n}",
                    "body": body,
                    "n": BATCH,
                },
            )
    await engine.dispose()


async def apply(url: str, profile: cProfile.Profile | None) -> float:
    engine = create_engine(url, pool_size=2, max_overflow=0)
    sessionmaker = make_sessionmaker(engine)
    started = time.process_time()
    if profile:
        profile.enable()
    async with sessionmaker() as session, session.begin():
        done = await process_next(session, max_pushes=500, max_items=PUSHES * BATCH)
    if profile:
        profile.disable()
    cpu = time.process_time() - started
    assert len(done) == PUSHES, done
    await engine.dispose()
    return cpu


def run() -> None:
    if not os.environ.get("DEFAULT_GC"):
        tune_gc()  # as the worker process does
    with scratch_database() as url:
        lender_id, _, loans = asyncio.run(setup(url))
        for round_ in range(int(os.environ.get("ROUNDS", "2"))):
            asyncio.run(store(url, lender_id, loans, round_))
            profile = cProfile.Profile() if round_ == 1 and not os.environ.get("NOPROFILE") else None
            cpu = asyncio.run(apply(url, profile))
            print(f"round {round_}: {cpu / (PUSHES * BATCH) * 1e6:.0f} us CPU an item (this process)", flush=True)
        if profile is not None:
            pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(35)


if __name__ == "__main__":
    run()
