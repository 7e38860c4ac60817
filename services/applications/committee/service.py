"""Scorecard, committee votes and conflicts of interest. No commit here."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.applications.committee.models import Approval, ConflictOfInterest, Scorecard, Vote
from services.applications.committee.schemas import Decision, FinalTerms, ScorecardIn, VoteIn
from services.applications.partners.models import Business
from services.applications.partners.service import profile_as_of, snapshot
from services.applications.pipeline import service as pipeline
from services.applications.pipeline.lifecycle import Action, Status, target_of
from services.applications.pipeline.models import Application, Transition
from services.applications.policy.schemas import PolicyRules
from services.applications.policy.service import current_policy
from shared.auth import Principal
from shared.contracts.applications import ApplicationApprovedV1, ApplicationRejectedV1, ApplicationSentToCommitteeV1
from shared.problems import Conflict, Forbidden, UnprocessableContent


def weighted_score(scores: dict[str, int], weights: dict[str, int]) -> Decimal:
    """0-100: each dimension's 0-4 score as a share of its weight."""
    total = sum((Decimal(scores[d]) / 4 * weights[d] for d in weights), Decimal(0))
    return total.quantize(Decimal("0.01"))


async def record_scorecard(
    session: AsyncSession, *, application: Application, spec: ScorecardIn, principal: Principal
) -> tuple[Scorecard, int]:
    if application.status != Status.under_review.value:
        raise Conflict(
            f"an application is scored while under review, not {application.status}",
            slug="transition-not-allowed",
            current_status=application.status,
        )
    policy = await current_policy(session)
    rules = PolicyRules.model_validate(policy.rules)
    weights = rules.scorecard_weights.model_dump()
    scores = spec.scores.model_dump()
    card = Scorecard(
        application_id=application.id,
        reviewer=principal.actor,
        reviewer_key_id=principal.key_id,
        policy_version=policy.version,
        scores=scores,
        weights=weights,
        score=weighted_score(scores, weights),
        comment=spec.comment,
        # the same clock as the transitions' `at`, which decides which review round the scorecard belongs to
        created_at=datetime.now(UTC),
    )
    session.add(card)
    await session.flush()
    return card, rules.minimum_score


async def latest_scorecard(session: AsyncSession, application_id: uuid.UUID) -> Scorecard | None:
    """The scorecard of the current review round: one made before the application was last (re)submitted
    scored other facts and terms, so it does not count."""
    round_started = (
        select(func.max(Transition.at))
        .where(Transition.application_id == application_id, Transition.to_status == Status.under_review.value)
        .scalar_subquery()
    )
    return await session.scalar(
        select(Scorecard)
        .where(Scorecard.application_id == application_id, Scorecard.created_at >= round_started)
        .order_by(Scorecard.id.desc())
        .limit(1)
    )


async def send_to_committee(
    session: AsyncSession, *, application: Application, principal: Principal, comment: str | None
) -> None:
    target = target_of(Action.send_to_committee, Status(application.status), principal)
    card = await latest_scorecard(session, application.id)
    rules = PolicyRules.model_validate((await current_policy(session)).rules)
    if card is None:
        raise Conflict("score the application before sending it to committee", slug="scorecard-required")
    if card.score < rules.minimum_score:
        raise Conflict(
            f"the social score {card.score} is below the policy minimum of {rules.minimum_score}",
            slug="score-below-minimum",
            score=str(card.score),
            minimum_score=rules.minimum_score,
        )
    source = Status(application.status)
    await pipeline.move_to(session, application, target, principal, comment)
    await pipeline.announce(
        session,
        application,
        "application.sent_to_committee",
        source,
        ApplicationSentToCommitteeV1,
        {"score": str(card.score)},
        comment,
    )


async def declare_conflict(
    session: AsyncSession, *, business: Business, principal: Principal, reason: str
) -> ConflictOfInterest:
    await session.execute(
        insert(ConflictOfInterest)
        .values(business_id=business.id, member=principal.actor, member_key_id=principal.key_id, reason=reason)
        .on_conflict_do_nothing(constraint="uq_conflicts_of_interest_business_member")
    )
    conflict = await session.scalar(
        select(ConflictOfInterest).where(
            ConflictOfInterest.business_id == business.id, ConflictOfInterest.member == principal.actor
        )
    )
    assert conflict is not None
    return conflict


async def _reviewers(session: AsyncSession, application_id: uuid.UUID) -> set[str]:
    scored = await session.scalars(select(Scorecard.reviewer).where(Scorecard.application_id == application_id))
    sent = await session.scalars(
        select(Transition.actor).where(
            Transition.application_id == application_id,
            Transition.to_status.in_((Status.under_review.value, Status.committee.value, Status.returned.value)),
            Transition.actor.is_not(None),
        )
    )
    return {r for r in scored} | {s for s in sent if s}


async def vote(
    session: AsyncSession, *, application: Application, spec: VoteIn, principal: Principal
) -> tuple[Vote, int, int, int]:
    if application.status != Status.committee.value:
        raise Conflict(
            f"votes are cast while the application is in committee, not {application.status}",
            slug="transition-not-allowed",
            current_status=application.status,
        )
    if principal.actor in await _reviewers(session, application.id):
        raise Forbidden("you reviewed this application, so you may not vote on it (maker-checker)")
    conflicted = await session.scalar(
        select(ConflictOfInterest.id).where(
            ConflictOfInterest.business_id == application.business_id, ConflictOfInterest.member == principal.actor
        )
    )
    if conflicted is not None:
        raise Forbidden("you declared a conflict of interest with this business, so you may not vote on it")
    already = await session.scalar(
        select(Vote.id).where(Vote.application_id == application.id, Vote.voter == principal.actor)
    )
    if already is not None:
        raise Conflict("you have already voted on this application", slug="already-voted")
    if spec.terms is not None and spec.terms.amount.currency != application.currency:
        raise UnprocessableContent(
            "the final amount is in the lender's currency, the one requested",
            errors=[{"pointer": "#/terms/amount/currency", "detail": f"must be {application.currency}"}],
        )
    terms = spec.terms.model_dump(mode="json") if spec.terms is not None else None
    cast = Vote(
        application_id=application.id,
        voter=principal.actor,
        voter_key_id=principal.key_id,
        decision=spec.decision.value,
        comment=spec.comment,
        terms=terms,
    )
    session.add(cast)
    await session.flush()
    policy = await current_policy(session)
    quorum = PolicyRules.model_validate(policy.rules).committee_quorum
    votes = list((await session.scalars(select(Vote).where(Vote.application_id == application.id))).all())
    rejections = sum(1 for v in votes if v.decision == Decision.reject.value)
    same_terms = [v for v in votes if v.decision == Decision.approve.value and v.terms == terms] if terms else []
    approvals = sum(1 for v in votes if v.decision == Decision.approve.value)
    if terms is not None and len(same_terms) >= quorum:
        await _approve(session, application, FinalTerms.model_validate(terms), policy.version, spec.comment)
    elif rejections >= quorum:
        await _reject(session, application, [v.comment for v in votes if v.decision == Decision.reject.value])
    return cast, approvals, rejections, quorum


async def _approve(
    session: AsyncSession, application: Application, terms: FinalTerms, policy_version: int, comment: str
) -> None:
    await pipeline.move_to(session, application, Status.approved, None, f"committee approved: {comment}")
    now = datetime.now(UTC)
    application.decided_at = now
    stored = terms.model_dump(mode="json")
    session.add(Approval(application_id=application.id, terms=stored, policy_version=policy_version, decided_at=now))
    business = await session.get(Business, application.business_id)
    assert business is not None
    facts = await profile_as_of(session, business.id, None)
    assert facts is not None
    wire_terms: dict[str, Any] = {
        "amount": stored["amount"]["amount"],
        "currency": stored["amount"]["currency"],
        "term_months": stored["term_months"],
        "instruments": stored["instruments"],
        "lender_id": stored["lender_id"],
        "fund_share_pct": stored["fund_share_pct"],
        "guarantee_coverage_pct": stored["guarantee_coverage_pct"],
        "conditions": stored["conditions"],
    }
    await pipeline.announce(
        session,
        application,
        "application.approved",
        Status.committee,
        ApplicationApprovedV1,
        {"terms": wire_terms, "policy_version": policy_version, "business": snapshot(business, facts)},
        comment,
    )


async def _reject(session: AsyncSession, application: Application, reasons: list[str]) -> None:
    comment = "committee rejected: " + " / ".join(reasons)
    await pipeline.move_to(session, application, Status.rejected, None, comment)
    application.decided_at = datetime.now(UTC)
    await pipeline.announce(
        session,
        application,
        "application.rejected",
        Status.committee,
        ApplicationRejectedV1,
        {"reasons": reasons},
        comment,
    )


async def votes_of(session: AsyncSession, application_id: uuid.UUID) -> list[Vote]:
    query = select(Vote).where(Vote.application_id == application_id).order_by(Vote.id)
    return list((await session.scalars(query)).all())


async def count_votes(session: AsyncSession, application_id: uuid.UUID) -> int:
    return int(await session.scalar(select(func.count()).where(Vote.application_id == application_id)) or 0)
