import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from services.portfolio.loans.models import Loan, Participant
from shared.auth import CurrentPrincipal, Principal, Role
from shared.db import SessionDep, TransactionalRoute
from shared.money import Money
from shared.problems import Forbidden, NotFound, problem_responses

router = APIRouter(prefix="/api/v1/portfolio/loans", tags=["loans"], route_class=TransactionalRoute)
STAFF = (Role.admin, Role.analyst, Role.committee, Role.fund_manager)


class ParticipantOut(BaseModel):
    participant: str
    share_pct: Decimal


class LoanOut(BaseModel):
    id: uuid.UUID
    application_id: uuid.UUID
    business_id: uuid.UUID
    ica_id: uuid.UUID
    lender_id: uuid.UUID
    country: str
    principal: Money
    term_months: int
    instruments: list[str]
    guarantee_coverage_pct: Decimal | None
    conditions: list[str]
    status: str
    opened_at: datetime
    participants: list[ParticipantOut]


def _scope(principal: Principal, loan: Loan) -> bool:
    if principal.role in STAFF or principal.role == Role.funder:
        return True
    if principal.role == Role.lender:
        return loan.lender_id == principal.organization_id
    if principal.role == Role.ica:
        return loan.ica_id == principal.organization_id
    return False


async def _out(session: SessionDep, loan: Loan) -> LoanOut:
    parts = (
        await session.scalars(
            select(Participant).where(Participant.loan_id == loan.id).order_by(Participant.participant)
        )
    ).all()
    return LoanOut(
        id=loan.id,
        application_id=loan.application_id,
        business_id=loan.business_id,
        ica_id=loan.ica_id,
        lender_id=loan.lender_id,
        country=loan.country,
        principal=Money.of(loan.principal, loan.currency),
        term_months=loan.term_months,
        instruments=loan.instruments,
        guarantee_coverage_pct=loan.guarantee_coverage_pct,
        conditions=loan.conditions,
        status=loan.status,
        opened_at=loan.opened_at,
        participants=[ParticipantOut(participant=p.participant, share_pct=p.share_pct) for p in parts],
    )


@router.get(
    "",
    response_model=list[LoanOut],
    summary="Loans: staff and funders see all, a lender its own, an ICA its partners'",
    responses=problem_responses(401, 403, 422),
)
async def list_loans(
    session: SessionDep, principal: CurrentPrincipal, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[LoanOut]:
    query = select(Loan).order_by(Loan.opened_at.desc(), Loan.id).limit(limit)
    if principal.role == Role.lender:
        query = query.where(Loan.lender_id == principal.organization_id)
    elif principal.role == Role.ica:
        query = query.where(Loan.ica_id == principal.organization_id)
    elif principal.role not in (*STAFF, Role.funder):
        raise Forbidden(f"role {principal.role.value!r} has no access to loans")
    return [await _out(session, loan) for loan in (await session.scalars(query)).all()]


@router.get("/{loan_id}", response_model=LoanOut, summary="One loan", responses=problem_responses(401, 403, 404, 422))
async def get_loan(loan_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> LoanOut:
    loan = await session.get(Loan, loan_id)
    if loan is None or not _scope(principal, loan):
        raise NotFound(f"no loan {loan_id}")
    return await _out(session, loan)
