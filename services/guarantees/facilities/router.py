"""Guarantee facilities: the fund's agreement with each lender (DOMAIN.md, Guarantees). Staff create and change
them; every change is a new version of the terms, and the terms a guarantee was issued under are never rewritten.
A lender key sees its own facility only; staff and funders see all."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field, StringConstraints, model_validator
from sqlalchemy import select

from services.guarantees.db import events as event_tables
from services.guarantees.facilities.models import Facility, FacilityTerms
from services.guarantees.policy.models import GuaranteePolicy
from services.guarantees.policy.router import current_policy
from shared.auth import STAFF_ROLES, CurrentPrincipal, Principal, Role, require_roles
from shared.contracts.guarantees import FacilityTermsSetV1
from shared.db import SessionDep
from shared.events.outbox import publish
from shared.idempotency import IdempotentRoute
from shared.money import Money, PositiveMoney, format_amount
from shared.problems import Conflict, Forbidden, NotFound, UnprocessableContent, problem_responses

router = APIRouter(prefix="/api/v1/guarantees/facilities", tags=["facilities"], route_class=IdempotentRoute)
MANAGERS = require_roles(Role.admin, Role.fund_manager)


class TermsIn(BaseModel):
    """Omitted parameters take the policy's defaults (coverage, fee rate, claim trigger, claim deadline)."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "coverage_pct": "50",
                    "ceiling": {"amount": "1500000.00", "currency": "CAD"},
                    "max_cover_per_loan": {"amount": "125000.00", "currency": "CAD"},
                    "valid_from": "2026-01-01",
                    "valid_to": "2028-12-31",
                }
            ]
        }
    }

    coverage_pct: Annotated[Decimal, Field(gt=0, le=100, decimal_places=2)] | None = None
    ceiling: PositiveMoney = Field(description="cap on the lender's guaranteed exposure, in CAD")
    max_cover_per_loan: PositiveMoney = Field(description="cap on one guarantee, in CAD")
    fee_rate_pct: Annotated[Decimal, Field(ge=0, le=20, decimal_places=3)] | None = None
    claim_trigger_dpd: int | None = Field(None, ge=1, le=3650)
    claim_deadline_months: int | None = Field(None, ge=1, le=120)
    valid_from: date
    valid_to: date
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None

    @model_validator(mode="after")
    def _rules(self) -> TermsIn:
        if self.ceiling.currency != "CAD" or self.max_cover_per_loan.currency != "CAD":
            raise ValueError("limits are kept in CAD")
        if self.valid_to <= self.valid_from:
            raise ValueError("valid_to must come after valid_from")
        if self.max_cover_per_loan.amount > self.ceiling.amount:
            raise ValueError("the cap per loan cannot exceed the facility's ceiling")
        return self


class FacilityIn(TermsIn):
    lender_id: uuid.UUID = Field(description="the lender, as registered in the portfolio service")


class TermsOut(BaseModel):
    version: int
    coverage_pct: Decimal
    ceiling: Money
    max_cover_per_loan: Money
    fee_rate_pct: Decimal
    claim_trigger_dpd: int
    claim_deadline_months: int
    valid_from: date
    valid_to: date
    recoveries: str
    comment: str | None
    created_at: datetime


class FacilityOut(BaseModel):
    id: uuid.UUID
    lender_id: uuid.UUID
    terms: TermsOut = Field(description="the version in force")
    created_at: datetime


def _terms_out(t: FacilityTerms) -> TermsOut:
    return TermsOut(
        version=t.version,
        coverage_pct=t.coverage_pct,
        ceiling=Money.of(t.ceiling_cad, "CAD"),
        max_cover_per_loan=Money.of(t.max_cover_per_loan_cad, "CAD"),
        fee_rate_pct=t.fee_rate_pct,
        claim_trigger_dpd=t.claim_trigger_dpd,
        claim_deadline_months=t.claim_deadline_months,
        valid_from=t.valid_from,
        valid_to=t.valid_to,
        recoveries=t.recoveries,
        comment=t.comment,
        created_at=t.created_at,
    )


def _terms(
    body: TermsIn, policy: GuaranteePolicy, facility_id: uuid.UUID, version: int, actor: uuid.UUID
) -> FacilityTerms:
    coverage = body.coverage_pct if body.coverage_pct is not None else policy.coverage_default_pct
    if not policy.coverage_min_pct <= coverage <= policy.coverage_max_pct:
        raise UnprocessableContent(
            f"coverage must lie between {policy.coverage_min_pct} % and {policy.coverage_max_pct} %"
            f" (policy version {policy.version})",
            errors=[{"pointer": "#/coverage_pct", "detail": "outside the policy's bounds"}],
        )
    return FacilityTerms(
        facility_id=facility_id,
        version=version,
        coverage_pct=coverage,
        ceiling_cad=body.ceiling.amount,
        max_cover_per_loan_cad=body.max_cover_per_loan.amount,
        fee_rate_pct=body.fee_rate_pct if body.fee_rate_pct is not None else policy.fee_rate_default_pct,
        claim_trigger_dpd=body.claim_trigger_dpd or policy.claim_trigger_dpd_default,
        claim_deadline_months=body.claim_deadline_months or policy.claim_deadline_months_default,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        comment=body.comment,
        created_by=actor,
    )


async def _announce(session: SessionDep, facility: Facility, terms: FacilityTerms) -> None:
    """`facility.terms_set`, in the same transaction as the new terms: the reporting service measures each lender's
    ceiling utilisation from it without reading this schema."""
    await publish(
        session,
        event_tables,
        event_type="facility.terms_set",
        aggregate_type="facility",
        aggregate_id=str(facility.id),
        payload=FacilityTermsSetV1(
            facility_id=facility.id,
            lender_id=facility.lender_id,
            version=terms.version,
            coverage_pct=format(terms.coverage_pct, "f"),
            ceiling_cad=format_amount(terms.ceiling_cad, "CAD"),
            max_cover_per_loan_cad=format_amount(terms.max_cover_per_loan_cad, "CAD"),
            valid_from=terms.valid_from,
            valid_to=terms.valid_to,
        ),
    )


async def _out(session: SessionDep, facility: Facility) -> FacilityOut:
    terms = await session.get(FacilityTerms, (facility.id, facility.current_version))
    assert terms is not None
    await session.refresh(terms)
    return FacilityOut(
        id=facility.id, lender_id=facility.lender_id, terms=_terms_out(terms), created_at=facility.created_at
    )


async def _visible(session: SessionDep, principal: Principal, facility_id: uuid.UUID) -> Facility:
    facility = await session.get(Facility, facility_id)
    if facility is None or (principal.role == Role.lender and facility.lender_id != principal.organization_id):
        raise NotFound(f"no facility {facility_id}")
    if principal.role not in (*STAFF_ROLES, Role.funder, Role.lender):
        raise Forbidden(f"role {principal.role.value!r} has no access to facilities")
    return facility


@router.post(
    "",
    status_code=201,
    response_model=FacilityOut,
    summary="Open a facility with a lender (admin, fund manager); one per lender",
    responses=problem_responses(401, 403, 409, 422),
)
async def create_facility(body: FacilityIn, session: SessionDep, principal: Principal = MANAGERS) -> FacilityOut:
    if await session.scalar(select(Facility.id).where(Facility.lender_id == body.lender_id)) is not None:
        raise Conflict(f"lender {body.lender_id} already has a facility: change its terms instead")
    policy = await current_policy(session)
    facility = Facility(id=uuid.uuid4(), lender_id=body.lender_id, current_version=1, created_by=principal.key_id)
    session.add(facility)
    await session.flush()
    terms = _terms(body, policy, facility.id, 1, principal.key_id)
    session.add(terms)
    await session.flush()
    await _announce(session, facility, terms)
    await session.refresh(facility)
    return await _out(session, facility)


@router.put(
    "/{facility_id}",
    response_model=FacilityOut,
    summary="Change the terms: a new version (guarantees already issued keep theirs)",
    responses=problem_responses(401, 403, 404, 422),
)
async def change_terms(
    facility_id: uuid.UUID, body: TermsIn, session: SessionDep, principal: Principal = MANAGERS
) -> FacilityOut:
    facility = await session.get(Facility, facility_id, with_for_update=True)
    if facility is None:
        raise NotFound(f"no facility {facility_id}")
    policy = await current_policy(session)
    facility.current_version += 1
    terms = _terms(body, policy, facility.id, facility.current_version, principal.key_id)
    session.add(terms)
    await session.flush()
    await _announce(session, facility, terms)
    return await _out(session, facility)


@router.get(
    "",
    response_model=list[FacilityOut],
    summary="Facilities (a lender: its own)",
    responses=problem_responses(401, 403),
)
async def list_facilities(session: SessionDep, principal: CurrentPrincipal) -> list[FacilityOut]:
    query = select(Facility).order_by(Facility.created_at, Facility.id)
    if principal.role == Role.lender:
        query = query.where(Facility.lender_id == principal.organization_id)
    elif principal.role not in (*STAFF_ROLES, Role.funder):
        raise Forbidden(f"role {principal.role.value!r} has no access to facilities")
    return [await _out(session, f) for f in (await session.scalars(query)).all()]


@router.get(
    "/{facility_id}",
    response_model=FacilityOut,
    summary="One facility",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_facility(facility_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> FacilityOut:
    return await _out(session, await _visible(session, principal, facility_id))


@router.get(
    "/{facility_id}/versions",
    response_model=list[TermsOut],
    summary="Every version of the terms, oldest first",
    responses=problem_responses(401, 403, 404, 422),
)
async def facility_versions(facility_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> list[TermsOut]:
    facility = await _visible(session, principal, facility_id)
    rows = await session.scalars(
        select(FacilityTerms).where(FacilityTerms.facility_id == facility.id).order_by(FacilityTerms.version)
    )
    return [_terms_out(t) for t in rows.all()]
