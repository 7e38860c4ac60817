import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.applications.access import Reader, ica_scope
from services.applications.pipeline import service
from services.applications.pipeline.lifecycle import Status, allowed_actions
from services.applications.pipeline.models import Application
from services.applications.pipeline.schemas import (
    ApplicationCreate,
    ApplicationOut,
    ApplicationUpdate,
    Comment,
    RequiredComment,
    ScreeningOut,
    TransitionOut,
)
from shared.auth import Principal, Role
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.money import Money
from shared.pagination import Moment, Page
from shared.problems import Forbidden, problem_responses

router = APIRouter(
    prefix="/api/v1/applications/applications", tags=["financing applications"], route_class=IdempotentRoute
)


async def _out(session: AsyncSession, application: Application, principal: Principal) -> ApplicationOut:
    screening = await service.latest_screening(session, application.id)
    return ApplicationOut(
        id=application.id,
        ica_id=application.ica_id,
        business_id=application.business_id,
        status=application.status,
        requested=Money.of(application.amount, application.currency),
        term_months=application.term_months,
        purpose=application.purpose,
        instruments=application.instruments,
        lender_id=application.lender_id,
        lender_share_pct=application.lender_share_pct,
        support_plan=application.support_plan,
        created_at=application.created_at,
        updated_at=application.updated_at,
        submitted_at=application.submitted_at,
        decided_at=application.decided_at,
        allowed_actions=allowed_actions(Status(application.status), principal.role),
        screening=ScreeningOut.model_validate(screening) if screening is not None else None,
    )


@router.post(
    "",
    status_code=201,
    response_model=ApplicationOut,
    summary="Start a draft application for one of your partner businesses (ICA)",
    responses=problem_responses(401, 403, 404, 422),
)
async def create_application(spec: ApplicationCreate, session: SessionDep, principal: Reader) -> ApplicationOut:
    if principal.role != Role.ica:
        raise Forbidden("applications are submitted by ICAs for their partners")
    application = await service.create_draft(session, spec=spec, principal=principal)
    return await _out(session, application, principal)


@router.get(
    "",
    response_model=Page[ApplicationOut],
    summary="List applications (an ICA sees its own), newest first",
    responses=problem_responses(401, 403, 422),
)
async def list_applications(
    session: SessionDep,
    principal: Reader,
    status: Status | None = None,
    ica_id: uuid.UUID | None = None,
    business_id: uuid.UUID | None = None,
    lender_id: uuid.UUID | None = None,
    country: Annotated[str | None, Query(min_length=2, max_length=2, description="the business's country")] = None,
    created_from: Moment | None = None,
    created_to: Moment | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[ApplicationOut]:
    rows, next_cursor = await service.list_applications(
        session,
        scope=ica_scope(principal),
        status=status.value if status else None,
        ica_id=ica_id,
        business_id=business_id,
        lender_id=lender_id,
        country=country,
        created_from=created_from,
        created_to=created_to,
        cursor=cursor,
        limit=limit,
    )
    return Page[ApplicationOut](items=[await _out(session, a, principal) for a in rows], next_cursor=next_cursor)


@router.get(
    "/{application_id}",
    response_model=ApplicationOut,
    summary="One application, with its latest screening and what you may do next",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_application(application_id: uuid.UUID, session: SessionDep, principal: Reader) -> ApplicationOut:
    application = await service.get_application(session, application_id, scope=ica_scope(principal))
    return await _out(session, application, principal)


@router.patch(
    "/{application_id}",
    response_model=ApplicationOut,
    summary="Edit a draft or a returned application (ICA)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def update_application(
    application_id: uuid.UUID, spec: ApplicationUpdate, session: SessionDep, principal: Reader
) -> ApplicationOut:
    if principal.role != Role.ica:
        raise Forbidden("only the ICA edits its application")
    application = await service.get_application(session, application_id, scope=ica_scope(principal), lock=True)
    application = await service.update_draft(session, application=application, spec=spec)
    return await _out(session, application, principal)


@router.post(
    "/{application_id}/submit",
    response_model=ApplicationOut,
    summary="Submit (or re-submit) an application: it is screened at once against the policy in force",
    description="Ends `under_review` when every criterion passes, else `rejected` listing each failed criterion. "
    "503 (nothing changed) when a service screening needs (FX rates, guarantee room) cannot answer.",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def submit_application(
    application_id: uuid.UUID, request: Request, session: SessionDep, principal: Reader
) -> ApplicationOut:
    application = await service.get_application(session, application_id, scope=ica_scope(principal), lock=True)
    await service.submit(session, application=application, principal=principal, peers=request.app.state.peers)
    return await _out(session, application, principal)


@router.post(
    "/{application_id}/withdraw",
    response_model=ApplicationOut,
    summary="Withdraw an application before a decision (ICA)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def withdraw_application(
    application_id: uuid.UUID, body: Comment, session: SessionDep, principal: Reader
) -> ApplicationOut:
    application = await service.get_application(session, application_id, scope=ica_scope(principal), lock=True)
    await service.withdraw(session, application=application, principal=principal, comment=body.comment)
    return await _out(session, application, principal)


@router.post(
    "/{application_id}/return",
    response_model=ApplicationOut,
    summary="Return an application to its ICA for more information (analyst; a comment is required)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def return_application(
    application_id: uuid.UUID, body: RequiredComment, session: SessionDep, principal: Reader
) -> ApplicationOut:
    application = await service.get_application(session, application_id, scope=ica_scope(principal), lock=True)
    await service.return_to_ica(session, application=application, principal=principal, comment=body.comment)
    return await _out(session, application, principal)


@router.get(
    "/{application_id}/transitions",
    response_model=list[TransitionOut],
    summary="Every status change: who, when, from, to, why",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_transitions(application_id: uuid.UUID, session: SessionDep, principal: Reader) -> list[TransitionOut]:
    application = await service.get_application(session, application_id, scope=ica_scope(principal))
    moves = [TransitionOut.model_validate(t) for t in await service.transitions(session, application.id)]
    if principal.role == Role.ica:  # the fund's staff act as roles to an ICA, not as identifiable keys
        for move in moves:
            if move.actor_role != Role.ica.value:
                move.actor_key_id = None
    return moves


@router.get(
    "/{application_id}/screenings",
    response_model=list[ScreeningOut],
    summary="Every screening run, with the policy version it used",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_screenings(application_id: uuid.UUID, session: SessionDep, principal: Reader) -> list[ScreeningOut]:
    application = await service.get_application(session, application_id, scope=ica_scope(principal))
    return [ScreeningOut.model_validate(s) for s in await service.screenings(session, application.id)]
