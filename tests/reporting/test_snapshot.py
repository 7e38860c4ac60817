"""A report is read from one snapshot of the read model: every statement of the request sees the database as of
the same instant (a projection committing in between changes none of its figures), and the transaction writes
nothing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.reporting.reports import router
from shared.db import create_engine
from tests.reporting.conftest import FUNDER
from tests.support import service_app


class Probe:
    def __init__(self, seen: dict[str, Any]) -> None:
        self.seen = seen

    def json(self) -> dict[str, Any]:
        return self.seen


async def test_a_report_reads_one_snapshot_and_cannot_write(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = f"public.snapshot_probe_{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {table} (n int)"))
        await conn.execute(text(f"INSERT INTO {table} VALUES (1)"))  # noqa: S608

    async def probe(session: AsyncSession, *_: Any) -> Probe:
        seen: dict[str, Any] = {
            "isolation": await session.scalar(text("SHOW transaction_isolation")),
            "read_only": await session.scalar(text("SHOW transaction_read_only")),
            "before": await session.scalar(text(f"SELECT count(*) FROM {table}")),  # noqa: S608
        }
        async with engine.begin() as other:  # a projection commits while the report is being read
            await other.execute(text(f"INSERT INTO {table} VALUES (2)"))  # noqa: S608
        seen["after"] = await session.scalar(text(f"SELECT count(*) FROM {table}"))  # noqa: S608
        try:
            async with session.begin_nested():
                await session.execute(text(f"INSERT INTO {table} VALUES (3)"))  # noqa: S608
            seen["wrote"] = True
        except DBAPIError as exc:
            seen["wrote"] = False
            seen["refusal"] = str(exc.orig)
        return Probe(seen)

    monkeypatch.setattr(router, "portfolio_report", probe)
    app = service_app("reporting", engine)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reporting") as api:
            seen = (await api.get("/api/v1/reporting/portfolio", headers=FUNDER)).json()
        async with engine.connect() as conn:
            committed = await conn.scalar(text(f"SELECT count(*) FROM {table}"))  # noqa: S608
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE {table}"))
    assert seen["isolation"] == "repeatable read" and seen["read_only"] == "on"
    assert seen["before"] == seen["after"] == 1  # the other commit is not in this report's snapshot
    assert seen["wrote"] is False and "read-only transaction" in seen["refusal"]
    assert committed == 2  # the other transaction's row is there; the report's attempt is not


async def test_a_report_of_one_statement_runs_outside_a_transaction_and_the_next_report_reads_a_snapshot(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline's route declares its report read in one statement (`one_statement`): no BEGIN, each statement
    its own transaction; the connection it used, the pool's only one, serves the next report in a read-only
    snapshot again. So does the connection the whole fund's impact report was read on through the driver; the
    impact report of a selection is read in a snapshot."""

    async def transaction_of(session: AsyncSession) -> dict[str, Any]:
        # now() is the transaction's start: the same for two statements of one transaction, not for two on their own
        first = await session.scalar(text("SELECT now()"))
        await asyncio.sleep(0.002)
        second = await session.scalar(text("SELECT now()"))
        return {
            "isolation": await session.scalar(text("SHOW transaction_isolation")),
            "read_only": await session.scalar(text("SHOW transaction_read_only")),
            "one_transaction": first == second,
        }

    seen: list[dict[str, Any]] = []

    async def probe(session: AsyncSession, *_: Any) -> Probe:
        seen.append(await transaction_of(session))
        return Probe(seen[-1])

    monkeypatch.setattr(router, "pipeline_report", probe)
    monkeypatch.setattr(router, "portfolio_report", probe)
    monkeypatch.setattr(router, "impact_report", probe)  # the impact report of a selection: read in a snapshot
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    app = service_app("reporting", engine)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reporting") as api:
            alone = (await api.get("/api/v1/reporting/pipeline", headers=FUNDER)).json()
            after = (await api.get("/api/v1/reporting/portfolio", headers=FUNDER)).json()
            flows = await api.get("/api/v1/reporting/flows", headers=FUNDER)  # the real one-statement report
            again = (await api.get("/api/v1/reporting/portfolio", headers=FUNDER)).json()
            fund = await api.get("/api/v1/reporting/impact", headers=FUNDER)  # the whole fund's: through the driver
            selected = (await api.get("/api/v1/reporting/impact?currency=XOF", headers=FUNDER)).json()
            last = (await api.get("/api/v1/reporting/portfolio", headers=FUNDER)).json()
    finally:
        await engine.dispose()
    assert alone == {"isolation": "read committed", "read_only": "off", "one_transaction": False}
    assert flows.status_code == 200 and flows.json()["report"] == "flows"
    snapshot = {"isolation": "repeatable read", "read_only": "on", "one_transaction": True}
    assert after == again == selected == last == snapshot
    assert fund.status_code == 200 and fund.json()["report"] == "impact"
