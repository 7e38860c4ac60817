import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from services.applications.access import Reader, ica_scope
from services.applications.partners import service
from services.applications.partners.models import Business, BusinessProfile
from services.applications.partners.schemas import (
    BusinessCreate,
    BusinessOut,
    BusinessUpdate,
    LegalForm,
    ProfileFacts,
    ProfileOut,
)
from shared.auth import Principal, Role
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.pagination import Page
from shared.problems import Forbidden, UnprocessableContent, problem_responses

router = APIRouter(prefix="/api/v1/applications/businesses", tags=["partner businesses"], route_class=IdempotentRoute)
WRITERS = frozenset({Role.admin, Role.analyst, Role.ica})


def _writer(principal: Principal) -> None:
    if principal.role not in WRITERS:
        raise Forbidden(f"role {principal.role.value!r} may not register or change partner businesses")


def _out(business: Business, profile: BusinessProfile | None) -> BusinessOut:
    out = BusinessOut.model_validate(business)
    out.profile = ProfileOut.model_validate(profile) if profile is not None else None
    return out


@router.post(
    "",
    status_code=201,
    response_model=BusinessOut,
    summary="Register a partner business with its facts (an ICA for itself; staff for a given ICA)",
    responses=problem_responses(401, 403, 409, 422),
)
async def register_business(spec: BusinessCreate, session: SessionDep, principal: Reader) -> BusinessOut:
    _writer(principal)
    if principal.role == Role.ica:
        if spec.ica_id is not None and spec.ica_id != principal.organization_id:
            raise Forbidden("an ICA registers its own partners only")
        assert principal.organization_id is not None
        ica_id = principal.organization_id
    else:
        if spec.ica_id is None:
            raise UnprocessableContent(
                "staff must say which ICA the business is a partner of",
                errors=[{"pointer": "#/ica_id", "detail": "required for staff"}],
            )
        ica_id = spec.ica_id
    business, profile = await service.register_business(session, spec=spec, ica_id=ica_id, actor=principal.key_id)
    return _out(business, profile)


@router.get(
    "",
    response_model=Page[BusinessOut],
    summary="List partner businesses (an ICA sees its own)",
    responses=problem_responses(401, 403, 422),
)
async def list_businesses(
    session: SessionDep,
    principal: Reader,
    ica_id: uuid.UUID | None = None,
    country: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    legal_form: LegalForm | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[BusinessOut]:
    rows, next_cursor = await service.list_businesses(
        session,
        scope=ica_scope(principal),
        ica_id=ica_id,
        country=country,
        legal_form=legal_form.value if legal_form else None,
        cursor=cursor,
        limit=limit,
    )
    items = [_out(b, await service.profile_as_of(session, b.id, None)) for b in rows]
    return Page[BusinessOut](items=items, next_cursor=next_cursor)


@router.get(
    "/{business_id}",
    response_model=BusinessOut,
    summary="One partner business, with its facts as of a date (default: the latest)",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_business(
    business_id: uuid.UUID, session: SessionDep, principal: Reader, as_of: date | None = None
) -> BusinessOut:
    business = await service.get_business(session, business_id, scope=ica_scope(principal))
    return _out(business, await service.profile_as_of(session, business.id, as_of))


@router.patch(
    "/{business_id}",
    response_model=BusinessOut,
    summary="Correct a business's name, legal form or sector",
    responses=problem_responses(401, 403, 404, 422),
)
async def update_business(
    business_id: uuid.UUID, spec: BusinessUpdate, session: SessionDep, principal: Reader
) -> BusinessOut:
    _writer(principal)
    business = await service.get_business(session, business_id, scope=ica_scope(principal))
    business = await service.update_business(session, business=business, spec=spec, actor=principal.key_id)
    return _out(business, await service.profile_as_of(session, business.id, None))


@router.post(
    "/{business_id}/facts",
    status_code=201,
    response_model=ProfileOut,
    summary="Report the business's facts as of a date (history is kept; nothing is overwritten)",
    responses=problem_responses(401, 403, 404, 422),
)
async def report_facts(
    business_id: uuid.UUID, facts: ProfileFacts, session: SessionDep, principal: Reader
) -> ProfileOut:
    _writer(principal)
    business = await service.get_business(session, business_id, scope=ica_scope(principal))
    profile = await service.report_facts(session, business=business, facts=facts, actor=principal.key_id)
    return ProfileOut.model_validate(profile)


@router.get(
    "/{business_id}/facts",
    response_model=list[ProfileOut],
    summary="Every report of the business's facts, oldest first",
    responses=problem_responses(401, 403, 404, 422),
)
async def facts_history(business_id: uuid.UUID, session: SessionDep, principal: Reader) -> list[ProfileOut]:
    business = await service.get_business(session, business_id, scope=ica_scope(principal))
    return [ProfileOut.model_validate(p) for p in await service.profile_history(session, business.id)]
