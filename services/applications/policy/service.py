"""Policy versions: the latest is in force; each decision records the version it used."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.applications.policy.models import Policy
from services.applications.policy.schemas import PolicyRules
from shared.problems import NotFound


async def current_policy(session: AsyncSession) -> Policy:
    policy = await session.scalar(select(Policy).order_by(Policy.version.desc()).limit(1))
    if policy is None:
        raise RuntimeError("no policy published: the migrations seed version 1")
    return policy


async def get_policy(session: AsyncSession, version: int) -> Policy:
    policy = await session.get(Policy, version)
    if policy is None:
        raise NotFound(f"no policy version {version}")
    return policy


async def list_policies(session: AsyncSession) -> list[Policy]:
    return list((await session.scalars(select(Policy).order_by(Policy.version))).all())


async def publish_policy(session: AsyncSession, *, rules: PolicyRules, note: str, actor: uuid.UUID) -> Policy:
    # serialize publishers: two admins publishing at once get consecutive versions, never the same one
    await session.execute(text("LOCK TABLE applications.policies IN SHARE ROW EXCLUSIVE MODE"))
    latest = await session.scalar(select(func.max(Policy.version)))
    policy = Policy(version=(latest or 0) + 1, rules=rules.model_dump(mode="json"), note=note, published_by=actor)
    session.add(policy)
    await session.flush()
    return policy
