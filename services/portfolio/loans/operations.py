"""The rules of each operation on a loan, shared by the staff API and lenders' pushes.

A refusal is a `Refused` with a stable reason code: the API answers it as a problem (409 or 422), a push records
it as the item's rejection reason while the push's other items apply.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.portfolio.db import events as event_tables
from services.portfolio.loans.ledger import Kind
from services.portfolio.loans.models import Transaction
from services.portfolio.loans.service import (
    Ledger,
    announce_closure,
    announce_disbursement,
    announce_payment,
    facts,
    save_schedule,
    schedule_terms,
    today,
)
from services.portfolio.loans.split import split
from services.portfolio.schedules.versions import (
    ScheduleError,
    ScheduleTerms,
    after_tranche,
    first_schedule,
    restructured,
)
from shared.contracts.portfolio import LoanChargedV1, LoanRestructuredV1, LoanWrittenOffV1, RepaymentReversedV1
from shared.events.outbox import publish
from shared.money import decimal_places, format_amount, minor_units


class Refused(Exception):
    def __init__(self, reason: str, detail: str, *, status: int = 409) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.status = reason, detail, status


def check_money(ledger: Ledger, amount: Decimal, currency: str) -> None:
    loan = ledger.loan
    if currency != loan.currency:
        raise Refused("wrong_currency", f"the loan is in {loan.currency}, not {currency}", status=422)
    if amount <= 0:
        raise Refused("negative_amount", f"the amount must be positive, not {amount}", status=422)
    if decimal_places(amount) > minor_units(currency):
        raise Refused(
            "too_many_decimals",
            f"{currency} allows {minor_units(currency)} decimal places; {amount} has {decimal_places(amount)}",
            status=422,
        )


def check_value_date(value_date: date) -> None:
    if value_date > today():
        raise Refused("future_value_date", f"the value date {value_date} is in the future", status=422)


async def disburse(
    session: AsyncSession,
    ledger: Ledger,
    *,
    amount: Decimal,
    currency: str,
    value_date: date,
    actor: uuid.UUID | None,
    source: str = "staff",
    external_id: str | None = None,
    push_id: uuid.UUID | None = None,
    first_due_date: date | None = None,
) -> Transaction:
    loan = ledger.loan
    check_money(ledger, amount, currency)
    check_value_date(value_date)
    if loan.status not in ("pending_disbursement", "active"):
        raise Refused("loan_not_open", f"a {loan.status} loan takes no disbursement")
    terms = schedule_terms(loan)
    if terms is None:
        raise Refused("terms_not_set", "the loan's schedule terms (rate, frequency, method) are not set yet")
    total = ledger.book.disbursed + amount
    if total > loan.principal:
        raise Refused(
            "over_disbursement",
            f"{format_amount(total, loan.currency)} would exceed the approved principal of"
            f" {format_amount(loan.principal, loan.currency)} {loan.currency}",
        )
    if ledger.effective_from is not None and value_date < ledger.effective_from:
        raise Refused(
            "backdated_disbursement",
            f"a tranche cannot be dated before the schedule in force (from {ledger.effective_from})",
        )
    try:
        if ledger.version is None:
            schedule = first_schedule(
                terms,
                principal=amount,
                currency=loan.currency,
                term_months=loan.term_months,
                disbursed_on=value_date,
                first_due=first_due_date or loan.first_due_date,
            )
            reason = "disbursement"
        else:
            schedule = after_tranche(
                ledger.schedule, terms, disbursed_total=total, currency=loan.currency, on=value_date
            )
            reason = "tranche"
    except ScheduleError as exc:
        raise Refused("schedule", str(exc), status=422) from None
    await ledger.load_history(session)  # a new schedule version replays the history, this tranche included
    txn, _ = ledger.record(
        kind=Kind.disbursement,
        amount=amount,
        value_date=value_date,
        actor=actor,
        source=source,
        external_id=external_id,
        push_id=push_id,
    )
    await save_schedule(
        session, ledger, schedule, effective_from=value_date, reason=reason, terms=terms.as_json(), actor=actor
    )
    txn.outstanding_after = ledger.book.outstanding_principal
    ledger.settle()
    ledger.keep(session, txn)
    await announce_disbursement(session, ledger, txn)
    return txn


async def pay(
    session: AsyncSession,
    ledger: Ledger,
    *,
    kind: Kind,
    amount: Decimal,
    currency: str,
    value_date: date,
    actor: uuid.UUID | None,
    source: str = "staff",
    external_id: str | None = None,
    push_id: uuid.UUID | None = None,
    comment: str | None = None,
) -> Transaction:
    """A repayment or a recovery. After a write-off only recoveries are taken."""
    loan = ledger.loan
    check_money(ledger, amount, currency)
    check_value_date(value_date)
    if ledger.book.disbursed == 0 or ledger.first_disbursed_on is None:
        raise Refused("loan_not_disbursed", "the loan has not been disbursed")
    if value_date < ledger.first_disbursed_on:
        raise Refused(
            "before_disbursement",
            f"the value date {value_date} is before the disbursement on {ledger.first_disbursed_on}",
        )
    if kind == Kind.repayment and loan.status == "written_off":
        raise Refused("loan_written_off", "the loan is written off: money received now is a recovery")
    written_off_on = ledger.book.written_off_on
    if written_off_on is not None and value_date < written_off_on:
        # it would change the principal written off, which was recorded and announced
        raise Refused(
            "before_write_off", f"the loan was written off on {written_off_on}: money dated before it is not taken"
        )
    await ledger.prepare(session, value_date)
    txn, allocation = ledger.record(
        kind=kind,
        amount=amount,
        value_date=value_date,
        actor=actor,
        source=source,
        external_id=external_id,
        push_id=push_id,
        comment=comment,
    )
    ledger.settle()
    ledger.keep(session, txn)
    await announce_payment(session, ledger, txn, allocation)
    await announce_closure(session, ledger)
    return txn


async def charge(
    session: AsyncSession,
    ledger: Ledger,
    *,
    kind: Kind,
    amount: Decimal,
    currency: str,
    value_date: date,
    instalment: int,
    actor: uuid.UUID | None,
    comment: str,
) -> Transaction:
    """A fee or a penalty charged on an instalment (paid before its interest and principal)."""
    check_money(ledger, amount, currency)
    check_value_date(value_date)
    if ledger.loan.status not in ("active", "repaid"):
        raise Refused("loan_not_open", f"a {ledger.loan.status} loan takes no charge")
    if instalment not in {d.number for d in ledger.schedule}:
        raise Refused("unknown_instalment", f"the schedule has no instalment {instalment}", status=422)
    if ledger.effective_from is not None and value_date < ledger.effective_from:
        # a charge is read against the schedule in force on its date: it cannot predate the one it names
        raise Refused(
            "backdated_charge", f"a charge cannot be dated before the schedule in force (from {ledger.effective_from})"
        )
    await ledger.prepare(session, value_date)
    txn, _ = ledger.record(
        kind=kind, amount=amount, value_date=value_date, actor=actor, comment=comment, instalment=instalment
    )
    ledger.settle()
    ledger.keep(session, txn)
    await publish(
        session,
        event_tables,
        event_type="loan.charged",
        aggregate_type="loan",
        aggregate_id=str(ledger.loan.id),
        payload=LoanChargedV1(
            **facts(ledger.loan, ledger.standing(value_date)),
            transaction_id=txn.id,
            kind=kind.value,
            amount=format_amount(amount, ledger.loan.currency),
            value_date=value_date,
            instalment=instalment,
        ),
    )
    return txn


async def reverse(
    session: AsyncSession, ledger: Ledger, *, transaction_id: uuid.UUID, reason: str, actor: uuid.UUID | None
) -> Transaction:
    """Undoes exactly one earlier payment or charge: it stays in the statement, marked reversed, and the book is
    replayed without it, so balances and days past due are exactly what they were without it."""
    txn = await session.scalar(
        select(Transaction).where(Transaction.id == transaction_id, Transaction.loan_id == ledger.loan.id)
    )
    if txn is None:
        raise Refused("unknown_transaction", f"the loan has no transaction {transaction_id}", status=404)
    if txn.reversed_at is not None:
        raise Refused("already_reversed", f"transaction {transaction_id} was reversed on {txn.reversed_at:%Y-%m-%d}")
    if txn.kind in (Kind.disbursement, Kind.write_off):
        raise Refused("not_reversible", f"a {txn.kind} is not reversed this way")
    written_off_on = ledger.book.written_off_on
    if written_off_on is not None and txn.value_date <= written_off_on:
        raise Refused(
            "before_write_off",
            f"the loan was written off on {written_off_on}: reversing what came before would change the principal"
            " written off",
        )
    txn.reversed_at, txn.reversed_by, txn.reversal_reason = datetime.now(UTC), actor, reason
    await ledger.load_history(session)
    assert ledger.transactions is not None
    ledger.transactions = [(t, e) for t, e in ledger.transactions if t.id != txn.id]
    ledger.replay()
    ledger.settle()
    await publish(
        session,
        event_tables,
        event_type="loan.repayment_reversed",
        aggregate_type="loan",
        aggregate_id=str(ledger.loan.id),
        payload=RepaymentReversedV1(
            **facts(ledger.loan, ledger.standing(txn.value_date)),
            transaction_id=txn.id,
            kind=txn.kind,
            amount=format_amount(txn.amount, txn.currency),
            value_date=txn.value_date,
            reason=reason,
        ),
    )
    ledger.status_before = ledger.loan.status
    return txn


async def write_off(
    session: AsyncSession, ledger: Ledger, *, value_date: date, reason: str, actor: uuid.UUID | None
) -> Transaction:
    loan = ledger.loan
    check_value_date(value_date)
    if loan.status != "active":
        raise Refused("loan_not_open", f"only an active loan is written off; this one is {loan.status}")
    if ledger.last_value_date is not None and value_date < ledger.last_value_date:
        raise Refused(
            "backdated_write_off",
            f"the write-off cannot be dated before the last transaction ({ledger.last_value_date})",
        )
    await ledger.prepare(session, value_date)
    txn, _ = ledger.record(kind=Kind.write_off, amount=Decimal(0), value_date=value_date, actor=actor, comment=reason)
    txn.amount = ledger.book.written_off_principal
    if txn.amount > 0:
        txn.split = {
            k: format_amount(v, loan.currency) for k, v in split(txn.amount, loan.currency, ledger.shares).items()
        }
    loan.write_off_reason = reason
    ledger.settle()
    ledger.keep(session, txn)
    await publish(
        session,
        event_tables,
        event_type="loan.written_off",
        aggregate_type="loan",
        aggregate_id=str(loan.id),
        payload=LoanWrittenOffV1(
            **facts(loan, ledger.standing(value_date)),
            value_date=value_date,
            written_off_principal=format_amount(loan.written_off_principal, loan.currency),
            reason=reason,
        ),
    )
    return txn


async def restructure(
    session: AsyncSession,
    ledger: Ledger,
    *,
    terms: ScheduleTerms,
    effective_from: date,
    periods: int,
    first_due_date: date,
    reason: str,
    actor: uuid.UUID | None,
) -> int:
    loan = ledger.loan
    check_value_date(effective_from)
    if loan.status != "active":
        raise Refused("loan_not_open", f"only an active loan is restructured; this one is {loan.status}")
    if ledger.effective_from is not None and effective_from < ledger.effective_from:
        raise Refused(
            "backdated_restructuring",
            f"a restructuring cannot be dated before the schedule in force (from {ledger.effective_from})",
        )
    await ledger.load_history(session)
    try:
        schedule = restructured(
            ledger.schedule,
            terms,
            disbursed_total=ledger.book.disbursed,
            currency=loan.currency,
            on=effective_from,
            periods=periods,
            first_due=first_due_date,
        )
    except ScheduleError as exc:
        raise Refused("schedule", str(exc), status=422) from None
    assert ledger.transactions is not None
    charged = {e.instalment for _, e in ledger.transactions if e.kind in (Kind.fee, Kind.penalty)}
    missing = sorted(n for n in charged if n is not None and n not in {d.number for d in schedule})
    if missing:
        raise Refused(
            "charged_instalment_dropped",
            f"the new schedule has no instalment {', '.join(map(str, missing))}, which carries a fee or penalty;"
            " keep at least as many instalments, or reverse the charge first",
            status=422,
        )
    version = await save_schedule(
        session,
        ledger,
        schedule,
        effective_from=effective_from,
        reason="restructuring",
        terms={**terms.as_json(), "periods": periods, "first_due_date": first_due_date.isoformat()},
        actor=actor,
        comment=reason,
    )
    loan.restructured = True
    loan.annual_rate, loan.frequency, loan.method = terms.annual_rate, terms.frequency.value, terms.method.value
    loan.grace_periods = terms.grace_periods
    ledger.settle()
    await publish(
        session,
        event_tables,
        event_type="loan.restructured",
        aggregate_type="loan",
        aggregate_id=str(loan.id),
        payload=LoanRestructuredV1(
            **facts(loan, ledger.standing(effective_from)),
            effective_from=effective_from,
            schedule_version=version,
            reason=reason,
        ),
    )
    await announce_closure(session, ledger)
    return version
