"""ICAs: the fund's members. Admin-managed; an inactive member cannot submit applications."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.applications.members.models import Ica
from services.applications.members.schemas import IcaCreate, IcaUpdate
from shared.problems import Conflict, NotFound


async def create_ica(session: AsyncSession, *, spec: IcaCreate) -> Ica:
    if await session.scalar(select(Ica.id).where(Ica.name == spec.name)):
        raise Conflict(f"an ICA named {spec.name!r} already exists")
    ica = Ica(id=uuid.uuid4(), name=spec.name, country=spec.country, contact_email=spec.contact_email, active=True)
    session.add(ica)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"an ICA named {spec.name!r} already exists") from None
    return ica


async def get_ica(session: AsyncSession, ica_id: uuid.UUID) -> Ica:
    ica = await session.get(Ica, ica_id)
    if ica is None:
        raise NotFound(f"no ICA {ica_id}")
    return ica


async def update_ica(session: AsyncSession, *, ica_id: uuid.UUID, spec: IcaUpdate) -> Ica:
    ica = await session.get(Ica, ica_id, with_for_update=True)
    if ica is None:
        raise NotFound(f"no ICA {ica_id}")
    for field, value in spec.model_dump(exclude_unset=True).items():
        if value is None and field in ("name", "active"):
            continue
        setattr(ica, field, value)
    ica.updated_at = datetime.now(UTC)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(f"an ICA named {spec.name!r} already exists") from None
    return ica


async def list_icas(session: AsyncSession, *, active: bool | None) -> list[Ica]:
    query = select(Ica).order_by(Ica.name)
    if active is not None:
        query = query.where(Ica.active.is_(active))
    return list((await session.scalars(query)).all())
