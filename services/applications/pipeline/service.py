"""Applications: drafts, the moves of the lifecycle, screening on submission. No commit here."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.applications.db import events
from services.applications.members.models import Ica
from services.applications.notifications.service import notify_status_change
from services.applications.partners.models import Business
from services.applications.pipeline.lifecycle import PLATFORM, Action, Status, target_of
from services.applications.pipeline.models import Application, Screening, Transition
from services.applications.pipeline.peers import Peers
from services.applications.pipeline.schemas import ApplicationCreate, ApplicationUpdate
from services.applications.pipeline.screening import screen
from services.applications.policy.schemas import PolicyRules
from services.applications.policy.service import current_policy
from shared.auth import Principal
from shared.contracts.applications import (
    ApplicationRejectedV1,
    ApplicationReturnedV1,
    ApplicationScreenedV1,
    ApplicationSubmittedV1,
    ApplicationWithdrawnV1,
)
from shared.events.outbox import publish
from shared.money import format_amount
from shared.pagination import keyset, page_of
from shared.problems import Conflict, NotFound

EDITABLE = frozenset({Status.draft, Status.returned})


async def create_draft(session: AsyncSession, *, spec: ApplicationCreate, principal: Principal) -> Application:
    business = await session.get(Business, spec.business_id)
    if business is None or business.ica_id != principal.organization_id:
        raise NotFound(f"no business {spec.business_id} among your partners")
    now = datetime.now(UTC)
    application = Application(
        id=uuid.uuid4(),
        ica_id=business.ica_id,
        business_id=business.id,
        status=Status.draft.value,
        amount=spec.requested.amount,
        currency=spec.requested.currency,
        term_months=spec.term_months,
        purpose=spec.purpose.value,
        instruments=[i.value for i in spec.instruments],
        lender_id=spec.lender_id,
        lender_share_pct=spec.lender_share_pct,
        support_plan=spec.support_plan,
        created_by=principal.key_id,
        created_at=now,
        updated_at=now,
    )
    session.add(application)
    await session.flush()
    await _record(session, application, None, Status.draft, principal, None)
    return application


async def get_application(
    session: AsyncSession, application_id: uuid.UUID, *, scope: uuid.UUID | None, lock: bool = False
) -> Application:
    application = await session.get(Application, application_id, with_for_update=lock)
    if application is None or (scope is not None and application.ica_id != scope):
        raise NotFound(f"no application {application_id}")  # another ICA's application does not exist for you
    return application


async def update_draft(session: AsyncSession, *, application: Application, spec: ApplicationUpdate) -> Application:
    if Status(application.status) not in EDITABLE:
        raise Conflict(
            f"an application that is {application.status} cannot be edited",
            slug="transition-not-allowed",
            current_status=application.status,
        )
    changes = spec.model_dump(exclude_unset=True)
    if changes.get("requested") is not None and spec.requested is not None:
        application.amount = spec.requested.amount
        application.currency = spec.requested.currency
    for field in ("term_months", "lender_id", "lender_share_pct", "support_plan"):
        if changes.get(field) is not None:
            setattr(application, field, changes[field])
    if spec.purpose is not None:
        application.purpose = spec.purpose.value
    if spec.instruments is not None:
        application.instruments = [i.value for i in spec.instruments]
    application.updated_at = datetime.now(UTC)
    await session.flush()
    return application


async def submit(session: AsyncSession, *, application: Application, principal: Principal, peers: Peers) -> None:
    """draft/returned → submitted → screening → under_review or rejected, in one transaction."""
    source = Status(application.status)
    await move_to(session, application, target_of(Action.submit, source, principal), principal, None)
    application.submitted_at = datetime.now(UTC)
    await announce(session, application, "application.submitted", source, ApplicationSubmittedV1, _terms(application))

    await move_to(session, application, Status.screening, None, None)
    policy = await current_policy(session)
    rules = PolicyRules.model_validate(policy.rules)
    business = await session.get(Business, application.business_id)
    ica = await session.get(Ica, application.ica_id)
    assert business is not None and ica is not None
    criteria = await screen(
        application=application, business=business, ica=ica, rules=rules, peers=peers, today=datetime.now(UTC).date()
    )
    passed = all(c.passed for c in criteria)
    session.add(
        Screening(
            application_id=application.id,
            policy_version=policy.version,
            passed=passed,
            criteria=[c.as_json() for c in criteria],
        )
    )
    outcome = Status.under_review if passed else Status.rejected
    failed = [c for c in criteria if not c.passed]
    comment = None if passed else "screening: " + "; ".join(f"{c.name}: {c.reason}" for c in failed)
    await move_to(session, application, outcome, None, comment)
    await announce(
        session,
        application,
        "application.screened",
        Status.screening,
        ApplicationScreenedV1,
        {"passed": passed, "policy_version": policy.version, "criteria": [c.as_json() for c in criteria]},
        comment,
    )
    if not passed:
        application.decided_at = datetime.now(UTC)
        await announce(
            session,
            application,
            "application.rejected",
            Status.screening,
            ApplicationRejectedV1,
            {"reasons": [f"{c.name}: {c.reason}" for c in failed]},
            comment,
        )


async def withdraw(
    session: AsyncSession, *, application: Application, principal: Principal, comment: str | None
) -> None:
    source = Status(application.status)
    await move_to(session, application, target_of(Action.withdraw, source, principal), principal, comment)
    application.decided_at = datetime.now(UTC)
    await announce(session, application, "application.withdrawn", source, ApplicationWithdrawnV1, {}, comment)


async def return_to_ica(session: AsyncSession, *, application: Application, principal: Principal, comment: str) -> None:
    source = Status(application.status)
    await move_to(session, application, target_of(Action.return_to_ica, source, principal), principal, comment)
    await announce(session, application, "application.returned", source, ApplicationReturnedV1, {}, comment)


async def move_to(
    session: AsyncSession, application: Application, to: Status, principal: Principal | None, comment: str | None
) -> None:
    source = Status(application.status)
    application.status = to.value
    application.updated_at = datetime.now(UTC)
    await _record(session, application, source, to, principal, comment)
    await notify_status_change(
        session,
        ica_id=application.ica_id,
        application_id=application.id,
        business_id=application.business_id,
        from_status=source.value,
        to_status=to.value,
        comment=comment,
    )


async def _record(
    session: AsyncSession,
    application: Application,
    source: Status | None,
    to: Status,
    principal: Principal | None,
    comment: str | None,
) -> None:
    session.add(
        Transition(
            application_id=application.id,
            from_status=source.value if source else None,
            to_status=to.value,
            actor_key_id=principal.key_id if principal else None,
            actor_role=principal.role.value if principal else PLATFORM,
            actor=principal.actor if principal else None,
            comment=comment,
            at=datetime.now(UTC),
        )
    )
    await session.flush()


def _terms(application: Application) -> dict[str, Any]:
    return {
        "amount": format_amount(application.amount, application.currency),
        "currency": application.currency,
        "term_months": application.term_months,
        "purpose": application.purpose,
        "instruments": application.instruments,
        "lender_id": application.lender_id,
    }


async def announce(
    session: AsyncSession,
    application: Application,
    event_type: str,
    source: Status,
    contract: Any,
    extra: dict[str, Any],
    comment: str | None = None,
) -> None:
    payload = contract.model_validate(
        {
            "application_id": application.id,
            "ica_id": application.ica_id,
            "business_id": application.business_id,
            "from_status": source.value,
            "to_status": application.status,
            "comment": comment,
            **extra,
        }
    )
    await publish(
        session,
        events,
        event_type=event_type,
        aggregate_type="application",
        aggregate_id=str(application.id),
        payload=payload,
    )


async def latest_screening(session: AsyncSession, application_id: uuid.UUID) -> Screening | None:
    return await session.scalar(
        select(Screening).where(Screening.application_id == application_id).order_by(Screening.id.desc()).limit(1)
    )


async def screenings(session: AsyncSession, application_id: uuid.UUID) -> list[Screening]:
    query = select(Screening).where(Screening.application_id == application_id).order_by(Screening.id)
    return list((await session.scalars(query)).all())


async def transitions(session: AsyncSession, application_id: uuid.UUID) -> list[Transition]:
    query = select(Transition).where(Transition.application_id == application_id).order_by(Transition.id)
    return list((await session.scalars(query)).all())


async def list_applications(
    session: AsyncSession,
    *,
    scope: uuid.UUID | None,
    status: str | None,
    ica_id: uuid.UUID | None,
    business_id: uuid.UUID | None,
    lender_id: uuid.UUID | None,
    country: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Application], str | None]:
    query = select(Application)
    for column, value in (
        (Application.ica_id, scope),
        (Application.ica_id, ica_id),
        (Application.status, status),
        (Application.business_id, business_id),
        (Application.lender_id, lender_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if country is not None:
        query = query.join(Business, Business.id == Application.business_id).where(Business.country == country)
    if created_from is not None:
        query = query.where(Application.created_at >= created_from)
    if created_to is not None:
        query = query.where(Application.created_at < created_to)
    rows = (
        await session.scalars(keyset(query, Application.created_at, Application.id, cursor=cursor, limit=limit))
    ).all()
    return page_of(rows, limit)
