"""Partner businesses and their dated facts. No commit here: the route's unit of work commits."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.applications.db import events
from services.applications.members.models import Ica
from services.applications.partners.models import Business, BusinessProfile
from services.applications.partners.schemas import BusinessCreate, BusinessUpdate, ProfileFacts
from shared.contracts.applications import BusinessFactsV1, BusinessRegisteredV1, BusinessUpdatedV1
from shared.events.outbox import publish
from shared.pagination import keyset, page_of
from shared.problems import Conflict, NotFound, UnprocessableContent


async def register_business(
    session: AsyncSession, *, spec: BusinessCreate, ica_id: uuid.UUID, actor: uuid.UUID
) -> tuple[Business, BusinessProfile]:
    ica = await session.get(Ica, ica_id)
    if ica is None:
        raise UnprocessableContent(f"no ICA {ica_id}", errors=[{"pointer": "#/ica_id", "detail": "unknown ICA"}])
    if not ica.active:
        raise Conflict(f"ICA {ica.name!r} is not an active member of the fund", ica_id=str(ica_id))
    now = datetime.now(UTC)
    business = Business(
        id=uuid.uuid4(),
        ica_id=ica_id,
        name=spec.name,
        legal_form=spec.legal_form.value,
        country=spec.country,
        sector=spec.sector,
        year_founded=spec.year_founded,
        created_at=now,
        updated_at=now,
        created_by=actor,
    )
    session.add(business)
    await session.flush()
    profile = await _add_profile(session, business, spec.profile, actor)
    await publish(
        session,
        events,
        event_type="business.registered",
        aggregate_type="business",
        aggregate_id=str(business.id),
        payload=BusinessRegisteredV1.model_validate(snapshot(business, profile)),
    )
    return business, profile


async def _add_profile(
    session: AsyncSession, business: Business, facts: ProfileFacts, actor: uuid.UUID
) -> BusinessProfile:
    profile = BusinessProfile(business_id=business.id, recorded_by=actor, **facts.model_dump())
    session.add(profile)
    await session.flush()
    return profile


def snapshot(business: Business, profile: BusinessProfile) -> dict[str, object]:
    facts = BusinessFactsV1.model_validate(profile, from_attributes=True)
    return {
        "business_id": business.id,
        "ica_id": business.ica_id,
        "name": business.name,
        "legal_form": business.legal_form,
        "country": business.country,
        "sector": business.sector,
        "year_founded": business.year_founded,
        "facts": facts,
    }


async def get_business(session: AsyncSession, business_id: uuid.UUID, *, scope: uuid.UUID | None) -> Business:
    business = await session.get(Business, business_id)
    if business is None or (scope is not None and business.ica_id != scope):
        raise NotFound(f"no business {business_id}")  # another ICA's business does not exist for this caller
    return business


async def profile_as_of(session: AsyncSession, business_id: uuid.UUID, as_of: date | None) -> BusinessProfile | None:
    """The facts as they stood on `as_of` (the latest report on or before it), or the latest when None."""
    query = select(BusinessProfile).where(BusinessProfile.business_id == business_id)
    if as_of is not None:
        query = query.where(BusinessProfile.reported_on <= as_of)
    query = query.order_by(BusinessProfile.reported_on.desc(), BusinessProfile.id.desc()).limit(1)
    return await session.scalar(query)


async def profile_history(session: AsyncSession, business_id: uuid.UUID) -> list[BusinessProfile]:
    query = (
        select(BusinessProfile)
        .where(BusinessProfile.business_id == business_id)
        .order_by(BusinessProfile.reported_on, BusinessProfile.id)
    )
    return list((await session.scalars(query)).all())


async def update_business(
    session: AsyncSession, *, business: Business, spec: BusinessUpdate, actor: uuid.UUID
) -> Business:
    changes = {k: v for k, v in spec.model_dump(exclude_unset=True).items() if v is not None}
    if not changes:
        return business
    for field, value in changes.items():
        setattr(business, field, value.value if hasattr(value, "value") else value)
    business.updated_at = datetime.now(UTC)
    await session.flush()
    await _announce_update(session, business)
    return business


async def report_facts(
    session: AsyncSession, *, business: Business, facts: ProfileFacts, actor: uuid.UUID
) -> BusinessProfile:
    profile = await _add_profile(session, business, facts, actor)
    business.updated_at = datetime.now(UTC)
    await session.flush()
    await _announce_update(session, business)
    return profile


async def _announce_update(session: AsyncSession, business: Business) -> None:
    latest = await profile_as_of(session, business.id, None)
    assert latest is not None, "a business is always registered with its facts"
    await publish(
        session,
        events,
        event_type="business.updated",
        aggregate_type="business",
        aggregate_id=str(business.id),
        payload=BusinessUpdatedV1.model_validate(snapshot(business, latest)),
    )


async def list_businesses(
    session: AsyncSession,
    *,
    scope: uuid.UUID | None,
    ica_id: uuid.UUID | None,
    country: str | None,
    legal_form: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Business], str | None]:
    query = select(Business)
    if scope is not None:
        query = query.where(Business.ica_id == scope)
    if ica_id is not None:
        query = query.where(Business.ica_id == ica_id)
    if country is not None:
        query = query.where(Business.country == country)
    if legal_form is not None:
        query = query.where(Business.legal_form == legal_form)
    rows = (await session.scalars(keyset(query, Business.created_at, Business.id, cursor=cursor, limit=limit))).all()
    return page_of(rows, limit)
