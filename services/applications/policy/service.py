"""Policy versions: the latest is in force; each decision records the version it used."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.applications.policy.models import Policy
from services.applications.policy.schemas import PolicyRules
from shared.problems import NotFound, UnprocessableContent


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


async def publish_policy(session: AsyncSession, *, changes: dict[str, Any], note: str, actor: uuid.UUID) -> Policy:
    """A new version: the one in force with `changes` applied (nested rules merged field by field)."""
    # serialize publishers: each applies its changes to the latest version and gets the next number
    await session.execute(text("LOCK TABLE applications.policies IN SHARE ROW EXCLUSIVE MODE"))
    current = await current_policy(session)
    merged = dict(current.rules)
    for name, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = {**merged[name], **value}
        else:
            merged[name] = value
    try:
        rules = PolicyRules.model_validate(merged)
    except ValidationError as exc:
        errors = [
            {"pointer": "#/rules/" + "/".join(str(p) for p in e["loc"]), "detail": e["msg"]} for e in exc.errors()
        ]
        raise UnprocessableContent("the new rules are not valid", errors=errors) from None
    policy = Policy(version=current.version + 1, rules=rules.model_dump(mode="json"), note=note, published_by=actor)
    session.add(policy)
    await session.flush()
    return policy
