"""The portfolio's subscription to the applications service: an approval opens the loan, exactly once."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.portfolio.db import events as event_tables
from services.portfolio.loans.models import Loan, Participant
from services.portfolio.loans.service import facts
from shared.contracts.applications import ApplicationApprovedV1
from shared.contracts.portfolio import LoanOpenedV1
from shared.events.consumer import Subscription
from shared.events.contracts import EventEnvelope
from shared.events.outbox import publish
from shared.money import format_amount

HUNDRED = Decimal(100)


async def open_loan(session: AsyncSession, event: EventEnvelope) -> None:
    approved = event.parse(ApplicationApprovedV1)
    terms = approved.terms
    loan_id = uuid.uuid4()
    created = await session.scalar(
        insert(Loan)
        .values(
            id=loan_id,
            application_id=approved.application_id,
            approval_event_id=event.event_id,
            business_id=approved.business_id,
            ica_id=approved.ica_id,
            lender_id=terms.lender_id,
            country=approved.business.country,
            currency=terms.currency,
            principal=Decimal(terms.amount),
            term_months=terms.term_months,
            instruments=terms.instruments,
            guarantee_coverage_pct=Decimal(terms.guarantee_coverage_pct) if terms.guarantee_coverage_pct else None,
            conditions=terms.conditions,
            business=approved.business.model_dump(mode="json"),
        )
        .on_conflict_do_nothing(index_elements=[Loan.application_id])
        .returning(Loan.id)
    )
    if created is None:
        return  # this application's loan is already open (a replayed or duplicated approval): nothing twice
    fund = Decimal(terms.fund_share_pct) if "co_financing" in terms.instruments and terms.fund_share_pct else Decimal(0)
    shares = {"lender": HUNDRED - fund}
    if fund:
        shares["fund"] = fund
    for participant, share in shares.items():
        session.add(Participant(loan_id=created, participant=participant, share_pct=share))
    await session.flush()
    loan = await session.get(Loan, created)
    assert loan is not None
    await publish(
        session,
        event_tables,
        event_type="loan.opened",
        aggregate_type="loan",
        aggregate_id=str(loan.id),
        payload=LoanOpenedV1(
            **facts(loan),
            principal=format_amount(loan.principal, loan.currency),
            term_months=loan.term_months,
            instruments=loan.instruments,
            guarantee_coverage_pct=terms.guarantee_coverage_pct,
            shares={k: format(v.normalize(), "f") for k, v in shares.items()},
        ),
    )


LOANS_FROM_APPROVALS = Subscription(
    name="loans-from-approvals",
    producer="applications",
    types=frozenset({"application.approved"}),
    handler=open_loan,
)
