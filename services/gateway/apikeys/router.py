import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.gateway.apikeys import service
from services.gateway.apikeys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from services.gateway.auth import require_gateway_roles
from shared.auth import Principal, Role
from shared.db import SessionDep, TransactionalRoute, on_commit
from shared.problems import problem_responses

# Transactional but deliberately not idempotent-by-key: a stored replay would keep the plaintext key on disk.
router = APIRouter(prefix="/api/v1/admin/api-keys", tags=["admin: API keys"], route_class=TransactionalRoute)
AdminPrincipal = Annotated[Principal, Depends(require_gateway_roles(Role.admin))]


@router.post(
    "",
    status_code=201,
    response_model=ApiKeyCreated,
    summary="Create an API key (its plaintext is returned once)",
    responses=problem_responses(401, 403, 422, 429),
)
async def create_api_key(spec: ApiKeyCreate, session: SessionDep, admin: AdminPrincipal) -> ApiKeyCreated:
    row, plaintext = await service.create_key(session, spec=spec, created_by=admin.key_id)
    return ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(row).model_dump(), "key": plaintext})


@router.get(
    "",
    response_model=list[ApiKeyOut],
    summary="List API keys (never their secrets)",
    responses=problem_responses(401, 403, 422, 429),
)
async def list_api_keys(
    session: SessionDep,
    admin: AdminPrincipal,
    include_revoked: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[ApiKeyOut]:
    rows = await service.list_keys(session, include_revoked=include_revoked, limit=limit, offset=offset)
    return [ApiKeyOut.model_validate(r) for r in rows]


@router.delete(
    "/{key_id}",
    response_model=ApiKeyOut,
    summary="Revoke an API key (it is refused from then on)",
    responses=problem_responses(401, 403, 404, 422, 429),
)
async def revoke_api_key(key_id: uuid.UUID, request: Request, session: SessionDep, admin: AdminPrincipal) -> ApiKeyOut:
    row = await service.revoke_key(session, key_id=key_id)
    on_commit(request, lambda: request.app.state.keystore.evict(key_id))  # not before: a request could re-cache it
    return ApiKeyOut.model_validate(row)
