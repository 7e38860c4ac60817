"""The standing as of D read class by class (`reports.common.standing_on`, over `loan_standing.span`) gives exactly
the rows of the plain definition, on <= D < valid_to: over every day around steps of every length at the classes'
edges (1, 2, 3, 4, 5 days, 2^k - 1, 2^k, 2^k + 1, longer than the longest class), open steps written both as
9999-12-31 and as the driver's infinity, and the scenario's standing after backdated changes."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.models import LONG_SPAN, SPAN_CLASSES
from services.reporting.reports.common import STANDING_COLUMNS, standing_on
from tests.reporting.conftest import apply
from tests.reporting.scenario import LOAN_A, LOAN_C, repaid, reversal

EDGES = sorted(
    {1, 2, 3, 4, 5, 6, 7, 9, 10, 100, 365, 9000}
    | {n for k in range(1, SPAN_CLASSES + 1) for n in (2**k - 1, 2**k, 2**k + 1)}
)
START = date(1990, 1, 1)


def expected_span(length: int | None) -> int:
    """The class of a step of `length` days (None: open)."""
    if length is None:
        return LONG_SPAN
    return next((k for k in range(SPAN_CLASSES) if length <= 2**k), LONG_SPAN)


async def insert_steps(connection: AsyncConnection) -> list[date]:
    """Loans whose steps have each length of EDGES (one loan a length, steps of that length back to back, then an
    open step), some steps of mixed lengths; answers every day a step begins or ends."""
    await connection.execute(text("DELETE FROM reporting.loan_standing"))
    rows: list[dict[str, Any]] = []
    for n, length in enumerate(EDGES):
        loan, on = uuid.uuid4(), START + timedelta(days=n)
        for _ in range(3 if length < 1000 else 1):
            rows.append({"loan": loan, "on": on, "valid_to": on + timedelta(days=length)})
            on += timedelta(days=length)
        rows.append({"loan": loan, "on": on, "valid_to": None if n % 2 else date.max})  # open: literal / infinity
    mixed, on = uuid.uuid4(), START + timedelta(days=3)
    for length in (5, 1, 4096, 2, 3, 700, 8193, 1):
        rows.append({"loan": mixed, "on": on, "valid_to": on + timedelta(days=length)})
        on += timedelta(days=length)
    for row in rows:
        # valid_to None: written as the column's default, 9999-12-31; date.max: asyncpg writes it as infinity
        await connection.execute(
            text(
                'INSERT INTO reporting.loan_standing (loan_id, "on", valid_to, outstanding_principal, status)'
                " VALUES (:loan, :on, coalesce(CAST(:valid_to AS date), DATE '9999-12-31'), 1, 'active')"
            ),
            row,
        )
    found = {
        r.length: r.span
        for r in await connection.execute(
            text(
                "SELECT CASE WHEN valid_to >= DATE '9999-12-31' THEN NULL ELSE valid_to - \"on\" END AS length, span"
                " FROM reporting.loan_standing"
            )
        )
    }
    assert found == {length: expected_span(length) for length in [*EDGES, 8193, 700, None]}
    assert await connection.scalar(text("SELECT count(*) FROM reporting.loan_standing WHERE valid_to = 'infinity'"))
    return sorted({r["on"] for r in rows} | {r["valid_to"] for r in rows if r["valid_to"] not in (None, date.max)})


async def both_ways(connection: AsyncConnection, days: list[date]) -> tuple[list[Any], list[Any]]:
    """The steps in force on each day, by class and by the plain definition."""
    unnest = "unnest(CAST(:days AS date[])) AS d(day)"
    by_class = await connection.execute(
        text(f"SELECT d.day, s.* FROM {unnest} CROSS JOIN LATERAL {standing_on('d.day')} s"),  # noqa: S608
        {"days": days},
    )
    plain = await connection.execute(
        text(
            f"SELECT d.day, {', '.join(f's.{c}' for c in STANDING_COLUMNS.split(', '))} FROM {unnest}"  # noqa: S608
            " JOIN reporting.loan_standing s ON s.on <= d.day AND s.valid_to > d.day"
        ),
        {"days": days},
    )
    return sorted(map(tuple, by_class)), sorted(map(tuple, plain))


async def test_the_standing_by_length_class_equals_the_plain_definition_on_every_day_at_the_edges(
    connection: AsyncConnection,
) -> None:
    bounds = await insert_steps(connection)
    days = sorted({b + timedelta(days=d) for b in bounds for d in (-2, -1, 0, 1)})
    by_class, plain = await both_ways(connection, days)
    assert by_class == plain
    assert len({row[0] for row in plain}) > 100  # most days have steps in force
    # as the reports bind it: one date a statement
    for day in days[:: max(1, len(days) // 25)]:
        found = await connection.execute(text(f"SELECT * FROM {standing_on()} s"), {"as_of": day})  # noqa: S608
        assert sorted(map(tuple, found)) == [row[1:] for row in plain if row[0] == day]


async def test_the_standing_by_length_class_follows_backdated_changes(
    connection: AsyncConnection, scenario: list[Any]
) -> None:
    march = next(e for e in scenario if e.type == "loan.repayment_applied" and e.payload["value_date"] == "2026-03-10")
    # a repayment valued between two steps (the earlier step shortened: its class changes), a reversal (two steps
    # merged into a longer one)
    await apply(
        connection,
        [
            repaid(LOAN_A, "2026-02-20", "655957", "0", "11151269", "2026-03-15", "active"),
            reversal(LOAN_C, march, "the cheque bounced"),
        ],
    )
    days = [date(2025, 12, 1) + timedelta(days=n) for n in range(500)]
    by_class, plain = await both_ways(connection, days)
    assert by_class == plain
    assert len(plain) > 1000


async def test_the_active_standing_by_length_class_is_the_plain_definitions_active_steps(
    connection: AsyncConnection, scenario: list[Any]
) -> None:
    """The portfolio report reads only the active steps in force (`active_only`): every day of the scenario, they
    are exactly the plain definition's steps with status active, the repaid and written-off ones left out."""
    days = [date(2025, 12, 1) + timedelta(days=n) for n in range(400)]
    unnest = "unnest(CAST(:days AS date[])) AS d(day)"
    active = await connection.execute(
        text(f"SELECT d.day, s.* FROM {unnest} CROSS JOIN LATERAL {standing_on('d.day', active_only=True)} s"),  # noqa: S608
        {"days": days},
    )
    _, plain = await both_ways(connection, days)
    statuses = {row[-1] for row in plain}
    assert {"active", "repaid", "written_off"} <= statuses  # the scenario has each
    assert sorted(map(tuple, active)) == [row for row in plain if row[-1] == "active"]
