"""What the guarantees service asks the portfolio about a loan when a lender files a claim (internal, service
token): its days past due on a date, and, when it is in default by the facility's trigger, the default date (the
day its oldest overdue instalment reached the trigger) and the outstanding principal that day."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from services.portfolio.loans.arrears import book_on, books_on
from services.portfolio.loans.ledger import standing_of
from services.portfolio.loans.models import Loan, Transaction
from shared.auth import service_caller
from shared.db import SessionDep, TransactionalRoute
from shared.money import format_amount
from shared.problems import NotFound

internal = APIRouter(prefix="/internal/loans", tags=["internal"], route_class=TransactionalRoute)


@internal.get("/{loan_id}/default")
async def default(
    loan_id: uuid.UUID,
    session: SessionDep,
    _caller: Annotated[str, Depends(service_caller)],
    trigger_dpd: Annotated[int, Query(ge=1, le=3650)],
    as_of: date,
) -> dict[str, Any]:
    loan = await session.get(Loan, loan_id)
    if loan is None:
        raise NotFound(f"no loan {loan_id}")
    _, book = await book_on(session, loan.id, as_of)
    dpd = book.days_past_due(as_of)
    body: dict[str, Any] = {
        "loan_id": str(loan.id),
        "lender_id": str(loan.lender_id),
        "currency": loan.currency,
        "as_of": as_of.isoformat(),
        "days_past_due": dpd,
        "default_date": None,
        "outstanding_on_default": None,
    }
    if dpd >= trigger_dpd:
        oldest = book.overdue(as_of)[0].due.due_date
        default_on = oldest + timedelta(days=trigger_dpd)
        _, then = await book_on(session, loan.id, default_on)
        body["default_date"] = default_on.isoformat()
        body["outstanding_on_default"] = format_amount(then.outstanding_principal, loan.currency)
    return body


class OutstandingIn(BaseModel):
    as_of: date
    loan_ids: list[uuid.UUID] = Field(max_length=5000)


@internal.post("/outstanding")
async def outstanding(
    body: OutstandingIn, session: SessionDep, _caller: Annotated[str, Depends(service_caller)]
) -> dict[str, Any]:
    """Each loan's outstanding principal as it stood on `as_of` (replayed by value date), in its currency."""
    found: dict[str, Any] = {}
    ids = list(dict.fromkeys(body.loan_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        currencies = dict((await session.execute(select(Loan.id, Loan.currency).where(Loan.id.in_(chunk)))).all())
        books = await books_on(session, [i for i in chunk if i in currencies], body.as_of)
        for loan_id, (_, book) in books.items():
            found[str(loan_id)] = {
                "currency": currencies[loan_id],
                "outstanding_principal": format_amount(book.outstanding_principal, currencies[loan_id]),
            }
    return {"as_of": body.as_of.isoformat(), "loans": found}


class HistoryIn(BaseModel):
    loan_ids: list[uuid.UUID] = Field(max_length=5000)
    start: date = Field(alias="from")
    end: date = Field(alias="to")


@internal.post("/outstanding-history")
async def outstanding_history(
    body: HistoryIn, session: SessionDep, _caller: Annotated[str, Depends(service_caller)]
) -> dict[str, Any]:
    """Each loan's outstanding principal at the end of each day from `from` to `to`, as a step function: the
    balance on `from`, then each change (the value dates of its transactions in between) with the new balance."""
    ids = list(dict.fromkeys(body.loan_ids))
    loans = dict((await session.execute(select(Loan.id, Loan.currency).where(Loan.id.in_(ids)))).all())
    days: dict[date, set[uuid.UUID]] = {body.start: set(loans)}
    for loan_id, value_date in (
        await session.execute(
            select(Transaction.loan_id, Transaction.value_date).where(
                Transaction.loan_id.in_(list(loans)),
                Transaction.value_date > body.start,
                Transaction.value_date <= body.end,
                Transaction.reversed_at.is_(None),
            )
        )
    ).all():
        days.setdefault(value_date, set()).add(loan_id)
    steps: dict[uuid.UUID, list[list[str]]] = {i: [] for i in loans}
    for day in sorted(days):
        for loan_id, (_, book) in (await books_on(session, sorted(days[day]), day)).items():
            balance = format_amount(book.outstanding_principal, loans[loan_id])
            if not steps[loan_id] or steps[loan_id][-1][1] != balance:
                steps[loan_id].append([day.isoformat(), balance])
    return {
        "from": body.start.isoformat(),
        "to": body.end.isoformat(),
        "loans": {str(i): {"currency": loans[i], "steps": steps[i]} for i in loans},
    }


@internal.get("/totals", summary="The portfolio's own totals as of a date, per currency (for reconciliation)")
async def totals(session: SessionDep, _caller: Annotated[str, Depends(service_caller)], as_of: date) -> dict[str, Any]:
    """Per currency, from this service's own books (each loan replayed as of `as_of`): the loans in the portfolio
    (active: disbursed, not repaid, not written off), their outstanding principal (gross loan portfolio) and the
    outstanding principal of those more than 30 days past due (PAR30) — DOMAIN.md's definitions."""
    ids = list(
        (
            await session.scalars(
                select(Transaction.loan_id)
                .where(Transaction.kind == "disbursement", Transaction.value_date <= as_of)
                .group_by(Transaction.loan_id)
                .order_by(Transaction.loan_id)
            )
        ).all()
    )
    currencies = dict((await session.execute(select(Loan.id, Loan.currency).where(Loan.id.in_(ids)))).all())
    per: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        for loan_id, (_, book) in (await books_on(session, ids[start : start + 500], as_of)).items():
            if standing_of(book, as_of).status != "active":
                continue
            figures = per.setdefault(currencies[loan_id], {"loans": 0, "glp": Decimal(0), "par30": Decimal(0)})
            figures["loans"] += 1
            figures["glp"] += book.outstanding_principal
            if book.days_past_due(as_of) > 30:
                figures["par30"] += book.outstanding_principal
    return {
        "as_of": as_of.isoformat(),
        "currencies": {
            currency: {
                "loans": f["loans"],
                "gross_loan_portfolio": format_amount(f["glp"], currency),
                "par30": format_amount(f["par30"], currency),
            }
            for currency, f in sorted(per.items())
        },
    }
