import uuid

from fastapi import APIRouter, Request

from services.portfolio.lenders import service
from services.portfolio.lenders.schemas import (
    LenderCreate,
    LenderCreated,
    LenderOut,
    LenderUpdate,
    SecretCreated,
    SecretOut,
)
from services.portfolio.lenders.service import forget_secrets
from shared.auth import CurrentPrincipal, Role, require_roles
from shared.db import SessionDep, on_commit
from shared.idempotency import IdempotentRoute
from shared.problems import Forbidden, NotFound, problem_responses

router = APIRouter(prefix="/api/v1/portfolio/lenders", tags=["lenders"], route_class=IdempotentRoute)
STAFF = (Role.admin, Role.analyst, Role.committee, Role.fund_manager)


def _forget_at_commit(request: Request, lender_id: uuid.UUID) -> None:
    """This process's cache of signing secrets forgets the lender once the change is committed (forgetting it
    before could let a push in between cache the old secrets again)."""
    on_commit(request, lambda: forget_secrets(lender_id))


@router.post(
    "",
    status_code=201,
    response_model=LenderCreated,
    summary="Register a lender (admin); its first webhook secret is returned once",
    dependencies=[require_roles(Role.admin)],
    responses=problem_responses(401, 403, 409, 422),
)
async def create_lender(spec: LenderCreate, session: SessionDep) -> LenderCreated:
    lender, secret = await service.create_lender(session, spec=spec)
    return LenderCreated(
        **LenderOut.model_validate(lender).model_dump(),
        webhook_secret=SecretCreated(id=secret.id, created_at=secret.created_at, retired_at=None, secret=secret.secret),
    )


@router.get(
    "",
    response_model=list[LenderOut],
    summary="List lenders (staff)",
    dependencies=[require_roles(*STAFF)],
    responses=problem_responses(401, 403),
)
async def list_lenders(session: SessionDep) -> list[LenderOut]:
    return [LenderOut.model_validate(x) for x in await service.list_lenders(session)]


@router.get(
    "/{lender_id}",
    response_model=LenderOut,
    summary="One lender (a lender key sees only itself)",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_lender(lender_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> LenderOut:
    if principal.role not in (*STAFF, Role.lender):
        raise Forbidden(f"role {principal.role.value!r} has no access to lenders")
    if principal.role == Role.lender and principal.organization_id != lender_id:
        raise NotFound(f"no lender {lender_id}")  # another lender does not exist for you
    return LenderOut.model_validate(await service.get_lender(session, lender_id))


@router.patch(
    "/{lender_id}",
    response_model=LenderOut,
    summary="Rename, (de)activate a lender or change its currencies (admin)",
    dependencies=[require_roles(Role.admin)],
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def update_lender(lender_id: uuid.UUID, spec: LenderUpdate, session: SessionDep, request: Request) -> LenderOut:
    _forget_at_commit(request, lender_id)
    lender = await service.get_lender(session, lender_id)
    return LenderOut.model_validate(await service.update_lender(session, lender=lender, spec=spec))


@router.get(
    "/{lender_id}/webhook-secrets",
    response_model=list[SecretOut],
    summary="The lender's valid webhook secrets (never their value)",
    dependencies=[require_roles(Role.admin)],
    responses=problem_responses(401, 403, 404, 422),
)
async def list_secrets(lender_id: uuid.UUID, session: SessionDep) -> list[SecretOut]:
    await service.get_lender(session, lender_id)
    return [SecretOut.model_validate(s) for s in await service.valid_secrets(session, lender_id)]


@router.post(
    "/{lender_id}/webhook-secrets",
    status_code=201,
    response_model=SecretCreated,
    summary="Rotate: a new secret (shown once); the previous one stays valid until retired",
    dependencies=[require_roles(Role.admin)],
    responses=problem_responses(401, 403, 404, 422),
)
async def rotate_secret(lender_id: uuid.UUID, session: SessionDep, request: Request) -> SecretCreated:
    _forget_at_commit(request, lender_id)
    lender = await service.get_lender(session, lender_id)
    secret = await service.rotate_secret(session, lender=lender)
    return SecretCreated(id=secret.id, created_at=secret.created_at, retired_at=None, secret=secret.secret)


@router.delete(
    "/{lender_id}/webhook-secrets/{secret_id}",
    response_model=SecretOut,
    summary="Retire a secret once the lender signs with the new one",
    dependencies=[require_roles(Role.admin)],
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def retire_secret(lender_id: uuid.UUID, secret_id: uuid.UUID, session: SessionDep, request: Request) -> SecretOut:
    _forget_at_commit(request, lender_id)
    lender = await service.get_lender(session, lender_id)
    return SecretOut.model_validate(await service.retire_secret(session, lender=lender, secret_id=secret_id))
