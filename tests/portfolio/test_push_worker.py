"""The push applier as a process of its own (`python -m services.portfolio.pushes.worker`, as `make run` starts
it): it applies the pushes another process stored and committed, at a lower CPU priority, and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import asyncpg
import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from deploy.database import create_database, drop_database
from deploy.migrate import migrate_all
from deploy.topology import PUSH_APPLIER, ROOT, with_workers
from services.portfolio.lenders.schemas import LenderCreate
from services.portfolio.lenders.service import create_lender
from services.portfolio.loans import operations
from services.portfolio.loans.events import open_loan
from services.portfolio.loans.service import Ledgers, today
from services.portfolio.pushes.receive import _STORE
from shared.db import create_engine, make_sessionmaker
from shared.events.outbox import asyncpg_dsn
from tests.portfolio.test_loans import approval


@pytest.fixture
async def committed_database(database_url: str) -> AsyncIterator[str]:
    """A database of its own: what this test commits (a lender, a loan, pushes) is seen by the worker process and
    by no other test."""
    url = make_url(database_url).set(database=f"fisiq_worker_{uuid.uuid4().hex[:8]}")
    rendered = url.render_as_string(hide_password=False)
    await create_database(rendered)
    try:
        await asyncio.to_thread(migrate_all, rendered)
        yield rendered
    finally:
        await drop_database(rendered)


async def lender_with_loan(url: str) -> tuple[uuid.UUID, uuid.UUID]:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with make_sessionmaker(engine)() as session:
            spec = LenderCreate(name="Worker Bank", institution_type="bank", country="SN", currencies=["XOF"])
            lender, _ = await create_lender(session, spec=spec)
            event = approval(["guarantee"], None, "50.00")
            payload = {**event.payload, "terms": {**event.payload["terms"], "lender_id": str(lender.id)}}
            await open_loan(session, event.model_copy(update={"payload": payload}))
            loan_id = await session.scalar(
                text(
                    "UPDATE portfolio.loans SET annual_rate = 0.12, frequency = 'monthly', method = 'annuity'"
                    " WHERE application_id = :a RETURNING id"
                ),
                {"a": uuid.UUID(event.aggregate_id)},
            )
            ledger = (await Ledgers.open(session, [loan_id]))[loan_id]
            await operations.disburse(
                session, ledger, amount=Decimal("12000000"), currency="XOF", value_date=date(2025, 6, 1), actor=None
            )
            await session.commit()
            return lender.id, loan_id
    finally:
        await engine.dispose()


def repayments(loan_id: uuid.UUID, ids: list[str]) -> bytes:
    items = [
        {
            "type": "repayment",
            "transaction_id": txn,
            "loan_id": str(loan_id),
            "amount": {"amount": "1000", "currency": "XOF"},
            "value_date": today().isoformat(),
        }
        for txn in ids
    ]
    return json.dumps({"items": items}).encode()


async def test_the_push_applier_process_applies_pushes_another_process_stored(
    committed_database: str, tmp_path: Path
) -> None:
    lender_id, loan_id = await lender_with_loan(committed_database)
    env = with_workers({**os.environ, "DATABASE_URL": committed_database})
    env["PORTFOLIO_PUSHES_WORKER_POLL_SECONDS"] = "0.05"
    log = tmp_path / "worker.log"
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", PUSH_APPLIER.module, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        # stored as the web process stores them: one autocommitted INSERT each, nothing woken
        conn = await asyncpg.connect(**asyncpg_dsn(committed_database))
        try:
            bodies = [repayments(loan_id, ["W-1", "W-2"]), repayments(loan_id, ["W-2", "W-3"])]
            for n, body in enumerate(bodies):
                await conn.execute(_STORE, uuid.uuid4(), lender_id, f"msg_worker_{n}", body, 2)
            deadline = time.monotonic() + 60
            while await conn.fetchval("SELECT count(*) FROM portfolio.lender_pushes WHERE status = 'received'"):
                assert worker.returncode is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the worker did not apply the pushes:\n" + log.read_text()[-3000:]
                await asyncio.sleep(0.1)
            pushes = await conn.fetch(
                "SELECT applied, duplicates, rejected FROM portfolio.lender_pushes ORDER BY received_at"
            )
            assert [tuple(p) for p in pushes] == [(2, 0, 0), (1, 1, 0)]
            # each repayment applied once: W-2, sent twice, counted once
            paid = await conn.fetch(
                "SELECT external_id FROM portfolio.loan_transactions WHERE loan_id = $1 AND kind = 'repayment'"
                " ORDER BY external_id",
                loan_id,
            )
            assert [r["external_id"] for r in paid] == ["W-1", "W-2", "W-3"]
            # and announced once each, for the guarantees and reporting services
            announced = await conn.fetchval(
                "SELECT count(*) FROM portfolio.outbox WHERE type = 'loan.repayment_applied' AND aggregate_id = $1",
                str(loan_id),
            )
            assert announced == 3
        finally:
            await conn.close()
        assert psutil.Process(worker.pid).nice() >= psutil.Process().nice() + 5, "a lower CPU priority"
    finally:
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(worker.wait(), 20)
    assert code == 0, log.read_text()[-3000:]
