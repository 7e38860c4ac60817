"""Arrears as of any date, and the close of day that announces thresholds crossed.

`book_on(loan, D)` replays the transactions with a value date on or before D (reversed ones excluded) against the
schedule version in force on D: the loan as it stood that day. The close of day for D reads every open loan so,
keeps the reading (`loan_arrears`, history), and announces `loan.in_arrears`, `loan.defaulted` and `loan.cured`
when the loan's state crosses a policy threshold. Running it again for the same date changes nothing and announces
nothing twice; running it for an earlier date than the last one only records that date's reading.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import and_, any_, bindparam, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.portfolio.db import events as event_tables
from services.portfolio.loans.ledger import Book, Due, bucket, replay
from services.portfolio.loans.models import (
    ArrearsSnapshot,
    CloseOfDay,
    Instalment,
    Loan,
    PortfolioPolicy,
    ScheduleVersion,
    Transaction,
)
from services.portfolio.loans.service import current_policy, entry_of, facts
from shared.contracts.portfolio import LoanCuredV1, LoanDefaultedV1, LoanInArrearsV1
from shared.events.outbox import publish

CHUNK = 500
log = logging.getLogger("services.portfolio.arrears")


def state_of(dpd: int, policy: PortfolioPolicy) -> str:
    if dpd >= policy.default_dpd:
        return "defaulted"
    if dpd >= policy.arrears_dpd:
        return "in_arrears"
    return "current"


async def books_on(
    session: AsyncSession, loan_ids: Sequence[uuid.UUID], on: date, *, skip_failures: bool = False
) -> dict[uuid.UUID, tuple[int | None, Book]]:
    """Each loan's schedule version in force on `on` and its book that day. With `skip_failures`, a loan whose
    book cannot be read is logged and left out, so that one bad loan does not stop a reading of all of them."""
    ids = bindparam("loan_ids", list(loan_ids), type_=ARRAY(PG_UUID(as_uuid=True)))
    versions = {
        row.loan_id: row.version
        for row in (
            await session.execute(
                select(ScheduleVersion.loan_id, ScheduleVersion.version)
                .where(ScheduleVersion.loan_id == any_(ids), ScheduleVersion.effective_from <= on)
                .ext(distinct_on(ScheduleVersion.loan_id))
                .order_by(ScheduleVersion.loan_id, ScheduleVersion.version.desc())
            )
        ).all()
    }
    schedules: dict[uuid.UUID, list[Due]] = {i: [] for i in loan_ids}
    if versions:
        for line in await session.execute(
            select(
                Instalment.loan_id,
                Instalment.version,
                Instalment.number,
                Instalment.due_date,
                Instalment.principal,
                Instalment.interest,
            ).where(Instalment.loan_id == any_(ids))
        ):
            if versions.get(line.loan_id) == line.version:
                schedules[line.loan_id].append(Due(line.number, line.due_date, line.principal, line.interest))
    entries: dict[uuid.UUID, list[Transaction]] = {i: [] for i in loan_ids}
    for txn in (
        await session.scalars(
            select(Transaction).where(
                Transaction.loan_id == any_(ids), Transaction.value_date <= on, Transaction.reversed_at.is_(None)
            )
        )
    ).all():
        entries[txn.loan_id].append(txn)
    books: dict[uuid.UUID, tuple[int | None, Book]] = {}
    for i in loan_ids:
        try:
            books[i] = (versions.get(i), replay(schedules[i], [entry_of(t) for t in entries[i]], on=on))
        except ValueError:
            if not skip_failures:
                raise
            log.exception("loan %s cannot be read as of %s; left out of this reading", i, on)
    return books


async def book_on(session: AsyncSession, loan_id: uuid.UUID, on: date) -> tuple[int | None, Book]:
    return (await books_on(session, [loan_id], on))[loan_id]


@dataclass(frozen=True)
class CloseOfDayResult:
    as_of: date
    loans: int
    events: int
    runs: int
    policy_version: int
    failed: int = 0  # loans that could not be read (logged): the reading of the others stands


TRANSITIONS: dict[tuple[str, str], tuple[tuple[str, type[LoanInArrearsV1 | LoanDefaultedV1 | LoanCuredV1]], ...]] = {
    ("current", "in_arrears"): (("loan.in_arrears", LoanInArrearsV1),),
    ("current", "defaulted"): (("loan.in_arrears", LoanInArrearsV1), ("loan.defaulted", LoanDefaultedV1)),
    ("in_arrears", "defaulted"): (("loan.defaulted", LoanDefaultedV1),),
    ("defaulted", "in_arrears"): (("loan.in_arrears", LoanInArrearsV1),),
    ("in_arrears", "current"): (("loan.cured", LoanCuredV1),),
    ("defaulted", "current"): (("loan.cured", LoanCuredV1),),
}


async def close_of_day(session: AsyncSession, as_of: date, *, actor: uuid.UUID | None) -> CloseOfDayResult:
    """Reads every loan that is open on `as_of` (or whose last announced state is not current), in chunks of
    loans locked in id order (the order pushes lock them in too)."""
    policy = await current_policy(session)
    loans_read = events = failed = 0
    after: uuid.UUID | None = None
    while True:
        query = (
            select(Loan)
            .where(
                or_(
                    Loan.status == "active",
                    Loan.closed_on >= as_of,  # repaid since: it was open that day
                    # repaid or written off since the last reading, which had it in arrears: read once more
                    and_(
                        Loan.status.in_(("repaid", "written_off")),
                        Loan.arrears_state.not_in(("current", "written_off")),
                    ),
                )
            )
            .order_by(Loan.id)
            .limit(CHUNK)
            .with_for_update()
        )
        if after is not None:
            query = query.where(Loan.id > after)
        chunk = (await session.scalars(query)).all()
        if not chunk:
            break
        after = chunk[-1].id
        books = await books_on(session, [loan.id for loan in chunk], as_of, skip_failures=True)
        rows = []
        for loan in chunk:
            if loan.id not in books:
                failed += 1  # logged by books_on; the other loans are closed
                continue
            version, book = books[loan.id]
            if version is None:
                continue  # not yet disbursed on that date
            dpd = book.days_past_due(as_of)
            if book.written_off_on is not None:
                state = "written_off"  # out of the portfolio: no more arrears announcements
            elif book.fully_paid:
                state = "current"
            else:
                state = state_of(dpd, policy)
            rows.append(
                {
                    "loan_id": loan.id,
                    "as_of": as_of,
                    "days_past_due": dpd,
                    "bucket": bucket(dpd),
                    "state": state,
                    "outstanding_principal": book.outstanding_principal,
                }
            )
            loans_read += 1
            if loan.arrears_state_on is not None and as_of < loan.arrears_state_on:
                continue  # an earlier date than the last reading: recorded, nothing announced
            for event_type, contract in TRANSITIONS.get((loan.arrears_state, state), ()):
                await publish(
                    session,
                    event_tables,
                    event_type=event_type,
                    aggregate_type="loan",
                    aggregate_id=str(loan.id),
                    payload=contract(
                        **facts(loan), as_of=as_of, days_past_due=dpd, bucket=bucket(dpd), policy_version=policy.version
                    ),
                )
                events += 1
            loan.arrears_state, loan.arrears_state_on = state, as_of
        if rows:
            stmt = insert(ArrearsSnapshot).values(rows)
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[ArrearsSnapshot.loan_id, ArrearsSnapshot.as_of],
                    set_={
                        "days_past_due": stmt.excluded.days_past_due,
                        "bucket": stmt.excluded.bucket,
                        "state": stmt.excluded.state,
                        "outstanding_principal": stmt.excluded.outstanding_principal,
                    },
                )
            )
        await session.flush()
    now = datetime.now(UTC)
    stmt = insert(CloseOfDay).values(
        as_of=as_of, loans=loans_read, events=events, policy_version=policy.version, last_run_by=actor
    )
    runs = await session.scalar(
        stmt.on_conflict_do_update(
            index_elements=[CloseOfDay.as_of],
            set_={
                "runs": CloseOfDay.runs + 1,
                "loans": stmt.excluded.loans,
                "events": CloseOfDay.events + stmt.excluded.events,
                "policy_version": stmt.excluded.policy_version,
                "last_run_at": now,
                "last_run_by": actor,
            },
        ).returning(CloseOfDay.runs)
    )
    return CloseOfDayResult(as_of, loans_read, events, int(runs or 1), policy.version, failed)
