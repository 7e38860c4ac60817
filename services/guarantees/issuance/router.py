"""Guarantees: what was issued (or refused) on which loan, with its exposure today; staff may issue again a
guarantee refused at the loan's opening, once there is room — a breach is a 409 naming the limit and the figures.
Staff and funders see all; a lender key its own (another's: 404)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from services.guarantees.issuance.events import announce_issued, assess
from services.guarantees.issuance.models import Guarantee
from services.guarantees.limits import new_exposure
from shared.auth import STAFF_ROLES, CurrentPrincipal, Principal, Role, require_roles
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.money import Money
from shared.peers import InternalClient
from shared.problems import Conflict, Forbidden, NotFound, problem_responses

router = APIRouter(prefix="/api/v1/guarantees/guarantees", tags=["guarantees"], route_class=IdempotentRoute)


class GuaranteeOut(BaseModel):
    id: uuid.UUID
    loan_id: uuid.UUID
    lender_id: uuid.UUID
    business_id: uuid.UUID
    country: str
    status: str = Field(
        description="active | released | refused (with `refusal`) | called | paid | expired | cancelled"
    )
    refusal: str | None
    coverage_pct: Decimal
    cap: Money
    principal: Money = Field(description="the loan's approved principal, in its currency")
    outstanding_principal: Money = Field(description="the loan's, as the portfolio last announced it")
    exposure_cad: Money | None = Field(
        description="min(coverage × outstanding × today's rate, cap); zero once released or paid; null if refused"
    )
    facility_id: uuid.UUID
    facility_version: int
    issued_on: date


async def _exposure(fx: InternalClient, g: Guarantee, on: date) -> Money | None:
    if g.status == "refused":
        return None
    if g.status not in ("active", "called"):
        return Money.of(Decimal(0), "CAD")  # released, paid, expired, cancelled: nothing exposed any more
    equivalent = await fx.cad_equivalent(Decimal(1), g.currency, on)
    if equivalent is None:
        return None
    return Money.of(new_exposure(g.outstanding_principal * equivalent.rate, g.coverage_pct, g.cap_cad), "CAD")


async def _out(request: Request, g: Guarantee) -> GuaranteeOut:
    return GuaranteeOut(
        id=g.id,
        loan_id=g.loan_id,
        lender_id=g.lender_id,
        business_id=g.business_id,
        country=g.country,
        status=g.status,
        refusal=g.refusal,
        coverage_pct=g.coverage_pct,
        cap=Money.of(g.cap_cad, "CAD"),
        principal=Money.of(g.principal, g.currency),
        outstanding_principal=Money.of(g.outstanding_principal, g.currency),
        exposure_cad=await _exposure(request.app.state.peers, g, datetime.now(UTC).date()),
        facility_id=g.facility_id,
        facility_version=g.facility_version,
        issued_on=g.issued_on,
    )


@router.get(
    "",
    response_model=list[GuaranteeOut],
    summary="Guarantees, newest first",
    responses=problem_responses(401, 403, 422),
)
async def list_guarantees(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    status: Annotated[
        Literal["active", "released", "refused", "called", "paid", "expired", "cancelled"] | None, Query()
    ] = None,
    loan_id: uuid.UUID | None = None,
    lender_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[GuaranteeOut]:
    query = select(Guarantee).order_by(Guarantee.issued_at.desc(), Guarantee.id).limit(limit)
    if loan_id is not None:
        query = query.where(Guarantee.loan_id == loan_id)
    if lender_id is not None:
        query = query.where(Guarantee.lender_id == lender_id)
    if principal.role == Role.lender:
        query = query.where(Guarantee.lender_id == principal.organization_id)
    elif principal.role not in (*STAFF_ROLES, Role.funder):
        raise Forbidden(f"role {principal.role.value!r} has no access to guarantees")
    if status is not None:
        query = query.where(Guarantee.status == status)
    return [await _out(request, g) for g in (await session.scalars(query)).all()]


async def _visible(session: SessionDep, principal: Principal, guarantee_id: uuid.UUID) -> Guarantee:
    g = await session.get(Guarantee, guarantee_id)
    if g is None or (principal.role == Role.lender and g.lender_id != principal.organization_id):
        raise NotFound(f"no guarantee {guarantee_id}")
    if principal.role not in (*STAFF_ROLES, Role.funder, Role.lender):
        raise Forbidden(f"role {principal.role.value!r} has no access to guarantees")
    return g


@router.get(
    "/{guarantee_id}",
    response_model=GuaranteeOut,
    summary="One guarantee",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_guarantee(
    guarantee_id: uuid.UUID, request: Request, session: SessionDep, principal: CurrentPrincipal
) -> GuaranteeOut:
    return await _out(request, await _visible(session, principal, guarantee_id))


@router.post(
    "/{guarantee_id}/issue",
    response_model=GuaranteeOut,
    summary="Issue a guarantee refused at the loan's opening, now that there may be room (admin, fund manager)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def issue_again(
    guarantee_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: Principal = require_roles(Role.admin, Role.fund_manager),
) -> GuaranteeOut:
    g = await session.get(Guarantee, guarantee_id, with_for_update=True)
    if g is None:
        raise NotFound(f"no guarantee {guarantee_id}")
    if g.status != "refused":
        raise Conflict(f"the guarantee is {g.status}: only a refused one is issued again", slug="not-refused")
    today = datetime.now(UTC).date()
    verdict = await assess(
        session,
        request.app.state.peers,
        on=today,
        lender_id=g.lender_id,
        business_id=g.business_id,
        country=g.country,
        principal=g.principal,
        currency=g.currency,
        coverage=g.coverage_pct or None,
    )
    if verdict.refusal is not None:
        first = verdict.found[0] if verdict.found else None
        raise Conflict(
            verdict.refusal,
            slug=f"limit-{first.limit.replace('_', '-')}" if first else "no-room",
            limit=first.limit if first else None,
            current=format(first.current, "f") if first else None,
            maximum=format(first.maximum, "f") if first else None,
            breaches=[
                {"limit": b.limit, "current": format(b.current, "f"), "maximum": format(b.maximum, "f")}
                for b in verdict.found
            ],
        )
    assert verdict.facility is not None and verdict.terms is not None and verdict.coverage is not None
    g.status, g.refusal = "active", None
    g.facility_id, g.facility_version = verdict.facility.id, verdict.terms.version
    g.coverage_pct, g.cap_cad, g.issued_on = verdict.coverage, verdict.terms.max_cover_per_loan_cad, today
    g.exposure_cad_at_issue = verdict.added
    await session.flush()
    await announce_issued(session, g, verdict)
    return await _out(request, g)
