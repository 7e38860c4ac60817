"""The portfolio feed's batch handler builds exactly the read model the per-event handler builds, whatever the
pages: the scenario's events and harder ones (a second, backdated tranche; a reversal in the same page as its
repayment and one before a flow of the same transaction; a transaction said twice; a step said again as stored; a recovery after the write-off;
a backdated standing of several steps; an arrears event with no standing; rates between them)."""

from __future__ import annotations

import random
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.readmodel.guarantees import SUBSCRIPTION as GUARANTEES
from services.reporting.readmodel.portfolio import SUBSCRIPTION as PORTFOLIO
from shared.db import make_sessionmaker
from shared.events.contracts import EventEnvelope
from tests.reporting.conftest import apply, rebuild_from
from tests.reporting.scenario import (
    D2,
    G_A,
    G_D,
    LOAN_A,
    LOAN_B,
    LOAN_C,
    LOAN_D,
    applications_events,
    disbursed,
    guarantee_event,
    guarantees_events,
    loan_event,
    portfolio_events,
    rate,
    repaid,
    reversal,
    step,
)
from tests.support import handle_in_pages

TABLES = (
    "loans",
    "loan_standing",
    "loan_flows",
    "flow_days",
    "fx_rates",
    "impact_changes",
    "impact_days",
    "impact_glp_changes",
    "impact_glp_days",
    "guarantee_month_ends",
    "guarantee_month_end_totals",
    "guarantee_standing",
)


def harder_events() -> list[EventEnvelope]:
    """The scenario's portfolio events with harder ones among them, in feed order."""
    events = portfolio_events()
    a_march = repaid(LOAN_A, "2026-03-20", "100000", "0", "11707226", "2026-03-15", "active")
    undo_a = reversal(LOAN_A, a_march, "bounced")
    undo_a.payload["standing"] = [step("2026-03-20", "11807226", "2026-03-15")]
    d_early = repaid(LOAN_D, "2026-05-02", "1000", "0", "6558570", None, "active")
    undo_d_first = reversal(LOAN_D, d_early, "sent before its repayment")  # names a transaction not known yet
    d_again = repaid(LOAN_D, "2026-05-02", "2000", "0", "6557570", None, "active")
    d_again.payload["transaction_id"] = d_early.payload["transaction_id"]  # said twice: the first flow stays
    # interest only, the same day: the same standing step again (a page leaves the stored one alone)
    d_interest = repaid(LOAN_D, "2026-05-02", "0", "500", "6557570", None, "active")
    tranche = disbursed(LOAN_B, "2026-01-25", "200000.00", "2026-03-01")  # backdated: before the first tranche
    tranche.payload["standing"] = [
        step("2026-01-25", "200000.00", "2026-03-01"),
        step("2026-02-01", "1200000.00", "2026-03-01"),
    ]
    restructured = loan_event(
        "loan.restructured",
        LOAN_A,
        "2026-05-20",
        [
            step("2026-02-20", "11807226", "2026-03-15"),
            step("2026-03-25", "11807226", "2026-04-15"),  # the step of 03-20 goes
            step("2026-05-20", "11500000", None),
        ],
        effective_from="2026-02-20",
        schedule_version=2,
        reason="rescheduled",
    )
    arrears = loan_event(
        "loan.in_arrears",
        LOAN_B,
        "2026-04-01",
        [],
        as_of="2026-04-01",
        days_past_due=31,
        bucket="31-60",
        policy_version=1,
    )
    recovery = loan_event(
        "loan.recovery_received",
        LOAN_C,
        "2026-09-10",
        [step("2026-09-10", "0", None, "written_off")],
        status="written_off",
        transaction_id=str(uuid.uuid4()),
        external_id=None,
        amount="5000.00",
        value_date="2026-09-10",
        allocation={
            "penalties": "0",
            "fees": "0",
            "interest": "0",
            "principal": "0",
            "credit": "0",
            "recovered": "5000.00",
        },
        split={"lender": "5000.00"},
    )
    at = {e.event_id: i for i, e in enumerate(events)}
    b_disbursed = next(e for e in events if e.type == "loan.disbursed" and e.aggregate_id == str(LOAN_B))
    d_disbursed = next(e for e in events if e.type == "loan.disbursed" and e.aggregate_id == str(LOAN_D))
    written_off = next(e for e in events if e.type == "loan.written_off")
    out = [*events[: at[b_disbursed.event_id] + 1], tranche, arrears]
    out += events[at[b_disbursed.event_id] + 1 : at[d_disbursed.event_id] + 1]
    out += [
        a_march,
        undo_a,
        restructured,
        undo_d_first,
        d_early,
        d_again,
        d_interest,
        rate("EUR", D2.replace(day=29), "1.58"),
    ]
    out += [*events[at[d_disbursed.event_id] + 1 : at[written_off.event_id] + 1], recovery]
    out += events[at[written_off.event_id] + 1 :]
    assert len(out) == len(events) + 11
    return out


async def read_model(connection: AsyncConnection, names: tuple[str, ...] = TABLES) -> dict[str, list[Any]]:
    tables = {}
    for table in names:
        rows = await connection.execute(text(f"SELECT t.* FROM reporting.{table} t ORDER BY CAST(t AS text)"))  # noqa: S608
        tables[table] = [tuple(row) for row in rows]
    return tables


async def apply_in_pages(connection: AsyncConnection, events: list[EventEnvelope], sizes: list[int]) -> None:
    """The other feeds' events first (as `applied_per_event` does), then the portfolio's in pages of `sizes`."""
    await rebuild_from(connection, applications_events() + guarantees_events())
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        await handle_in_pages(session, PORTFOLIO.batch_handler, events, sizes)
        await session.commit()


async def applied_per_event(connection: AsyncConnection, events: list[EventEnvelope]) -> dict[str, list[Any]]:
    await rebuild_from(connection, applications_events() + guarantees_events())
    await apply(connection, events)
    return await read_model(connection)


async def test_the_batch_handler_builds_the_same_read_model_whatever_the_pages(connection: AsyncConnection) -> None:
    events = harder_events()
    expected = await applied_per_event(connection, events)
    # not a vacuous comparison: every table has rows, the reversals and the duplicate left their marks
    assert all(expected[table] for table in TABLES), [t for t in TABLES if not expected[t]]
    flows = await connection.execute(
        text("SELECT count(*) FILTER (WHERE reversed), count(*) FROM reporting.loan_flows")
    )
    assert tuple(flows.one()) == (1, 16)  # the 11 of the scenario, 5 more; 1 reversed
    b = await connection.execute(
        text("SELECT first_disbursed_on FROM reporting.loans WHERE loan_id = :l"), {"l": LOAN_B}
    )
    assert b.scalar_one().isoformat() == "2026-01-25"
    # each loan's copy of its latest standing step is that step, after the restructuring and the backdated steps
    latest = await connection.execute(
        text(
            "SELECT count(*) FROM reporting.loans l LEFT JOIN LATERAL (SELECT s.* FROM reporting.loan_standing s"
            ' WHERE s.loan_id = l.loan_id ORDER BY s."on" DESC LIMIT 1) s ON true'
            " WHERE (l.latest_on, l.latest_outstanding, l.latest_overdue_from, l.latest_status)"
            ' IS DISTINCT FROM (s."on", s.outstanding_principal, s.overdue_from, s.status)'
        )
    )
    assert latest.scalar_one() == 0

    rng = random.Random(5)
    layouts = [[1] * len(events), [2] * len(events), [3] * len(events), [7] * len(events), [len(events)]]
    layouts += [[rng.randint(1, 12) for _ in events] for _ in range(3)]
    for sizes in layouts:
        await apply_in_pages(connection, events, sizes)
        got = await read_model(connection)
        for table in TABLES:
            assert got[table] == expected[table], (table, sizes[:3])


GUARANTEE_TABLES = (
    "guarantees",
    "claims",
    "claim_recoveries",
    "capital_entries",
    "facility_terms",
    "guarantee_month_ends",
    "guarantee_month_end_totals",
    "guarantee_standing",
)


def guarantee_feed() -> list[EventEnvelope]:
    """The scenario's guarantees events, with runs of `guarantee.exposure_changed` among them: several on one
    guarantee (its last facts win); one changing what a guarantee's month-end exposures depend on (G_A's cap, down
    to 5,000.00, which caps them); one changing it (G_D's coverage) and, further on, one changing it back; one
    before its guarantee's issue."""
    events = guarantees_events()
    more = [
        guarantee_event("guarantee.exposure_changed", G_A, LOAN_A, "2026-02-20", outstanding_principal="11807226"),
        guarantee_event("guarantee.exposure_changed", G_D, LOAN_D, "2026-05-02", coverage_pct="40.00"),
        guarantee_event("guarantee.exposure_changed", G_A, LOAN_A, "2026-03-20", cap_cad="5000.00"),
        guarantee_event(
            "guarantee.exposure_changed", G_A, LOAN_A, "2026-04-20", cap_cad="5000.00", outstanding_principal="1"
        ),
    ]
    back = guarantee_event("guarantee.exposure_changed", G_D, LOAN_D, "2026-06-02", outstanding_principal="1")
    at = next(i for i, e in enumerate(events) if e.type == "guarantee.exposure_changed")
    feed = [*events[: at + 1], *more, *events[at + 1 : at + 3], back, *events[at + 3 :]]
    # and one before its guarantee's issue: a row the read model has not seen yet, inserted by the run
    issue_d = next(i for i, e in enumerate(feed) if e.type == "guarantee.issued" and e.aggregate_id == str(G_D))
    early = guarantee_event("guarantee.exposure_changed", G_D, LOAN_D, "2026-03-30", status="pending")
    return [*feed[:issue_d], early, *feed[issue_d:]]


async def test_the_guarantees_batch_handler_builds_the_same_read_model_whatever_the_pages(
    connection: AsyncConnection,
) -> None:
    events = guarantee_feed()
    await rebuild_from(connection, applications_events() + portfolio_events() + events)
    expected = await read_model(connection, GUARANTEE_TABLES)
    empty = [t for t in GUARANTEE_TABLES if not expected[t]]
    assert empty == ["facility_terms"], empty  # the scenario sets no facility terms
    # not vacuous: G_A's new cap reached its month ends (they were up to 12,000.00); G_D is back at 50 %
    capped = await connection.execute(
        text(
            "SELECT g.cap_cad, max(e.exposure_cad) FROM reporting.guarantees g JOIN reporting.guarantee_month_ends e"
            " USING (guarantee_id) WHERE g.guarantee_id = :g GROUP BY g.cap_cad"
        ),
        {"g": G_A},
    )
    assert [tuple(map(str, row)) for row in capped] == [("5000.00", "5000.00")]
    back = await connection.scalar(
        text("SELECT coverage_pct FROM reporting.guarantees WHERE guarantee_id = :g"), {"g": G_D}
    )
    assert str(back) == "50.00"

    rng = random.Random(7)
    layouts = [[1] * len(events), [2] * len(events), [5] * len(events), [len(events)]]
    layouts += [[rng.randint(1, 6) for _ in events] for _ in range(3)]
    for sizes in layouts:
        await rebuild_from(connection, applications_events() + portfolio_events())
        async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
            await handle_in_pages(session, GUARANTEES.batch_handler, events, sizes)
            await session.commit()
        got = await read_model(connection, GUARANTEE_TABLES)
        for table in GUARANTEE_TABLES:
            assert got[table] == expected[table], (table, sizes[:4])


async def test_a_repayment_that_changes_no_figure_rewrites_no_row(connection: AsyncConnection) -> None:
    """Interest only, on a day the loan already has a step: its flow is added, and the loan's row and standing
    are left as they are (not rewritten with the same values: no new row version)."""
    events = harder_events()
    upto = next(i for i, e in enumerate(events) if e.type == "loan.repayment_applied" and e.aggregate_id == str(LOAN_D))
    await apply_in_pages(connection, events[: upto + 1], [upto + 1])
    stored = text(
        "SELECT (SELECT xmin::text FROM reporting.loans WHERE loan_id = :l),"
        ' (SELECT array_agg(xmin::text ORDER BY "on") FROM reporting.loan_standing WHERE loan_id = :l),'
        " (SELECT count(*) FROM reporting.loan_flows WHERE loan_id = :l)"
    )
    loan_version, standing_versions, flows = (await connection.execute(stored, {"l": LOAN_D})).one()
    first = events[upto].payload["standing"][0]
    again = repaid(LOAN_D, first["on"], "0", "25", first["outstanding_principal"], first["overdue_from"], "active")
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        await PORTFOLIO.batch_handler(session, [again])  # type: ignore[misc]
        await session.commit()
    after = (await connection.execute(stored, {"l": LOAN_D})).one()
    assert after[2] == flows + 1  # the repayment was taken: its flow is there
    assert (after[0], after[1]) == (loan_version, standing_versions)
    # and a repayment that does change the outstanding rewrites them
    paid = repaid(LOAN_D, first["on"], "10", "0", str(int(first["outstanding_principal"]) - 10), None, "active")
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        await PORTFOLIO.batch_handler(session, [paid])  # type: ignore[misc]
        await session.commit()
    changed = (await connection.execute(stored, {"l": LOAN_D})).one()
    assert changed[0] != loan_version and changed[1] != standing_versions
