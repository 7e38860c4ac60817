"""Loans: terms, disbursements, repayments, recoveries, charges, reversals, restructuring, write-off; positions,
schedules and statements as of any date; the close of day; the portfolio's policy.

Who may call: staff (admin, fund manager) change loans; staff and funders read every loan, a lender key only its
own loans, an ICA key only its partners' loans (another's is a 404, as if it did not exist)."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from services.portfolio.fx.service import rate_on, to_cad
from services.portfolio.loans import operations
from services.portfolio.loans.arrears import book_on, close_of_day
from services.portfolio.loans.ledger import Book, Kind, Line, bucket
from services.portfolio.loans.models import (
    ArrearsSnapshot,
    CloseOfDay,
    Loan,
    Participant,
    PortfolioPolicy,
    ScheduleVersion,
    Transaction,
)
from services.portfolio.loans.operations import Refused
from services.portfolio.loans.schemas import (
    ArrearsOut,
    CadAmount,
    ChargeIn,
    CloseOfDayIn,
    CloseOfDayOut,
    DisbursementIn,
    InstalmentOut,
    LoanOut,
    ParticipantOut,
    PaymentIn,
    PolicyIn,
    PolicyOut,
    Position,
    RestructuringIn,
    ReversalIn,
    ScheduleOut,
    ScheduleVersionOut,
    TermsIn,
    TermsOut,
    TransactionOut,
    WriteOffIn,
)
from services.portfolio.loans.service import Ledger, current_policy, open_ledger, today
from services.portfolio.schedules.versions import ScheduleTerms
from shared.auth import STAFF_ROLES, CurrentPrincipal, Principal, Role, require_roles
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.money import Money
from shared.pagination import Page, keyset, page_of
from shared.problems import Conflict, Forbidden, NotFound, Problem, UnprocessableContent, problem_responses

router = APIRouter(prefix="/api/v1/portfolio/loans", tags=["loans"], route_class=IdempotentRoute)
admin = APIRouter(prefix="/api/v1/portfolio", tags=["close of day and policy"], route_class=IdempotentRoute)
MANAGERS = require_roles(Role.admin, Role.fund_manager)
HUNDRED = Decimal(100)
WRITE = problem_responses(401, 403, 404, 409, 422)
READ = problem_responses(401, 403, 404, 422)


def _refusal(exc: Refused) -> Problem:
    return Problem(exc.detail, status=exc.status, slug=exc.reason.replace("_", "-"), reason=exc.reason)


def may_see(principal: Principal, loan: Loan) -> bool:
    if principal.role in STAFF_ROLES or principal.role == Role.funder:
        return True
    if principal.role == Role.lender:
        return loan.lender_id == principal.organization_id
    if principal.role == Role.ica:
        return loan.ica_id == principal.organization_id
    return False


async def _visible(session: SessionDep, principal: Principal, loan_id: uuid.UUID) -> Loan:
    loan = await session.get(Loan, loan_id)
    if loan is None or not may_see(principal, loan):
        raise NotFound(f"no loan {loan_id}")
    return loan


async def _locked(session: SessionDep, loan_id: uuid.UUID) -> Ledger:
    ledger = await open_ledger(session, loan_id)
    if ledger is None:
        raise NotFound(f"no loan {loan_id}")
    return ledger


def _money(amount: Decimal, currency: str) -> Money:
    return Money.of(amount, currency)


def loan_out(loan: Loan, participants: list[Participant]) -> LoanOut:
    cur = loan.currency
    return LoanOut(
        id=loan.id,
        application_id=loan.application_id,
        business_id=loan.business_id,
        business_name=loan.business.get("name"),
        ica_id=loan.ica_id,
        lender_id=loan.lender_id,
        country=loan.country,
        principal=_money(loan.principal, cur),
        term_months=loan.term_months,
        instruments=loan.instruments,
        guarantee_coverage_pct=loan.guarantee_coverage_pct,
        conditions=loan.conditions,
        status=loan.status,
        restructured=loan.restructured,
        arrears_state=loan.arrears_state,
        opened_at=loan.opened_at,
        closed_on=loan.closed_on,
        terms=TermsOut(
            annual_rate_pct=(loan.annual_rate * HUNDRED).normalize() if loan.annual_rate is not None else None,
            frequency=loan.frequency,
            method=loan.method,
            grace_periods=loan.grace_periods,
            first_due_date=loan.first_due_date,
        ),
        disbursed=_money(loan.disbursed, cur),
        outstanding_principal=_money(loan.outstanding_principal, cur),
        credit=_money(loan.credit, cur),
        written_off_principal=_money(loan.written_off_principal, cur),
        participants=[ParticipantOut(participant=p.participant, share_pct=p.share_pct) for p in participants],
    )


async def _loan_out(session: SessionDep, loan: Loan) -> LoanOut:
    await session.flush()
    await session.refresh(loan)
    parts = (
        await session.scalars(
            select(Participant).where(Participant.loan_id == loan.id).order_by(Participant.participant)
        )
    ).all()
    return loan_out(loan, list(parts))


# ------------------------------------------------------------------------------------------------------------ reads
@router.get("", response_model=Page[LoanOut], summary="Loans, newest first, with filters", responses=READ)
async def list_loans(
    session: SessionDep,
    principal: CurrentPrincipal,
    status: Annotated[Literal["pending_disbursement", "active", "repaid", "written_off"] | None, Query()] = None,
    arrears_state: Annotated[Literal["current", "in_arrears", "defaulted"] | None, Query()] = None,
    lender_id: uuid.UUID | None = None,
    ica_id: uuid.UUID | None = None,
    business_id: uuid.UUID | None = None,
    application_id: Annotated[uuid.UUID | None, Query(description="the approval that opened the loan")] = None,
    currency: Annotated[str | None, Query(pattern="^[A-Z]{3}$")] = None,
    country: Annotated[str | None, Query(pattern="^[A-Z]{2}$")] = None,
    restructured: bool | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[LoanOut]:
    query = select(Loan)
    if principal.role == Role.lender:
        query = query.where(Loan.lender_id == principal.organization_id)
    elif principal.role == Role.ica:
        query = query.where(Loan.ica_id == principal.organization_id)
    elif principal.role not in (*STAFF_ROLES, Role.funder):
        raise Forbidden(f"role {principal.role.value!r} has no access to loans")
    filters = {
        Loan.status: status,
        Loan.arrears_state: arrears_state,
        Loan.lender_id: lender_id,
        Loan.ica_id: ica_id,
        Loan.business_id: business_id,
        Loan.application_id: application_id,
        Loan.currency: currency,
        Loan.country: country,
        Loan.restructured: restructured,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    rows = (await session.scalars(keyset(query, Loan.opened_at, Loan.id, cursor=cursor, limit=limit))).all()
    loans, next_cursor = page_of(rows, limit, at="opened_at")
    parts: dict[uuid.UUID, list[Participant]] = {loan.id: [] for loan in loans}
    if loans:
        for p in (
            await session.scalars(
                select(Participant).where(Participant.loan_id.in_(parts)).order_by(Participant.participant)
            )
        ).all():
            parts[p.loan_id].append(p)
    return Page[LoanOut](items=[loan_out(loan, parts[loan.id]) for loan in loans], next_cursor=next_cursor)


@router.get("/{loan_id}", response_model=LoanOut, summary="One loan, with its balances as of now", responses=READ)
async def get_loan(loan_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> LoanOut:
    return await _loan_out(session, await _visible(session, principal, loan_id))


def _status_on(book: Book, version: int | None) -> str:
    if version is None or book.disbursed == 0:
        return "pending_disbursement"
    if book.written_off_on is not None:
        return "written_off"
    return "repaid" if book.fully_paid else "active"


@router.get(
    "/{loan_id}/position",
    response_model=Position,
    summary="The loan as it stood on a date: balances, arrears, days past due and bucket, outstanding in CAD",
    responses=READ,
)
async def position(
    loan_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    as_of: Annotated[date | None, Query(description="default: today (UTC)")] = None,
) -> Position:
    loan = await _visible(session, principal, loan_id)
    on = as_of or today()
    version, book = await book_on(session, loan.id, on)
    policy = await current_policy(session)
    overdue = book.overdue(on)
    cur = loan.currency
    dpd = book.days_past_due(on)
    rate = await rate_on(session, cur, on)
    cad = CadAmount(
        amount=Money.of(to_cad(book.outstanding_principal, rate), "CAD") if rate else None,
        rate=rate.cad_per_unit if rate else None,
        rate_date=rate.rate_date if rate else None,
        stale=rate.stale if rate else False,
    )

    def total(attr: str, lines: list[Line]) -> Money:
        return _money(sum((getattr(line, attr) for line in lines), Decimal(0)), cur)

    due_lines = [line for line in book.lines if line.due.due_date < on]
    return Position(
        loan_id=loan.id,
        as_of=on,
        currency=cur,
        schedule_version=version,
        status=_status_on(book, version),
        disbursed=_money(book.disbursed, cur),
        principal_paid=_money(book.principal_paid, cur),
        interest_paid=_money(book.interest_paid, cur),
        outstanding_principal=_money(book.outstanding_principal, cur),
        overdue_principal=total("unpaid_principal", overdue),
        overdue_interest=total("unpaid_interest", overdue),
        overdue_fees=total("unpaid_fees", due_lines),
        overdue_penalties=total("unpaid_penalties", due_lines),
        credit=_money(book.credit, cur),
        written_off_principal=_money(book.written_off_principal, cur),
        recovered_after_write_off=_money(book.recovered_after_write_off, cur),
        days_past_due=dpd,
        bucket=bucket(dpd),
        in_default=book.written_off_on is None and dpd >= policy.default_dpd,
        policy_version=policy.version,
        outstanding_principal_cad=cad,
    )


def _instalment(line: Line, on: date, cur: str) -> InstalmentOut:
    due_total = line.due.principal + line.due.interest + line.fees + line.penalties
    paid = line.paid_principal + line.paid_interest + line.paid_fees + line.paid_penalties
    if line.settled:
        status = "paid"
    elif line.due.due_date < on:
        status = "overdue"
    elif paid > 0:
        status = "partly_paid"
    else:
        status = "unpaid"
    return InstalmentOut(
        number=line.due.number,
        due_date=line.due.due_date,
        principal=_money(line.due.principal, cur),
        interest=_money(line.due.interest, cur),
        fees=_money(line.fees, cur),
        penalties=_money(line.penalties, cur),
        total_due=_money(due_total, cur),
        paid_principal=_money(line.paid_principal, cur),
        paid_interest=_money(line.paid_interest, cur),
        paid_fees=_money(line.paid_fees, cur),
        paid_penalties=_money(line.paid_penalties, cur),
        paid=_money(paid, cur),
        unpaid=_money(line.unpaid, cur),
        status=status,
        paid_on=line.paid_on,
    )


@router.get(
    "/{loan_id}/schedule",
    response_model=ScheduleOut,
    summary="The schedule in force on a date, with what was paid and unpaid on each instalment that day",
    responses=READ,
)
async def schedule(
    loan_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    as_of: Annotated[date | None, Query(description="default: today (UTC)")] = None,
) -> ScheduleOut:
    loan = await _visible(session, principal, loan_id)
    on = as_of or today()
    version, book = await book_on(session, loan.id, on)
    if version is None:
        raise NotFound(f"loan {loan_id} had no schedule on {on}: it was not yet disbursed")
    meta = await session.get(ScheduleVersion, (loan.id, version))
    assert meta is not None
    cur = loan.currency
    return ScheduleOut(
        loan_id=loan.id,
        as_of=on,
        version=version,
        effective_from=meta.effective_from,
        reason=meta.reason,
        terms=meta.terms,
        instalments=[_instalment(line, on, cur) for line in book.lines],
        total_principal=_money(sum((line.due.principal for line in book.lines), Decimal(0)), cur),
        total_interest=_money(sum((line.due.interest for line in book.lines), Decimal(0)), cur),
    )


@router.get(
    "/{loan_id}/schedules",
    response_model=list[ScheduleVersionOut],
    summary="Every version of the loan's schedule (first disbursement, tranches, restructurings), oldest first",
    responses=READ,
)
async def schedule_versions(
    loan_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> list[ScheduleVersionOut]:
    loan = await _visible(session, principal, loan_id)
    rows = await session.scalars(
        select(ScheduleVersion).where(ScheduleVersion.loan_id == loan.id).order_by(ScheduleVersion.version)
    )
    return [ScheduleVersionOut.model_validate(v) for v in rows.all()]


def transaction_out(txn: Transaction) -> TransactionOut:
    return TransactionOut(
        id=txn.id,
        kind=txn.kind,
        amount=_money(txn.amount, txn.currency),
        value_date=txn.value_date,
        instalment=txn.instalment,
        external_id=txn.external_id,
        source=txn.source,
        push_id=txn.push_id,
        comment=txn.comment,
        split=txn.split,
        allocation=txn.allocation,
        outstanding_after=_money(txn.outstanding_after, txn.currency),
        recorded_at=txn.recorded_at,
        reversed_at=txn.reversed_at,
        reversal_reason=txn.reversal_reason,
    )


@router.get(
    "/{loan_id}/transactions",
    response_model=Page[TransactionOut],
    summary="Statement: every transaction in the order recorded (reversed ones included, marked)",
    responses=READ,
)
async def statement(
    loan_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[TransactionOut]:
    loan = await _visible(session, principal, loan_id)
    query = select(Transaction).where(Transaction.loan_id == loan.id).order_by(Transaction.seq).limit(limit + 1)
    if cursor is not None:
        if not cursor.isdigit():
            raise UnprocessableContent(
                "the cursor is not one this API gave out",
                errors=[{"parameter": "cursor", "in": "query", "detail": "invalid cursor"}],
            )
        query = query.where(Transaction.seq > int(cursor))
    rows = (await session.scalars(query)).all()
    items = list(rows[:limit])
    next_cursor = str(items[-1].seq) if len(rows) > limit and items else None
    return Page[TransactionOut](items=[transaction_out(t) for t in items], next_cursor=next_cursor)


@router.get(
    "/{loan_id}/arrears",
    response_model=list[ArrearsOut],
    summary="The close of day's readings of the loan, newest first (history as it was read each day)",
    responses=READ,
)
async def arrears_history(
    loan_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ArrearsOut]:
    loan = await _visible(session, principal, loan_id)
    rows = await session.scalars(
        select(ArrearsSnapshot)
        .where(ArrearsSnapshot.loan_id == loan.id)
        .order_by(ArrearsSnapshot.as_of.desc())
        .limit(limit)
    )
    return [ArrearsOut.model_validate(r) for r in rows.all()]


# ----------------------------------------------------------------------------------------------------------- writes
@router.put(
    "/{loan_id}/terms",
    response_model=LoanOut,
    summary="Set the schedule terms (rate, frequency, method, grace, first due date) before the first disbursement",
    responses=WRITE,
    dependencies=[MANAGERS],
)
async def set_terms(loan_id: uuid.UUID, body: TermsIn, session: SessionDep) -> LoanOut:
    ledger = await _locked(session, loan_id)
    loan = ledger.loan
    if loan.status != "pending_disbursement":
        raise Conflict(
            "the terms are fixed at the first disbursement; change them by restructuring", slug="terms-fixed"
        )
    months = body.frequency.months
    if loan.term_months % months:
        raise UnprocessableContent(
            f"a term of {loan.term_months} months is not a whole number of {body.frequency.value} periods",
            errors=[{"pointer": "#/frequency", "detail": "does not divide the term"}],
        )
    if body.grace_periods >= loan.term_months // months:
        raise UnprocessableContent(
            "grace periods must leave at least one period to repay",
            errors=[{"pointer": "#/grace_periods", "detail": "too many"}],
        )
    loan.annual_rate = body.annual_rate_pct / HUNDRED
    loan.frequency, loan.method = body.frequency.value, body.method.value
    loan.grace_periods, loan.first_due_date = body.grace_periods, body.first_due_date
    return await _loan_out(session, loan)


@router.post(
    "/{loan_id}/disbursements",
    status_code=201,
    response_model=TransactionOut,
    summary="Disburse a tranche: the first builds the schedule, a later one a new schedule version",
    responses=WRITE,
)
async def disburse(
    loan_id: uuid.UUID, body: DisbursementIn, session: SessionDep, principal: Principal = MANAGERS
) -> TransactionOut:
    ledger = await _locked(session, loan_id)
    try:
        txn = await operations.disburse(
            session,
            ledger,
            amount=body.amount.amount,
            currency=body.amount.currency,
            value_date=body.value_date,
            actor=principal.key_id,
            external_id=body.external_id,
            first_due_date=body.first_due_date,
        )
    except Refused as exc:
        raise _refusal(exc) from None
    await _flush_unique(session)
    return transaction_out(txn)


async def _flush_unique(session: SessionDep) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        if "uq_loan_transactions_external_id" in str(exc.orig):
            raise Conflict("this lender transaction id is already recorded", slug="transaction-id-reused") from None
        raise


async def _pay(
    kind: Kind, loan_id: uuid.UUID, body: PaymentIn, session: SessionDep, principal: Principal
) -> TransactionOut:
    ledger = await _locked(session, loan_id)
    try:
        txn = await operations.pay(
            session,
            ledger,
            kind=kind,
            amount=body.amount.amount,
            currency=body.amount.currency,
            value_date=body.value_date,
            actor=principal.key_id,
            external_id=body.external_id,
            comment=body.comment,
        )
    except Refused as exc:
        raise _refusal(exc) from None
    await _flush_unique(session)
    return transaction_out(txn)


@router.post(
    "/{loan_id}/repayments",
    status_code=201,
    response_model=TransactionOut,
    summary="Record a repayment: allocated oldest instalment first, penalties → fees → interest → principal",
    responses=WRITE,
)
async def repay(
    loan_id: uuid.UUID, body: PaymentIn, session: SessionDep, principal: Principal = MANAGERS
) -> TransactionOut:
    return await _pay(Kind.repayment, loan_id, body, session, principal)


@router.post(
    "/{loan_id}/recoveries",
    status_code=201,
    response_model=TransactionOut,
    summary="Record a recovery (after a default or a write-off)",
    responses=WRITE,
)
async def recover(
    loan_id: uuid.UUID, body: PaymentIn, session: SessionDep, principal: Principal = MANAGERS
) -> TransactionOut:
    return await _pay(Kind.recovery, loan_id, body, session, principal)


@router.post(
    "/{loan_id}/charges",
    status_code=201,
    response_model=TransactionOut,
    summary="Charge a fee or a penalty on an instalment",
    responses=WRITE,
)
async def add_charge(
    loan_id: uuid.UUID, body: ChargeIn, session: SessionDep, principal: Principal = MANAGERS
) -> TransactionOut:
    ledger = await _locked(session, loan_id)
    try:
        txn = await operations.charge(
            session,
            ledger,
            kind=Kind(body.kind),
            amount=body.amount.amount,
            currency=body.amount.currency,
            value_date=body.value_date,
            instalment=body.instalment,
            actor=principal.key_id,
            comment=body.comment,
        )
    except Refused as exc:
        raise _refusal(exc) from None
    await session.flush()
    return transaction_out(txn)


@router.post(
    "/{loan_id}/transactions/{transaction_id}/reversal",
    response_model=TransactionOut,
    summary="Reverse one repayment, recovery or charge: the loan returns exactly to its state without it",
    responses=WRITE,
)
async def reverse(
    loan_id: uuid.UUID,
    transaction_id: uuid.UUID,
    body: ReversalIn,
    session: SessionDep,
    principal: Principal = MANAGERS,
) -> TransactionOut:
    ledger = await _locked(session, loan_id)
    try:
        txn = await operations.reverse(
            session, ledger, transaction_id=transaction_id, reason=body.reason, actor=principal.key_id
        )
    except Refused as exc:
        raise _refusal(exc) from None
    await session.flush()
    return transaction_out(txn)


@router.post(
    "/{loan_id}/write-off",
    response_model=LoanOut,
    summary="Write the loan off, with a reason: its outstanding principal leaves the portfolio",
    responses=WRITE,
)
async def write_off(
    loan_id: uuid.UUID, body: WriteOffIn, session: SessionDep, principal: Principal = MANAGERS
) -> LoanOut:
    ledger = await _locked(session, loan_id)
    try:
        await operations.write_off(
            session, ledger, value_date=body.value_date, reason=body.reason, actor=principal.key_id
        )
    except Refused as exc:
        raise _refusal(exc) from None
    await session.flush()
    return await _loan_out(session, ledger.loan)


@router.post(
    "/{loan_id}/restructuring",
    response_model=ScheduleVersionOut,
    status_code=201,
    summary="Restructure: a new schedule version from a date (instalments due by then stay as they were)",
    responses=WRITE,
)
async def restructure(
    loan_id: uuid.UUID, body: RestructuringIn, session: SessionDep, principal: Principal = MANAGERS
) -> ScheduleVersionOut:
    ledger = await _locked(session, loan_id)
    terms = ScheduleTerms(body.annual_rate_pct / HUNDRED, body.frequency, body.method, body.grace_periods)
    try:
        version = await operations.restructure(
            session,
            ledger,
            terms=terms,
            effective_from=body.effective_from,
            periods=body.periods,
            first_due_date=body.first_due_date,
            reason=body.reason,
            actor=principal.key_id,
        )
    except Refused as exc:
        raise _refusal(exc) from None
    await session.flush()
    meta = await session.get(ScheduleVersion, (loan_id, version))
    return ScheduleVersionOut.model_validate(meta)


# ------------------------------------------------------------------------------------------- close of day and policy
@admin.post(
    "/admin/close-of-day",
    response_model=CloseOfDayOut,
    summary="Run the close of day for a date (the daily job does it for yesterday); idempotent",
    responses=problem_responses(401, 403, 422),
    dependencies=[MANAGERS],
)
async def run_close_of_day(body: CloseOfDayIn, session: SessionDep, principal: CurrentPrincipal) -> CloseOfDayOut:
    if body.as_of >= today():
        raise UnprocessableContent(
            f"{body.as_of} is not over yet (UTC): a day is closed once it has ended",
            errors=[{"pointer": "#/as_of", "detail": "today or later"}],
        )
    result = await close_of_day(session, body.as_of, actor=principal.key_id)
    return CloseOfDayOut(
        as_of=result.as_of,
        loans=result.loans,
        events=result.events,
        runs=result.runs,
        policy_version=result.policy_version,
        failed=result.failed,
    )


@admin.get(
    "/admin/close-of-day",
    response_model=list[CloseOfDayOut],
    summary="The dates closed, newest first",
    responses=problem_responses(401, 403, 422),
    dependencies=[require_roles(*STAFF_ROLES)],
)
async def close_of_day_runs(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 60
) -> list[CloseOfDayOut]:
    rows = await session.scalars(select(CloseOfDay).order_by(CloseOfDay.as_of.desc()).limit(limit))
    return [
        CloseOfDayOut(as_of=r.as_of, loans=r.loans, events=r.events, runs=r.runs, policy_version=r.policy_version)
        for r in rows.all()
    ]


@admin.get(
    "/policy",
    response_model=PolicyOut,
    summary="The portfolio policy in force (arrears and default thresholds in days past due)",
    responses=problem_responses(401, 403),
    dependencies=[require_roles(*STAFF_ROLES, Role.funder)],
)
async def get_policy(session: SessionDep) -> PolicyOut:
    return PolicyOut.model_validate(await current_policy(session))


@admin.put(
    "/policy",
    response_model=PolicyOut,
    summary="A new version of the portfolio policy (the old ones are kept)",
    responses=problem_responses(401, 403, 422),
)
async def put_policy(
    body: PolicyIn, session: SessionDep, principal: Principal = require_roles(Role.admin)
) -> PolicyOut:
    if body.default_dpd < body.arrears_dpd:
        raise UnprocessableContent(
            "the default threshold cannot be below the arrears threshold",
            errors=[{"pointer": "#/default_dpd", "detail": "below arrears_dpd"}],
        )
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('portfolio.policy'))"))
    current = await current_policy(session)
    policy = PortfolioPolicy(
        version=current.version + 1,
        arrears_dpd=body.arrears_dpd,
        default_dpd=body.default_dpd,
        comment=body.comment,
        created_by=principal.key_id,
    )
    session.add(policy)
    await session.flush()
    await session.refresh(policy)
    return PolicyOut.model_validate(policy)
