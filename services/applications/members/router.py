import uuid

from fastapi import APIRouter

from services.applications.access import Reader, ensure_visible
from services.applications.members import service
from services.applications.members.schemas import IcaCreate, IcaOut, IcaUpdate
from shared.auth import Role, require_roles
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.problems import problem_responses

router = APIRouter(prefix="/api/v1/applications/icas", tags=["members (ICAs)"], route_class=IdempotentRoute)


@router.post(
    "",
    status_code=201,
    response_model=IcaOut,
    summary="Register an ICA as a member of the fund (admin)",
    dependencies=[require_roles(Role.admin)],
    responses=problem_responses(401, 403, 409, 422),
)
async def create_ica(spec: IcaCreate, session: SessionDep) -> IcaOut:
    return IcaOut.model_validate(await service.create_ica(session, spec=spec))


@router.get(
    "",
    response_model=list[IcaOut],
    summary="List member ICAs (staff)",
    dependencies=[require_roles(Role.admin, Role.analyst, Role.committee, Role.fund_manager)],
    responses=problem_responses(401, 403),
)
async def list_icas(session: SessionDep, active: bool | None = None) -> list[IcaOut]:
    return [IcaOut.model_validate(i) for i in await service.list_icas(session, active=active)]


@router.get(
    "/{ica_id}",
    response_model=IcaOut,
    summary="One ICA (an ICA key sees only itself)",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_ica(ica_id: uuid.UUID, session: SessionDep, principal: Reader) -> IcaOut:
    ensure_visible(principal, ica_id, f"ICA {ica_id}")
    return IcaOut.model_validate(await service.get_ica(session, ica_id))


@router.patch(
    "/{ica_id}",
    response_model=IcaOut,
    summary="Rename, (de)activate an ICA (admin)",
    dependencies=[require_roles(Role.admin)],
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def update_ica(ica_id: uuid.UUID, spec: IcaUpdate, session: SessionDep) -> IcaOut:
    return IcaOut.model_validate(await service.update_ica(session, ica_id=ica_id, spec=spec))
