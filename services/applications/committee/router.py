import uuid

from fastapi import APIRouter

from services.applications.access import Reader, ica_scope
from services.applications.committee import service
from services.applications.committee.models import Scorecard
from services.applications.committee.schemas import (
    ConflictIn,
    ConflictOut,
    ScorecardIn,
    ScorecardOut,
    VoteIn,
    VoteOut,
    VoteOutcome,
)
from services.applications.partners.service import get_business
from services.applications.pipeline import service as pipeline
from services.applications.pipeline.schemas import Comment
from services.applications.policy.schemas import PolicyRules
from services.applications.policy.service import get_policy
from shared.auth import Principal, Role, require_roles
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.problems import NotFound, problem_responses

router = APIRouter(prefix="/api/v1/applications", tags=["scorecard and committee"], route_class=IdempotentRoute)
STAFF = (Role.admin, Role.analyst, Role.committee, Role.fund_manager)
# checked before the body is read: a caller of another role is refused whatever it sends
ANALYST = require_roles(Role.analyst)
COMMITTEE = require_roles(Role.committee)


async def _card_out(session: SessionDep, card: Scorecard) -> ScorecardOut:
    minimum = PolicyRules.model_validate((await get_policy(session, card.policy_version)).rules).minimum_score
    out = ScorecardOut.model_validate(card)
    out.minimum_score = minimum
    out.sufficient = card.score >= minimum
    return out


@router.post(
    "/applications/{application_id}/scorecard",
    status_code=201,
    response_model=ScorecardOut,
    summary="Score an application under review (analyst); the weighted 0-100 score decides if it may go to committee",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def score(
    application_id: uuid.UUID, spec: ScorecardIn, session: SessionDep, principal: Principal = ANALYST
) -> ScorecardOut:
    application = await pipeline.get_application(session, application_id, scope=None, lock=True)
    card, _ = await service.record_scorecard(session, application=application, spec=spec, principal=principal)
    return await _card_out(session, card)


@router.get(
    "/applications/{application_id}/scorecard",
    response_model=ScorecardOut,
    summary="The latest scorecard (staff)",
    dependencies=[require_roles(*STAFF)],
    responses=problem_responses(401, 403, 404, 422),
)
async def latest_scorecard(application_id: uuid.UUID, session: SessionDep) -> ScorecardOut:
    card = await service.latest_scorecard(session, application_id)
    if card is None:
        raise NotFound(f"application {application_id} has no scorecard")
    return await _card_out(session, card)


@router.post(
    "/applications/{application_id}/send-to-committee",
    response_model=dict,
    summary="Send a scored application to committee (analyst); refused below the policy's minimum score",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def send_to_committee(
    application_id: uuid.UUID, body: Comment, session: SessionDep, principal: Reader
) -> dict[str, str]:
    application = await pipeline.get_application(session, application_id, scope=ica_scope(principal), lock=True)
    await service.send_to_committee(session, application=application, principal=principal, comment=body.comment)
    return {"id": str(application.id), "status": application.status}


@router.post(
    "/businesses/{business_id}/conflicts",
    status_code=201,
    response_model=ConflictOut,
    summary="Declare your conflict of interest with a business (committee member): you will not vote on it",
    responses=problem_responses(401, 403, 404, 422),
)
async def declare_conflict(
    business_id: uuid.UUID, spec: ConflictIn, session: SessionDep, principal: Principal = COMMITTEE
) -> ConflictOut:
    business = await get_business(session, business_id, scope=None)
    conflict = await service.declare_conflict(session, business=business, principal=principal, reason=spec.reason)
    return ConflictOut.model_validate(conflict)


@router.post(
    "/applications/{application_id}/votes",
    status_code=201,
    response_model=VoteOutcome,
    summary="Vote on an application in committee (committee member); quorum approves or rejects it",
    description="An approval carries the final terms; the application is approved when a quorum of approving "
    "votes carry the same terms, and rejected when a quorum rejects it. The reviewing analyst and members with "
    "a declared conflict of interest cannot vote (403).",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def cast_vote(
    application_id: uuid.UUID, spec: VoteIn, session: SessionDep, principal: Principal = COMMITTEE
) -> VoteOutcome:
    application = await pipeline.get_application(session, application_id, scope=None, lock=True)
    cast, approvals, rejections, quorum = await service.vote(
        session, application=application, spec=spec, principal=principal
    )
    return VoteOutcome(
        vote=VoteOut.model_validate(cast),
        application_status=application.status,
        approvals=approvals,
        rejections=rejections,
        quorum=quorum,
    )


@router.get(
    "/applications/{application_id}/votes",
    response_model=list[VoteOut],
    summary="The committee's votes (staff)",
    dependencies=[require_roles(*STAFF)],
    responses=problem_responses(401, 403, 404, 422),
)
async def list_votes(application_id: uuid.UUID, session: SessionDep) -> list[VoteOut]:
    await pipeline.get_application(session, application_id, scope=None)
    return [VoteOut.model_validate(v) for v in await service.votes_of(session, application_id)]
