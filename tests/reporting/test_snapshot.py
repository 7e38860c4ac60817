"""A report is read from one snapshot of the read model: every statement of the request sees the database as of
the same instant (a projection committing in between changes none of its figures), and the transaction writes
nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.reporting.reports import router
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
