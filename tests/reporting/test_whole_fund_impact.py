"""The whole fund's impact report, read through the driver (`shared.db.fetch_one_statement`): its CSV is the JSON's
figures; a connection that breaks under its statement is a 503 problem, and the next request is served."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging

import httpx
import pytest
from sqlalchemy import text

from services.reporting.reports import impact
from shared.db import DriverStatement, create_engine, fetch_one_statement
from shared.events.contracts import EventEnvelope
from tests.reporting.conftest import FUNDER
from tests.reporting.scenario import D2
from tests.support import service_app


async def test_the_whole_fund_s_csv_is_one_row_of_the_json_s_figures(
    api: httpx.AsyncClient, scenario: list[EventEnvelope]
) -> None:
    body = (await api.get("/api/v1/reporting/impact", params={"as_of": str(D2)}, headers=FUNDER)).json()
    sheet = await api.get("/api/v1/reporting/impact", params={"as_of": str(D2), "format": "csv"}, headers=FUNDER)
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(sheet.text)))
    assert len(rows) == 1
    total = body["total"]
    assert rows[0]["businesses_financed"] == str(total["businesses_financed"]["value"]) != "0"
    assert rows[0]["jobs_created_PI3687"] == str(total["jobs_created"]["value"])
    assert rows[0]["members_women"] == str(total["members_women"]["value"])
    assert rows[0]["two_x_portfolio_share"] == total["two_x_portfolio_share"]["value"]


async def test_a_connection_ended_under_the_report_is_a_503_and_the_next_request_is_served(
    database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    other = create_engine(database_url, pool_size=1, max_overflow=0)
    app = service_app("reporting", engine)
    real = impact.FUND_STATEMENT
    try:
        pid = (await fetch_one_statement(engine, DriverStatement.compile("SELECT pg_backend_pid() AS pid"), {}))[0]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reporting") as api:
            # the pool's only connection runs the report's statement, made slow, and is ended under it
            monkeypatch.setattr(impact, "FUND_STATEMENT", DriverStatement.compile("SELECT pg_sleep(5)"))
            request = asyncio.create_task(api.get("/api/v1/reporting/impact", headers=FUNDER))
            await asyncio.sleep(0.3)
            async with other.connect() as admin:
                ended = await admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid["pid"]})
                assert ended.scalar_one()
            refused = await request
            assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
            assert refused.json()["type"] == "/problems/database-unavailable"
            monkeypatch.setattr(impact, "FUND_STATEMENT", real)
            with caplog.at_level(logging.WARNING, logger="shared.db"):
                served = await api.get("/api/v1/reporting/impact", headers=FUNDER)
        assert served.status_code == 200 and served.json()["report"] == "impact"
        # the broken connection was discarded, not handed to the next request to fail its ping
        assert not [r for r in caplog.records if "did not answer a ping" in r.getMessage()], caplog.text
        assert json.loads(refused.text)["status"] == 503
    finally:
        await engine.dispose()
        await other.dispose()
