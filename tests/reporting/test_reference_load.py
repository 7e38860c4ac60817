"""The benchmarks' reference load is legitimate: on a sample with every behaviour (on time, late, stopped paying,
written off, repaid; approved, rejected, withdrawn and pending applications; businesses reporting twice), the rows
it COPYs in equal, table by table, the rows the reporting handlers write from the very same events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.models import APPLICATIONS_TABLES, PORTFOLIO_TABLES
from shared.db import make_sessionmaker
from tests.bench.reference_load import (
    Rows,
    apply_through_handlers,
    copy_rows,
    derive_rows,
    fx_events,
    guarantee_events,
    loan_life,
    other_applications,
    project_application,
    project_business,
    project_loan,
)
from tests.reporting.conftest import apply, rebuild_from

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


async def test_the_guarantees_side_recomputed_once_equals_each_event_refreshing(connection: AsyncConnection) -> None:
    """The builder applies the FX and guarantee events with the month-end exposures recomputed once at the end, not
    refreshed by each event: the same guarantees, claims and month ends as each event refreshing its own."""
    lives = [loan_life(i) for i in range(40)]
    assert any(life.guaranteed and life.default_on for life in lives)  # a claim paid among them
    loans = [e.envelope(seq) for life in lives for seq, e in enumerate(life.events, 1)]
    # a rate every first Monday of a month: each refresh path, with a fraction of the events
    rates = [e for e in fx_events() if e.payload["rate_date"][8:] <= "07" and e.on.weekday() == 0]
    others = rates + guarantee_events(lives)
    seqs: dict[str, int] = {}
    enveloped = []
    for event in others:
        seqs[event.aggregate_id] = seqs.get(event.aggregate_id, 0) + 1
        enveloped.append(event.envelope(seqs[event.aggregate_id]))

    async def guarantees_side() -> dict[str, list[Any]]:
        found = {}
        for table in ("guarantees", "claims", "guarantee_month_ends"):
            rows = await connection.execute(text(f"SELECT * FROM reporting.{table}"))  # noqa: S608 - fixed names
            found[table] = sorted((tuple(r) for r in rows), key=repr)
        return found

    await rebuild_from(connection, loans)
    await apply(connection, enveloped)  # each event refreshing the month ends it changes
    each = await guarantees_side()
    assert len(each["guarantees"]) > 10 and len(each["claims"]) > 0 and len(each["guarantee_month_ends"]) > 150

    await rebuild_from(connection, loans)
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        await apply_through_handlers(session, others)
        await session.commit()
    assert await guarantees_side() == each
