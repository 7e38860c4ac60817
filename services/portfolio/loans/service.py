"""The loan's operations: terms, disbursements, repayments, recoveries, charges, reversals, restructuring and
write-off. Every change takes the loan's row lock first (so concurrent repayments on one loan serialize and none is
lost), records an immutable transaction, recomputes the book from the transactions (`ledger.replay`), keeps the
loan's as-of-now columns in step and announces the change, all in the caller's database transaction.

`Ledgers.open()` loads (and locks) many loans at once, for a lender's push of hundreds of items.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, any_, bindparam, event, inspect, select, text
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from services.portfolio.db import events as event_tables
from services.portfolio.loans.ledger import (
    Allocation,
    Book,
    Due,
    Entry,
    Kind,
    Standing,
    replay,
    restore,
    snapshot,
    standing_of,
    standings,
)
from services.portfolio.loans.models import Instalment, Loan, Participant, PortfolioPolicy, ScheduleVersion, Transaction
from services.portfolio.loans.split import split
from services.portfolio.schedules.generator import Frequency, Method
from services.portfolio.schedules.versions import ScheduleTerms
from shared.contracts.portfolio import LoanDisbursedV1, LoanRepaidV1  # also registers the contracts
from shared.db import copy_rows, dumps_json
from shared.events.outbox import emit, publish
from shared.money import format_amount

# temporary ordering keys for transactions not yet written (the database numbers them on insert, after every
# transaction already recorded, so the order is the same)
_TEMP_SEQ = itertools.count(2**62)


def today() -> date:
    return datetime.now(UTC).date()


def schedule_terms(loan: Loan) -> ScheduleTerms | None:
    if loan.annual_rate is None or loan.frequency is None or loan.method is None:
        return None
    return ScheduleTerms(loan.annual_rate, Frequency(loan.frequency), Method(loan.method), loan.grace_periods)


def facts(loan: Loan, standing: Sequence[Standing] = ()) -> dict[str, Any]:
    """The `LoanFactsV1` part of every loan event, as JSON (`publish` validates the whole payload); `standing`: the
    steps the change altered (`Ledger.standing`)."""
    return {
        **_identity(loan),
        "outstanding_principal": format_amount(loan.outstanding_principal, loan.currency),
        "status": loan.status,
        "standing": [
            {
                "on": step.on.isoformat(),
                "outstanding_principal": format_amount(step.outstanding_principal, loan.currency),
                "overdue_from": step.overdue_from.isoformat() if step.overdue_from else None,
                "status": step.status,
            }
            for step in standing
        ],
    }


_IDENTITY = "_fisiq_identity"


def _identity(loan: Loan) -> dict[str, str]:
    """What never changes of a loan, as its events say it; kept on a detached loan (a lender's push announces
    hundreds of changes to each of its loans: five ids written as text each time)."""
    known: dict[str, str] | None = loan.__dict__.get(_IDENTITY) if isinstance(loan, _Detached) else None
    if known is None:
        known = {
            "loan_id": str(loan.id),
            "application_id": str(loan.application_id),
            "lender_id": str(loan.lender_id),
            "business_id": str(loan.business_id),
            "ica_id": str(loan.ica_id),
            "country": loan.country,
            "currency": loan.currency,
        }
        if isinstance(loan, _Detached):
            loan.__dict__[_IDENTITY] = known
    return known


def allocation_json(allocation: Allocation, currency: str) -> dict[str, str]:
    return {
        name: format_amount(getattr(allocation, name), currency)
        for name in ("penalties", "fees", "interest", "principal", "credit", "recovered")
    }


def entry_of(txn: Transaction, seq: int | None = None) -> Entry:
    return Entry(
        seq=seq if seq is not None else txn.seq,
        kind=Kind(txn.kind),
        amount=txn.amount,
        value_date=txn.value_date,
        instalment=txn.instalment,
    )


@dataclass
class Ledger:
    """One loan, locked, with its schedule in force and its book.

    The book comes from the loan's snapshot (`loans.book`, written with every change) when it fits the schedule
    in force, so a repayment in value-date order costs one step, whatever the loan's history. The transactions
    are loaded, and the book replayed from them, only when a change needs the history: a backdated transaction,
    a reversal, a new schedule version."""

    loan: Loan
    shares: dict[str, Decimal]
    version: int | None
    effective_from: date | None
    schedule: list[Due]
    transactions: list[tuple[Transaction, Entry]] | None  # None: not loaded (the book came from the snapshot)
    initial: Book | None = None  # the book restored from the snapshot, when the transactions are not loaded
    # detached: the loan is not in the session; its changes are written by `Ledgers.write()` and its new
    # transactions inserted from `staged` (a lender's push: hundreds of loans in one statement each)
    detached: bool = False
    book: Book = field(init=False)
    status_before: str = field(init=False)
    pending: list[tuple[Transaction, Entry]] = field(default_factory=list)  # recorded before the history was loaded
    staged: list[Transaction] = field(default_factory=list)
    dirty: bool = False

    def __post_init__(self) -> None:
        if self.transactions is None:
            assert self.initial is not None, "Ledgers.open loads the history when the snapshot does not fit"
            self.book = self.initial
        else:
            self.replay()
        self.status_before = self.loan.status

    def keep(self, session: AsyncSession, txn: Transaction) -> None:
        """A new transaction to write: added to the session, or staged for `Ledgers.write()` when detached."""
        if self.detached:
            self.staged.append(txn)
        else:
            session.add(txn)

    @property
    def last_value_date(self) -> date | None:
        return self.book.last_value_date

    @property
    def first_disbursed_on(self) -> date | None:
        return self.book.first_disbursed_on

    def in_order(self, value_date: date) -> bool:
        return self.last_value_date is None or value_date >= self.last_value_date

    async def load_history(self, session: AsyncSession) -> None:
        """Loads the live transactions (once), so the book can be replayed."""
        if self.transactions is not None:
            return
        pending_ids = {t.id for t, _ in self.pending}
        rows = await session.scalars(
            select(Transaction)
            .where(Transaction.loan_id == self.loan.id, Transaction.reversed_at.is_(None))
            .order_by(Transaction.seq)
        )
        # what this transaction recorded and has not written yet comes after everything written
        self.transactions = [(t, entry_of(t)) for t in rows.all() if t.id not in pending_ids] + self.pending
        self.pending = []

    async def prepare(self, session: AsyncSession, value_date: date) -> None:
        """Before recording a transaction of `value_date`: loads the history when it is backdated."""
        if not self.in_order(value_date):
            await self.load_history(session)

    def replay(self) -> None:
        assert self.transactions is not None, "load_history() first"
        self.book = replay(self.schedule, (e for _, e in self.transactions))

    def standing(self, since: date) -> list[Standing]:
        """The loan's standing from `since` on, as the books now read: one step when the book holds nothing
        dated after `since` (a change in value-date order), else every step from `since` replayed."""
        if self.transactions is None:
            assert self.book.last_value_date is None or self.book.last_value_date <= since, "load_history() first"
            return [standing_of(self.book, since)]
        return standings(self.schedule, (e for _, e in self.transactions), since=since)

    def record(
        self,
        *,
        kind: Kind,
        amount: Decimal,
        value_date: date,
        actor: uuid.UUID | None,
        source: str = "staff",
        external_id: str | None = None,
        push_id: uuid.UUID | None = None,
        comment: str | None = None,
        instalment: int | None = None,
    ) -> tuple[Transaction, Allocation | None]:
        """Adds a transaction (not yet flushed) and applies it; answers it with a payment's allocation."""
        loan = self.loan
        in_order = self.in_order(value_date)
        assert in_order or self.transactions is not None, "a backdated transaction needs load_history() first"
        values = dict(
            id=uuid.uuid4(),
            loan_id=loan.id,
            lender_id=loan.lender_id,
            kind=kind.value,
            amount=amount,
            currency=loan.currency,
            value_date=value_date,
            instalment=instalment,
            external_id=external_id,
            source=source,
            push_id=push_id,
            comment=comment,
            split={k: format_amount(v, loan.currency) for k, v in split(amount, loan.currency, self.shares).items()}
            if amount > 0
            else {},
            recorded_by=actor,
        )
        # a detached ledger's transactions are inserted by `Ledgers.write()`, never flushed by the ORM
        txn = _plain_transaction(values) if self.detached else Transaction(**values)
        entry = entry_of(txn, next(_TEMP_SEQ))
        if self.transactions is not None:
            self.transactions.append((txn, entry))
        else:
            self.pending.append((txn, entry))
        if in_order:
            self.book.apply(entry)
        else:  # a backdated transaction: the book is replayed so that it lands where its value date puts it
            self.replay()
        allocation = self.book.allocations.get(entry.seq)
        if allocation is not None:
            txn.allocation = allocation_json(allocation, loan.currency)
        txn.outstanding_after = self.book.outstanding_principal
        return txn, allocation

    def settle(self) -> None:
        """Brings the loan's as-of-now columns and status in line with the book."""
        loan, book = self.loan, self.book
        loan.disbursed = book.disbursed
        loan.outstanding_principal = book.outstanding_principal
        loan.credit = book.credit
        loan.written_off_principal = book.written_off_principal
        # the snapshot (`loan.book`) is written once before the next flush (or by `Ledgers.write`), however many
        # changes come before it
        self.dirty = True
        if not self.detached:  # written by the session's next flush (`_write_snapshots`)
            state = inspect(loan)
            if state.session is not None:
                state.session.info.setdefault(_DIRTY, {})[loan.id] = self
        if book.written_off_on is not None:
            loan.status = "written_off"
        elif book.disbursed == 0:
            loan.status = "pending_disbursement"
        elif book.fully_paid:
            loan.status = "repaid"
            loan.closed_on = max((line.paid_on for line in book.lines if line.paid_on), default=None)
        else:
            loan.status = "active"
            loan.closed_on = None
        loan.updated_at = datetime.now(UTC)


_DIRTY = "fisiq_portfolio_dirty_ledgers"


class _Detached:
    """A detached ledger's loan, or a transaction it records: the row's columns as plain attributes, outside any
    session. Not an instance of the mapped class: each read of an ORM attribute goes through its instrumentation
    (~0.3 us), and applying a pushed item reads the loan and its new transaction about sixty times (~15 % of the
    push applier's CPU). `Ledgers.write` writes them back; nothing else sees them."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)


# every column of a transaction (None until set), so that the plain one reads as a new ORM one would
_TRANSACTION_UNSET: dict[str, Any] = {attr.key: None for attr in inspect(Transaction).column_attrs}


def _plain_transaction(values: Mapping[str, Any]) -> Transaction:
    return cast(Transaction, _Detached({**_TRANSACTION_UNSET, **values}))


def _plain_loan(row: Mapping[Any, Any]) -> Loan:
    return cast(Loan, _Detached(row))


@event.listens_for(Session, "before_flush")
def _write_snapshots(session: Session, _context: object, _instances: object) -> None:
    dirty: dict[uuid.UUID, Ledger] | None = session.info.pop(_DIRTY, None)
    for ledger in (dirty or {}).values():
        ledger.loan.book = {"version": ledger.version, **snapshot(ledger.book)}
        ledger.dirty = False


class Ledgers:
    @staticmethod
    async def open(
        session: AsyncSession, loan_ids: Iterable[uuid.UUID], *, lock: bool = True, detached: bool = False
    ) -> dict[uuid.UUID, Ledger]:
        """Loads the loans (row-locked in id order, so two writers never deadlock), their shares, the schedule
        version in force now and their live (unreversed) transactions. `detached`: the loans are read as plain
        rows, outside the session; the caller writes them back with `Ledgers.write()`."""
        ids = sorted(set(loan_ids))
        if not ids:
            return {}
        # `= ANY(array)`: one prepared statement whatever the number of loans (an IN list is one per length)
        wanted = bindparam("loan_ids", ids, type_=ARRAY(PG_UUID(as_uuid=True)))
        if detached:
            table = cast(Table, Loan.__table__)
            rows = await session.execute(
                select(table).where(table.c.id == any_(wanted)).order_by(table.c.id).with_for_update(skip_locked=False)
                if lock
                else select(table).where(table.c.id == any_(wanted))
            )
            loans = {row.id: _plain_loan(row._mapping) for row in rows}
        else:
            query = select(Loan).where(Loan.id == any_(wanted)).order_by(Loan.id)
            if lock:
                query = query.with_for_update()
            loans = {loan.id: loan for loan in (await session.scalars(query)).all()}
        if not loans:
            return {}
        shares: dict[uuid.UUID, dict[str, Decimal]] = {i: {} for i in loans}
        for p in await session.execute(
            select(Participant.loan_id, Participant.participant, Participant.share_pct).where(
                Participant.loan_id == any_(wanted)
            )
        ):
            shares[p.loan_id][p.participant] = p.share_pct
        versions = {
            row.loan_id: row
            for row in (
                await session.execute(
                    select(ScheduleVersion.loan_id, ScheduleVersion.version, ScheduleVersion.effective_from)
                    .where(ScheduleVersion.loan_id == any_(wanted))
                    .ext(distinct_on(ScheduleVersion.loan_id))
                    .order_by(ScheduleVersion.loan_id, ScheduleVersion.version.desc())
                )
            ).all()
        }

        def restored(i: uuid.UUID) -> Book | None:
            data = loans[i].book
            version = versions[i].version if i in versions else None
            if not data or version is None or data.get("version") != version:
                return None
            return restore(data)

        # the loans whose snapshot is of the schedule in force continue from it: no schedule, no history to read
        snapshots = {i: restored(i) for i in loans}
        txns: dict[uuid.UUID, list[tuple[Transaction, Entry]] | None] = {
            i: None if snapshots[i] is not None else [] for i in loans
        }
        schedules: dict[uuid.UUID, list[Due]] = {
            i: [line.due for line in book.lines] if book is not None else [] for i, book in snapshots.items()
        }
        stale = [i for i, book in snapshots.items() if book is None and i in versions]
        if stale:
            # plain rows, not ORM objects
            for line in await session.execute(
                select(
                    Instalment.loan_id,
                    Instalment.version,
                    Instalment.number,
                    Instalment.due_date,
                    Instalment.principal,
                    Instalment.interest,
                )
                .where(Instalment.loan_id == any_(bindparam("stale", stale, type_=ARRAY(PG_UUID(as_uuid=True)))))
                .order_by(Instalment.loan_id, Instalment.number)
            ):
                if line.version == versions[line.loan_id].version:
                    schedules[line.loan_id].append(Due(line.number, line.due_date, line.principal, line.interest))
        needing = [i for i, t in txns.items() if t is not None]
        if needing:
            for txn in (
                await session.scalars(
                    select(Transaction)
                    .where(
                        Transaction.loan_id == any_(bindparam("needing", needing, type_=ARRAY(PG_UUID(as_uuid=True)))),
                        Transaction.reversed_at.is_(None),
                    )
                    .order_by(Transaction.seq)
                )
            ).all():
                listed = txns[txn.loan_id]
                assert listed is not None
                listed.append((txn, entry_of(txn)))
        return {
            i: Ledger(
                loan=loan,
                shares=shares[i],
                version=versions[i].version if i in versions else None,
                effective_from=versions[i].effective_from if i in versions else None,
                schedule=schedules[i],
                transactions=txns[i],
                initial=snapshots[i],
                detached=detached,
            )
            for i, loan in loans.items()
        }

    @staticmethod
    async def write(session: AsyncSession, ledgers: Iterable[Ledger]) -> None:
        """Writes back detached ledgers: their new transactions in one INSERT, their loans in one UPDATE."""
        changed = [ledger for ledger in ledgers if ledger.detached]
        staged = [txn for ledger in changed for txn in ledger.staged]
        if staged:
            # `seq` is numbered in the order given, as a flush would
            await copy_rows(session, "portfolio", "loan_transactions", _TRANSACTION_COLUMNS, _transaction_rows(staged))
        for ledger in changed:
            ledger.staged = []
        dirty = [ledger for ledger in changed if ledger.dirty]
        if not dirty:
            return
        for ledger in dirty:
            ledger.loan.book = {"version": ledger.version, **snapshot(ledger.book)}
            ledger.dirty = False
        await session.execute(
            text(
                """
                UPDATE portfolio.loans AS l SET
                    disbursed = v.disbursed, outstanding_principal = v.outstanding, credit = v.credit,
                    written_off_principal = v.written_off, status = v.status, closed_on = v.closed_on,
                    book = v.book, updated_at = v.updated_at
                FROM unnest(CAST(:ids AS uuid[]), CAST(:disbursed AS numeric[]), CAST(:outstanding AS numeric[]),
                            CAST(:credit AS numeric[]), CAST(:written_off AS numeric[]), CAST(:status AS text[]),
                            CAST(:closed_on AS date[]), CAST(:book AS json[]), CAST(:updated_at AS timestamptz[]))
                     AS v(id, disbursed, outstanding, credit, written_off, status, closed_on, book, updated_at)
                WHERE l.id = v.id
                """
            ),
            {
                "ids": [x.loan.id for x in dirty],
                "disbursed": [x.loan.disbursed for x in dirty],
                "outstanding": [x.loan.outstanding_principal for x in dirty],
                "credit": [x.loan.credit for x in dirty],
                "written_off": [x.loan.written_off_principal for x in dirty],
                "status": [x.loan.status for x in dirty],
                "closed_on": [x.loan.closed_on for x in dirty],
                "book": [dumps_json(x.loan.book) for x in dirty],
                "updated_at": [x.loan.updated_at for x in dirty],
            },
        )


_TRANSACTION_COLUMNS = (
    "id",
    "loan_id",
    "lender_id",
    "kind",
    "amount",
    "currency",
    "value_date",
    "instalment",
    "external_id",
    "source",
    "push_id",
    "comment",
    "split",
    "allocation",
    "outstanding_after",
    "recorded_by",
)


_JSON_AT = tuple(i for i, column in enumerate(_TRANSACTION_COLUMNS) if column in ("split", "allocation"))


def _transaction_rows(staged: Sequence[Transaction]) -> list[list[Any]]:
    rows = []
    for txn in staged:
        row = [getattr(txn, column) for column in _TRANSACTION_COLUMNS]
        for i in _JSON_AT:
            if row[i] is not None:
                row[i] = dumps_json(row[i])
        rows.append(row)
    return rows


async def open_ledger(session: AsyncSession, loan_id: uuid.UUID) -> Ledger | None:
    return (await Ledgers.open(session, [loan_id])).get(loan_id)


async def save_schedule(
    session: AsyncSession,
    ledger: Ledger,
    schedule: Sequence[Due],
    *,
    effective_from: date,
    reason: str,
    terms: dict[str, Any],
    actor: uuid.UUID | None,
    comment: str | None = None,
) -> int:
    version = (ledger.version or 0) + 1
    session.add(
        ScheduleVersion(
            loan_id=ledger.loan.id,
            version=version,
            effective_from=effective_from,
            reason=reason,
            terms=terms,
            comment=comment,
            created_by=actor,
        )
    )
    await session.flush()
    session.add_all(
        Instalment(
            loan_id=ledger.loan.id,
            version=version,
            number=d.number,
            due_date=d.due_date,
            principal=d.principal,
            interest=d.interest,
        )
        for d in schedule
    )
    assert ledger.transactions is not None, "load_history() before recording what changes the schedule"
    ledger.version, ledger.effective_from, ledger.schedule = version, effective_from, list(schedule)
    ledger.replay()
    return version


async def announce_payment(
    session: AsyncSession, ledger: Ledger, txn: Transaction, allocation: Allocation | None
) -> None:
    loan = ledger.loan
    body = {
        **facts(loan, ledger.standing(txn.value_date)),
        "transaction_id": str(txn.id),
        "external_id": txn.external_id,
        "amount": format_amount(txn.amount, loan.currency),
        "value_date": txn.value_date.isoformat(),
        # as `record` wrote it on the transaction (formatted once)
        "allocation": txn.allocation if allocation is not None else allocation_json(Allocation(), loan.currency),
        "split": txn.split,
    }
    # a plain dict: validated against the contract (RecoveryReceivedV1 / RepaymentAppliedV1) once
    await emit(
        session,
        event_tables,
        event_type="loan.recovery_received" if txn.kind == Kind.recovery else "loan.repayment_applied",
        aggregate_type="loan",
        aggregate_id=str(loan.id),
        payload=body,
    )


async def announce_disbursement(session: AsyncSession, ledger: Ledger, txn: Transaction) -> None:
    loan = ledger.loan
    assert ledger.version is not None
    await publish(
        session,
        event_tables,
        event_type="loan.disbursed",
        aggregate_type="loan",
        aggregate_id=str(loan.id),
        payload=LoanDisbursedV1(
            **facts(loan, ledger.standing(txn.value_date)),
            transaction_id=txn.id,
            amount=format_amount(txn.amount, loan.currency),
            value_date=txn.value_date,
            split=txn.split,
            disbursed_total=format_amount(loan.disbursed, loan.currency),
            schedule_version=ledger.version,
        ),
    )


async def announce_closure(session: AsyncSession, ledger: Ledger) -> None:
    """`loan.repaid` when a change has just settled the whole loan."""
    loan = ledger.loan
    if loan.status == "repaid" and ledger.status_before != "repaid":
        assert loan.closed_on is not None
        await publish(
            session,
            event_tables,
            event_type="loan.repaid",
            aggregate_type="loan",
            aggregate_id=str(loan.id),
            payload=LoanRepaidV1(**facts(loan), value_date=loan.closed_on),
        )
    ledger.status_before = loan.status


async def current_policy(session: AsyncSession) -> PortfolioPolicy:
    policy = await session.scalar(select(PortfolioPolicy).order_by(PortfolioPolicy.version.desc()).limit(1))
    assert policy is not None, "migration 0007 seeds the first policy version"
    return policy
