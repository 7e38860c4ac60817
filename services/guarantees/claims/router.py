"""Claims (DOMAIN.md, Guarantees): the lender files on its own guaranteed loan; accepted only when the guarantee
is active, the loan's days past due (per the portfolio) reach the facility's trigger, and the deadline after the
default date is not past. Amount in default = the outstanding principal on the default date; payout = min(coverage
× amount in default, cap), in CAD at the default date's rate. One staff member validates, another approves the
payment (maker–checker); payment is a `claim_paid` entry of the capital ledger."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from dateutil.relativedelta import relativedelta
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.guarantees.capital.ledger import record_entry
from services.guarantees.capital.models import CapitalEntry
from services.guarantees.claims.models import Claim, ClaimStep, Recovery
from services.guarantees.claims.recoveries import share_recovery
from services.guarantees.db import events as event_tables
from services.guarantees.facilities.models import FacilityTerms
from services.guarantees.issuance.models import Guarantee
from services.guarantees.limits import new_exposure
from shared.auth import STAFF_ROLES, CurrentPrincipal, Principal, Role, require_roles
from shared.contracts.guarantees import ClaimFiledV1, ClaimPaidV1, ClaimRejectedV1, ClaimValidatedV1
from shared.db import SessionDep
from shared.events.outbox import publish
from shared.idempotency import IdempotentRoute
from shared.money import Money, PositiveMoney
from shared.peers import InternalClient
from shared.problems import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    UnprocessableContent,
    problem_responses,
)

router = APIRouter(prefix="/api/v1/guarantees/claims", tags=["claims"], route_class=IdempotentRoute)
MANAGERS = require_roles(Role.admin, Role.fund_manager)
ANNOUNCES = (ClaimFiledV1, ClaimValidatedV1, ClaimPaidV1, ClaimRejectedV1)
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class Document(BaseModel):
    name: Text
    kind: Text = Field(description="e.g. demand_letter, loan_statement, recovery_plan")
    sha256: Annotated[str, StringConstraints(pattern="^[0-9a-f]{64}$")] | None = None


class ClaimIn(BaseModel):
    loan_id: uuid.UUID
    documents: list[Document] = Field(min_length=1, max_length=20)


class Reason(BaseModel):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000)]


class StepOut(BaseModel):
    from_status: str | None
    to_status: str
    actor: str
    comment: str | None
    at: datetime


class ClaimOut(BaseModel):
    id: uuid.UUID
    guarantee_id: uuid.UUID
    loan_id: uuid.UUID
    lender_id: uuid.UUID
    status: str = Field(description="filed | validated | paid | rejected")
    default_date: date
    days_past_due: int = Field(description="when filed")
    amount_in_default: Money
    rate: Decimal = Field(description="CAD per unit on the default date")
    payout: Money
    documents: list[dict[str, Any]]
    filed_at: datetime
    paid_on: date | None
    history: list[StepOut]


async def _out(session: AsyncSession, claim: Claim) -> ClaimOut:
    steps = (
        await session.scalars(select(ClaimStep).where(ClaimStep.claim_id == claim.id).order_by(ClaimStep.id))
    ).all()
    return ClaimOut(
        id=claim.id,
        guarantee_id=claim.guarantee_id,
        loan_id=claim.loan_id,
        lender_id=claim.lender_id,
        status=claim.status,
        default_date=claim.default_date,
        days_past_due=claim.days_past_due,
        amount_in_default=Money.of(claim.amount_in_default, claim.currency),
        rate=claim.rate,
        payout=Money.of(claim.payout_cad, "CAD"),
        documents=claim.documents,
        filed_at=claim.filed_at,
        paid_on=claim.paid_on,
        history=[
            StepOut(from_status=s.from_status, to_status=s.to_status, actor=s.actor, comment=s.comment, at=s.at)
            for s in steps
        ],
    )


async def _move(
    session: AsyncSession, claim: Claim, to: str, actor: str, event: str, comment: str | None = None, **extra: Any
) -> None:
    session.add(ClaimStep(claim_id=claim.id, from_status=claim.status, to_status=to, actor=actor, comment=comment))
    claim.status = to
    await session.flush()
    await publish(
        session,
        event_tables,
        event_type=event,
        aggregate_type="claim",
        aggregate_id=str(claim.id),
        payload={
            "claim_id": str(claim.id),
            "guarantee_id": str(claim.guarantee_id),
            "loan_id": str(claim.loan_id),
            "lender_id": str(claim.lender_id),
            "status": to,
            "payout_cad": format(claim.payout_cad, "f"),
            "actor": actor,
            **extra,
        },
    )


@router.post(
    "",
    status_code=201,
    response_model=ClaimOut,
    summary="File a claim on one of your guaranteed loans (lender key)",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def file_claim(
    body: ClaimIn, request: Request, session: SessionDep, principal: Principal = require_roles(Role.lender)
) -> ClaimOut:
    g = await session.scalar(select(Guarantee).where(Guarantee.loan_id == body.loan_id).with_for_update())
    if g is None or g.lender_id != principal.organization_id:
        raise NotFound(f"no guarantee of yours on loan {body.loan_id}")
    if g.status != "active":
        raise Conflict(f"the guarantee is {g.status}, not active: no claim can be filed", slug="guarantee-not-active")
    terms = await session.get(FacilityTerms, (g.facility_id, g.facility_version))
    assert terms is not None
    today = datetime.now(UTC).date()
    fx: InternalClient = request.app.state.peers
    response = await fx.get(
        "portfolio",
        f"/internal/loans/{g.loan_id}/default",
        {"trigger_dpd": str(terms.claim_trigger_dpd), "as_of": today.isoformat()},
    )
    info = response.json()
    dpd = int(info["days_past_due"])
    if dpd < terms.claim_trigger_dpd or info["default_date"] is None:
        raise Conflict(
            f"the loan is {dpd} days past due; a claim needs {terms.claim_trigger_dpd} (facility version"
            f" {terms.version})",
            slug="below-claim-trigger",
            days_past_due=dpd,
            trigger=terms.claim_trigger_dpd,
        )
    default_date = date.fromisoformat(info["default_date"])
    deadline = default_date + relativedelta(months=terms.claim_deadline_months)
    if today > deadline:
        raise Conflict(
            f"the claim deadline was {deadline} ({terms.claim_deadline_months} months after the default on"
            f" {default_date})",
            slug="claim-deadline-past",
            deadline=deadline.isoformat(),
        )
    equivalent = await fx.cad_equivalent(Decimal(1), g.currency, default_date)
    if equivalent is None:
        raise ServiceUnavailable(
            f"no {g.currency} rate is recorded: the claim cannot be measured", headers={"Retry-After": "300"}
        )
    amount = Decimal(info["outstanding_on_default"])
    payout = new_exposure(amount * equivalent.rate, g.coverage_pct, g.cap_cad)
    claim = Claim(
        id=uuid.uuid4(),
        guarantee_id=g.id,
        loan_id=g.loan_id,
        lender_id=g.lender_id,
        currency=g.currency,
        default_date=default_date,
        days_past_due=dpd,
        amount_in_default=amount,
        rate=equivalent.rate,
        payout_cad=payout,
        documents=[d.model_dump() for d in body.documents],
        status="new",
        filed_by=principal.actor,
    )
    session.add(claim)
    await session.flush()
    g.status = "called"
    await _move(
        session,
        claim,
        "filed",
        principal.actor,
        "claim.filed",
        default_date=default_date.isoformat(),
        amount_in_default=info["outstanding_on_default"],
        currency=g.currency,
    )
    await session.refresh(claim)
    return await _out(session, claim)


async def _claim(session: AsyncSession, claim_id: uuid.UUID, *, lock: bool = False) -> Claim:
    claim = await session.get(Claim, claim_id, with_for_update=lock)
    if claim is None:
        raise NotFound(f"no claim {claim_id}")
    return claim


@router.post(
    "/{claim_id}/validate",
    response_model=ClaimOut,
    summary="Validate a filed claim (staff: the maker)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def validate(claim_id: uuid.UUID, session: SessionDep, principal: Principal = MANAGERS) -> ClaimOut:
    claim = await _claim(session, claim_id, lock=True)
    if claim.status != "filed":
        raise Conflict(f"the claim is {claim.status}: only a filed claim is validated", slug="claim-not-filed")
    claim.validated_by = principal.actor
    await _move(session, claim, "validated", principal.actor, "claim.validated")
    return await _out(session, claim)


@router.post(
    "/{claim_id}/approve-payment",
    response_model=ClaimOut,
    summary="Approve the payment of a validated claim (staff: the checker, not the one who validated)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def approve_payment(claim_id: uuid.UUID, session: SessionDep, principal: Principal = MANAGERS) -> ClaimOut:
    claim = await _claim(session, claim_id, lock=True)
    if claim.status != "validated":
        raise Conflict(f"the claim is {claim.status}: only a validated claim is paid", slug="claim-not-validated")
    if claim.validated_by == principal.actor:
        raise Forbidden("maker–checker: the payment is approved by another staff member than the one who validated")
    today = datetime.now(UTC).date()
    await record_entry(
        session,
        CapitalEntry(
            id=uuid.uuid4(),
            kind="claim_paid",
            amount_cad=-claim.payout_cad,
            value_date=today,
            reference=f"claim {claim.id}",
            comment=f"loan {claim.loan_id}",
            recorded_by=principal.key_id,
        ),
    )
    claim.paid_on = today
    g = await session.get(Guarantee, claim.guarantee_id, with_for_update=True)
    assert g is not None
    g.status = "paid"
    await _move(session, claim, "paid", principal.actor, "claim.paid", paid_on=today.isoformat())
    return await _out(session, claim)


@router.post(
    "/{claim_id}/reject",
    response_model=ClaimOut,
    summary="Reject a claim, with the reason (staff)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def reject(claim_id: uuid.UUID, body: Reason, session: SessionDep, principal: Principal = MANAGERS) -> ClaimOut:
    claim = await _claim(session, claim_id, lock=True)
    if claim.status not in ("filed", "validated"):
        raise Conflict(f"the claim is {claim.status}: it can no longer be rejected", slug="claim-closed")
    g = await session.get(Guarantee, claim.guarantee_id, with_for_update=True)
    assert g is not None
    g.status = "active"  # the guarantee stands; the lender may file again within the rules
    await _move(session, claim, "rejected", principal.actor, "claim.rejected", body.reason, reason=body.reason)
    return await _out(session, claim)


@router.get(
    "",
    response_model=list[ClaimOut],
    summary="Claims, newest first (a lender: its own)",
    responses=problem_responses(401, 403),
)
async def list_claims(session: SessionDep, principal: CurrentPrincipal) -> list[ClaimOut]:
    query = select(Claim).order_by(Claim.filed_at.desc(), Claim.id).limit(500)
    if principal.role == Role.lender:
        query = query.where(Claim.lender_id == principal.organization_id)
    elif principal.role not in (*STAFF_ROLES, Role.funder):
        raise Forbidden(f"role {principal.role.value!r} has no access to claims")
    return [await _out(session, c) for c in (await session.scalars(query)).all()]


@router.get(
    "/{claim_id}",
    response_model=ClaimOut,
    summary="One claim with its history",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_claim(claim_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> ClaimOut:
    claim = await _claim(session, claim_id)
    if principal.role == Role.lender and claim.lender_id != principal.organization_id:
        raise NotFound(f"no claim {claim_id}")
    if principal.role not in (*STAFF_ROLES, Role.funder, Role.lender):
        raise Forbidden(f"role {principal.role.value!r} has no access to claims")
    return await _out(session, claim)


class RecoveryIn(BaseModel):
    amount: PositiveMoney = Field(description="what the lender recovered, in the loan's currency")
    value_date: date
    reference: Text = Field(description="the recovery's reference: the same one twice counts once")


class RecoveryOut(BaseModel):
    claim_id: uuid.UUID
    fund_share: Money = Field(description="coverage × the recovery, in CAD at its date, up to what is left to recoup")
    recouped: Money
    payout: Money


@router.post(
    "/{claim_id}/recoveries",
    status_code=201,
    response_model=RecoveryOut,
    summary="Record a recovery on a paid claim (staff); the fund's share goes to the capital ledger",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def add_recovery(
    claim_id: uuid.UUID, body: RecoveryIn, request: Request, session: SessionDep, principal: Principal = MANAGERS
) -> RecoveryOut:
    claim = await _claim(session, claim_id)
    if claim.status != "paid":
        raise Conflict(f"the claim is {claim.status}: recoveries are shared once it is paid", slug="claim-not-paid")
    if body.amount.currency != claim.currency:
        raise UnprocessableContent(
            f"the loan is in {claim.currency}", errors=[{"pointer": "#/amount/currency", "detail": "not the loan's"}]
        )
    g = await session.get(Guarantee, claim.guarantee_id, with_for_update=True)
    assert g is not None
    recovery = await share_recovery(
        session,
        request.app.state.peers,
        g,
        amount=body.amount.amount,
        value_date=body.value_date,
        source=f"staff:{claim.id}:{body.reference}",
        actor=principal.key_id,
    )
    recouped = await session.scalar(select(func.sum(Recovery.fund_share_cad)).where(Recovery.claim_id == claim.id))
    return RecoveryOut(
        claim_id=claim.id,
        fund_share=Money.of(recovery.fund_share_cad if recovery else Decimal(0), "CAD"),
        recouped=Money.of(Decimal(recouped or 0), "CAD"),
        payout=Money.of(claim.payout_cad, "CAD"),
    )
