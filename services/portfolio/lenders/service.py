"""Lenders and their webhook secrets. A secret is shown once; rotation keeps the previous one valid until it is
retired (two valid at once, never more), so a lender can switch without losing a push."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.portfolio.lenders.models import Lender, LenderSecret
from services.portfolio.lenders.schemas import LenderCreate, LenderUpdate
from shared.problems import Conflict, NotFound
from shared.webhooks.secrets import generate_secret


async def create_lender(session: AsyncSession, *, spec: LenderCreate) -> tuple[Lender, LenderSecret]:
    now = datetime.now(UTC)
    lender = Lender(
        id=uuid.uuid4(),
        name=spec.name,
        institution_type=spec.institution_type.value,
        country=spec.country,
        currencies=list(spec.currencies),
        active=True,
        created_at=now,
        updated_at=now,
    )
    session.add(lender)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(f"a lender named {spec.name!r} already exists") from None
    secret = LenderSecret(id=uuid.uuid4(), lender_id=lender.id, secret=generate_secret(), created_at=now)
    session.add(secret)
    await session.flush()
    return lender, secret


async def get_lender(session: AsyncSession, lender_id: uuid.UUID) -> Lender:
    lender = await session.get(Lender, lender_id)
    if lender is None:
        raise NotFound(f"no lender {lender_id}")
    return lender


async def list_lenders(session: AsyncSession) -> list[Lender]:
    return list((await session.scalars(select(Lender).order_by(Lender.name))).all())


async def update_lender(session: AsyncSession, *, lender: Lender, spec: LenderUpdate) -> Lender:
    for field, value in spec.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(lender, field, value)
    lender.updated_at = datetime.now(UTC)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(f"a lender named {spec.name!r} already exists") from None
    return lender


async def valid_secrets(session: AsyncSession, lender_id: uuid.UUID) -> list[LenderSecret]:
    query = (
        select(LenderSecret)
        .where(LenderSecret.lender_id == lender_id, LenderSecret.retired_at.is_(None))
        .order_by(LenderSecret.created_at.desc())
    )
    return list((await session.scalars(query)).all())


SECRETS_TTL_SECONDS = 5.0
_SECRETS_CACHE_SIZE = 10_000
_secrets_cache: OrderedDict[uuid.UUID, tuple[float, list[str]]] = OrderedDict()


async def signing_secrets(session: AsyncSession, lender_id: uuid.UUID) -> list[str]:
    """The secrets a push from this lender may be signed with (newest first; none for an unknown or inactive
    lender), cached for `SECRETS_TTL_SECONDS` so that a burst of pushes does not read them each time. A rotation
    or retirement takes effect at once in the process that made it, and within that delay in the others."""
    hit = cached_signing_secrets(lender_id)
    if hit is not None:
        return hit
    now = time.monotonic()
    rows = await session.scalars(
        select(LenderSecret.secret)
        .join(Lender, Lender.id == LenderSecret.lender_id)
        .where(LenderSecret.lender_id == lender_id, LenderSecret.retired_at.is_(None), Lender.active.is_(True))
        .order_by(LenderSecret.created_at.desc())
    )
    secrets = list(rows.all())
    _secrets_cache[lender_id] = (now + SECRETS_TTL_SECONDS, secrets)
    _secrets_cache.move_to_end(lender_id)
    while len(_secrets_cache) > _SECRETS_CACHE_SIZE:
        _secrets_cache.popitem(last=False)
    return secrets


def cached_signing_secrets(lender_id: uuid.UUID) -> list[str] | None:
    """`signing_secrets` as cached, without a database (None: not cached, or expired)."""
    hit = _secrets_cache.get(lender_id)
    return hit[1] if hit is not None and hit[0] > time.monotonic() else None


def forget_secrets(lender_id: uuid.UUID) -> None:
    _secrets_cache.pop(lender_id, None)


async def rotate_secret(session: AsyncSession, *, lender: Lender) -> LenderSecret:
    """A new secret; the newest previous one stays valid (until retired), any older one is retired now."""
    await session.refresh(lender, with_for_update=True)
    now = datetime.now(UTC)
    for old in (await valid_secrets(session, lender.id))[1:]:
        old.retired_at = now
    secret = LenderSecret(id=uuid.uuid4(), lender_id=lender.id, secret=generate_secret(), created_at=now)
    session.add(secret)
    await session.flush()
    return secret


async def retire_secret(session: AsyncSession, *, lender: Lender, secret_id: uuid.UUID) -> LenderSecret:
    await session.refresh(lender, with_for_update=True)
    valid = await valid_secrets(session, lender.id)
    target = next((s for s in valid if s.id == secret_id), None)
    if target is None:
        raise NotFound(f"no valid secret {secret_id} for this lender")
    if len(valid) == 1:
        raise Conflict("this is the lender's only valid secret: rotate first, then retire the old one")
    target.retired_at = datetime.now(UTC)
    await session.flush()
    return target
