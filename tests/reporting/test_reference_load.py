"""The benchmarks' reference load is legitimate: on a sample with every behaviour (on time, late, stopped paying,
written off, repaid; approved, rejected, withdrawn and pending applications; businesses reporting twice), the rows
it COPYs in equal, table by table, the rows the reporting handlers write from the very same events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.models import APPLICATIONS_TABLES, PORTFOLIO_TABLES
from tests.bench.reference_load import (
    Rows,
    copy_rows,
    derive_rows,
    loan_life,
    other_applications,
    project_application,
    project_business,
    project_loan,
)
from tests.reporting.conftest import rebuild_from

TABLES = [t for t in (*PORTFOLIO_TABLES, *APPLICATIONS_TABLES) if t.name != "fx_rates"]


async def contents(connection: AsyncConnection) -> dict[str, list[Any]]:
    found = {}
    for table in TABLES:
        rows = await connection.execute(text(f"SELECT * FROM reporting.{table.name}"))  # noqa: S608 - fixed names
        found[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return found


async def test_the_copied_rows_equal_what_the_handlers_write(connection: AsyncConnection) -> None:
    lives = [loan_life(i) for i in range(80)]
    types = [e.type for life in lives for e in life.events]
    statuses = [life.events[-1].payload["status"] for life in lives]
    # every behaviour is in the sample
    assert {"loan.written_off", "loan.repaid"} <= set(types) and types.count("loan.repayment_applied") > 800
    assert {"active", "repaid", "written_off"} <= set(statuses)
    assert any(life.default_on for life in lives)
    others = [other_applications(i) for i in range(20)]
    assert {e.type for events in others for e in events} >= {"application.withdrawn", "application.rejected"}

    # the handlers' way: every event, enveloped as the producers do, through the subscriptions' handlers
    envelopes, rows = [], Rows()
    for life in lives:
        for event in life.business_events:
            envelopes.append(event.envelope(1))
            project_business(event, rows)
        for seq, event in enumerate(life.application_events, 1):
            envelopes.append(event.envelope(seq))
            project_application(event, seq, envelopes[-1].event_id, rows)
        envelopes += [event.envelope(seq) for seq, event in enumerate(life.events, 1)]
        project_loan(life.events, rows)
    for events in others:
        for seq, event in enumerate(events, 1):
            envelopes.append(event.envelope(seq))
            project_application(event, seq, envelopes[-1].event_id, rows)
    await rebuild_from(connection, envelopes)
    handled = await contents(connection)
    assert len(handled["loan_flows"]) > 900 and len(handled["application_moves"]) > 250

    # the bulk way: the projected rows, COPYed in
    await rebuild_from(connection, [])
    raw = await connection.get_raw_connection()
    await copy_rows(raw.driver_connection, rows)
    await derive_rows(raw.driver_connection)
    assert await contents(connection) == handled
