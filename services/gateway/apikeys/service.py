"""API keys: create (plaintext returned once), list, revoke. No commit here: the route's unit of work commits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.apikeys.schemas import ApiKeyCreate
from services.gateway.keystore import hash_key, new_key
from services.gateway.models import ApiKey
from shared.problems import NotFound


async def create_key(session: AsyncSession, *, spec: ApiKeyCreate, created_by: uuid.UUID | None) -> tuple[ApiKey, str]:
    plaintext = new_key()
    row = await store_key(session, plaintext=plaintext, spec=spec, created_by=created_by)
    return row, plaintext


async def store_key(
    session: AsyncSession, *, plaintext: str, spec: ApiKeyCreate, created_by: uuid.UUID | None
) -> ApiKey:
    row = ApiKey(
        id=uuid.uuid4(),
        name=spec.name,
        role=spec.role.value,
        organization_id=spec.organization_id,
        holder=spec.holder,
        key_hash=hash_key(plaintext),
        prefix=plaintext[:10],
        rate_limit_per_second=spec.rate_limit_per_second,
        rate_limit_burst=spec.rate_limit_burst,
        expires_at=spec.expires_at,
        created_by=created_by,
        created_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    return row


async def list_keys(session: AsyncSession, *, include_revoked: bool, limit: int, offset: int) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id).limit(limit).offset(offset)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list((await session.scalars(query)).all())


async def revoke_key(session: AsyncSession, *, key_id: uuid.UUID) -> ApiKey:
    row = await session.get(ApiKey, key_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        await session.flush()
    return row


async def has_active_admin(session: AsyncSession) -> bool:
    found = await session.scalar(select(ApiKey.id).where(ApiKey.role == "admin", ApiKey.revoked_at.is_(None)).limit(1))
    return found is not None
