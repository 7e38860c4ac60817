import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from services.applications.access import Reader, ica_scope
from services.applications.notifications import service
from services.applications.notifications.schemas import DeliveryOut, EndpointCreated, EndpointIn, EndpointOut
from shared.auth import Principal, Role
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.problems import Forbidden, problem_responses

router = APIRouter(
    prefix="/api/v1/applications/notifications", tags=["notifications to ICAs"], route_class=IdempotentRoute
)


def _owner_or_admin(principal: Principal) -> uuid.UUID | None:
    """The ICA whose endpoints and deliveries the caller may change (None: an admin, any ICA's)."""
    if principal.role == Role.admin:
        return None
    return _ica(principal)


def _ica(principal: Principal) -> uuid.UUID:
    if principal.role != Role.ica or principal.organization_id is None:
        raise Forbidden("callback endpoints are registered by an ICA for itself")
    return principal.organization_id


@router.post(
    "/endpoints",
    status_code=201,
    response_model=EndpointCreated,
    summary="Register an HTTPS callback URL for your applications' status changes (ICA); the secret is shown once",
    responses=problem_responses(401, 403, 422),
)
async def register_endpoint(
    spec: EndpointIn, request: Request, session: SessionDep, principal: Reader
) -> EndpointCreated:
    ica_id = _ica(principal)
    endpoint_id, secret = await service.register_endpoint(
        session, ica_id=ica_id, url=spec.url, allow_http=request.app.state.settings.webhooks_allow_http
    )
    row = next(r for r in await service.list_endpoints(session, ica_id=ica_id) if r.id == endpoint_id)
    return EndpointCreated(**row._asdict(), secret=secret)


@router.get(
    "/endpoints",
    response_model=list[EndpointOut],
    summary="Your callback endpoints (never their secrets); staff see all",
    responses=problem_responses(401, 403),
)
async def list_endpoints(session: SessionDep, principal: Reader) -> list[EndpointOut]:
    return [EndpointOut(**r._asdict()) for r in await service.list_endpoints(session, ica_id=ica_scope(principal))]


@router.delete(
    "/endpoints/{endpoint_id}",
    response_model=EndpointOut,
    summary="Stop notifying an endpoint (its pending deliveries wait until it is active again)",
    responses=problem_responses(401, 403, 404, 422),
)
async def deactivate_endpoint(endpoint_id: uuid.UUID, session: SessionDep, principal: Reader) -> EndpointOut:
    row = await service.deactivate_endpoint(session, endpoint_id=endpoint_id, ica_id=_owner_or_admin(principal))
    return EndpointOut(**row._asdict())


@router.get(
    "/deliveries",
    response_model=list[DeliveryOut],
    summary="Notifications sent to you, newest first, with every delivery attempt",
    responses=problem_responses(401, 403, 422),
)
async def list_deliveries(
    session: SessionDep,
    principal: Reader,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[DeliveryOut]:
    rows = await service.list_deliveries(session, ica_id=ica_scope(principal), status=status, limit=limit)
    return [DeliveryOut.model_validate(r) for r in rows]


@router.get(
    "/deliveries/{delivery_id}",
    response_model=DeliveryOut,
    summary="One notification with its attempts",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_delivery(delivery_id: uuid.UUID, session: SessionDep, principal: Reader) -> DeliveryOut:
    return DeliveryOut.model_validate(
        await service.get_delivery(session, delivery_id=delivery_id, ica_id=ica_scope(principal))
    )


@router.post(
    "/deliveries/{delivery_id}/resend",
    response_model=DeliveryOut,
    summary="Send a notification again now (a failed one gets one more attempt)",
    responses=problem_responses(401, 403, 404, 422),
)
async def resend_delivery(delivery_id: uuid.UUID, session: SessionDep, principal: Reader) -> DeliveryOut:
    return DeliveryOut.model_validate(
        await service.resend_delivery(session, delivery_id=delivery_id, ica_id=_owner_or_admin(principal))
    )
