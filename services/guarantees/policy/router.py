"""The guarantee policy: defaults and bounds of facilities, and the fund's limits (DOMAIN.md, Guarantees)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.guarantees.policy.models import GuaranteePolicy
from shared.auth import STAFF_ROLES, Principal, Role, require_roles
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.problems import problem_responses

router = APIRouter(prefix="/api/v1/guarantees/policy", tags=["guarantee policy"], route_class=IdempotentRoute)
Pct = Annotated[Decimal, Field(gt=0, le=100, decimal_places=2)]


class PolicyIn(BaseModel):
    coverage_default_pct: Pct
    coverage_min_pct: Pct
    coverage_max_pct: Pct
    fee_rate_default_pct: Annotated[Decimal, Field(ge=0, le=20, decimal_places=3)]
    claim_trigger_dpd_default: int = Field(ge=1, le=3650)
    claim_deadline_months_default: int = Field(ge=1, le=120)
    leverage_max: Annotated[Decimal, Field(gt=0, le=50, decimal_places=2)]
    per_lender_max_pct: Pct
    per_country_max_pct: Pct
    per_borrower_max_pct: Pct
    comment: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000)]

    @model_validator(mode="after")
    def _bounds(self) -> PolicyIn:
        if not self.coverage_min_pct <= self.coverage_default_pct <= self.coverage_max_pct:
            raise ValueError("coverage: the default must lie between the minimum and the maximum")
        return self


class PolicyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    coverage_default_pct: Decimal
    coverage_min_pct: Decimal
    coverage_max_pct: Decimal
    fee_rate_default_pct: Decimal
    claim_trigger_dpd_default: int
    claim_deadline_months_default: int
    leverage_max: Decimal
    per_lender_max_pct: Decimal
    per_country_max_pct: Decimal
    per_borrower_max_pct: Decimal
    comment: str | None
    created_at: datetime


async def current_policy(session: AsyncSession) -> GuaranteePolicy:
    policy = await session.scalar(select(GuaranteePolicy).order_by(GuaranteePolicy.version.desc()).limit(1))
    assert policy is not None, "migration 0003 seeds the first policy version"
    return policy


@router.get(
    "",
    response_model=PolicyOut,
    summary="The guarantee policy in force",
    responses=problem_responses(401, 403),
    dependencies=[require_roles(*STAFF_ROLES, Role.funder)],
)
async def get_policy(session: SessionDep) -> PolicyOut:
    return PolicyOut.model_validate(await current_policy(session))


@router.get(
    "/versions",
    response_model=list[PolicyOut],
    summary="Every version, oldest first",
    responses=problem_responses(401, 403),
    dependencies=[require_roles(*STAFF_ROLES, Role.funder)],
)
async def policy_versions(session: SessionDep) -> list[PolicyOut]:
    rows = await session.scalars(select(GuaranteePolicy).order_by(GuaranteePolicy.version))
    return [PolicyOut.model_validate(p) for p in rows.all()]


@router.put(
    "",
    response_model=PolicyOut,
    summary="Publish a new version (admin); it applies to every decision taken from now on",
    responses=problem_responses(401, 403, 422),
)
async def put_policy(
    body: PolicyIn, session: SessionDep, principal: Principal = require_roles(Role.admin)
) -> PolicyOut:
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('guarantees.policy'))"))
    current = await current_policy(session)
    policy = GuaranteePolicy(
        version=current.version + 1,
        **body.model_dump(exclude={"comment"}),
        comment=body.comment,
        created_by=principal.key_id,
    )
    session.add(policy)
    await session.flush()
    await session.refresh(policy)
    return PolicyOut.model_validate(policy)
