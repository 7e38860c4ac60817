from typing import Annotated

from fastapi import APIRouter, Path

from services.applications.access import Reader
from services.applications.policy import service
from services.applications.policy.schemas import PolicyOut, PolicyPublish
from shared.auth import CurrentPrincipal, Role, require_roles
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.problems import problem_responses

router = APIRouter(prefix="/api/v1/applications/policy", tags=["origination policy"], route_class=IdempotentRoute)


@router.get("", response_model=PolicyOut, summary="The policy in force", responses=problem_responses(401, 403))
async def current_policy(session: SessionDep, _: Reader) -> PolicyOut:
    return PolicyOut.model_validate(await service.current_policy(session))


@router.get(
    "/versions",
    response_model=list[PolicyOut],
    summary="Every published version",
    responses=problem_responses(401, 403),
)
async def list_policies(session: SessionDep, _: Reader) -> list[PolicyOut]:
    return [PolicyOut.model_validate(p) for p in await service.list_policies(session)]


@router.get(
    "/versions/{version}",
    response_model=PolicyOut,
    summary="One published version",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_policy(version: Annotated[int, Path(ge=1, le=2**31 - 1)], session: SessionDep, _: Reader) -> PolicyOut:
    return PolicyOut.model_validate(await service.get_policy(session, version))


@router.post(
    "",
    status_code=201,
    response_model=PolicyOut,
    summary="Publish a new policy version (admin); it applies to every decision taken from now on",
    dependencies=[require_roles(Role.admin)],
    responses=problem_responses(401, 403, 422),
)
async def publish_policy(spec: PolicyPublish, session: SessionDep, principal: CurrentPrincipal) -> PolicyOut:
    policy = await service.publish_policy(session, changes=spec.rules, note=spec.note, actor=principal.key_id)
    return PolicyOut.model_validate(policy)
