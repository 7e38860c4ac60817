"""Notifications to ICAs: each status change of their applications, as a Standard Webhooks-signed POST to the
callback URLs they registered (delivered by shared.webhooks: retried with backoff, every attempt logged)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.applications.db import webhooks
from shared.problems import NotFound, UnprocessableContent
from shared.webhooks.outbound import InvalidEndpoint, create_endpoint, enqueue, resend

EVENT_TYPE = "application.status_changed"


async def register_endpoint(
    session: AsyncSession, *, ica_id: uuid.UUID, url: str, allow_http: bool
) -> tuple[uuid.UUID, str]:
    try:
        return await create_endpoint(session, webhooks, organization_id=ica_id, url=url, allow_http=allow_http)
    except InvalidEndpoint as exc:
        raise UnprocessableContent(str(exc), errors=[{"pointer": "#/url", "detail": str(exc)}]) from None


async def list_endpoints(session: AsyncSession, *, ica_id: uuid.UUID | None) -> list[Any]:
    e = webhooks.endpoints
    query = select(e.c.id, e.c.organization_id, e.c.url, e.c.active, e.c.created_at).order_by(e.c.created_at)
    if ica_id is not None:
        query = query.where(e.c.organization_id == ica_id)
    return list((await session.execute(query)).all())


async def deactivate_endpoint(session: AsyncSession, *, endpoint_id: uuid.UUID, ica_id: uuid.UUID | None) -> Any:
    e = webhooks.endpoints
    query = update(e).where(e.c.id == endpoint_id).values(active=False)
    if ica_id is not None:
        query = query.where(e.c.organization_id == ica_id)
    row = (
        await session.execute(query.returning(e.c.id, e.c.organization_id, e.c.url, e.c.active, e.c.created_at))
    ).first()
    if row is None:
        raise NotFound(f"no endpoint {endpoint_id}")
    return row


async def notify_status_change(
    session: AsyncSession,
    *,
    ica_id: uuid.UUID,
    application_id: uuid.UUID,
    business_id: uuid.UUID,
    from_status: str | None,
    to_status: str,
    comment: str | None,
) -> int:
    """Queue one delivery per active endpoint of the ICA, in the caller's transaction."""
    e = webhooks.endpoints
    endpoints = (await session.scalars(select(e.c.id).where(e.c.organization_id == ica_id, e.c.active.is_(True)))).all()
    payload = {
        "application_id": str(application_id),
        "business_id": str(business_id),
        "from_status": from_status,
        "to_status": to_status,
        "comment": comment,
        "changed_at": datetime.now(UTC).isoformat(),
    }
    for endpoint_id in endpoints:
        await enqueue(session, webhooks, endpoint_id=endpoint_id, event_type=EVENT_TYPE, payload=payload)
    return len(endpoints)


async def list_deliveries(
    session: AsyncSession, *, ica_id: uuid.UUID | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    d, e = webhooks.deliveries, webhooks.endpoints
    query = (
        select(d, e.c.url, e.c.organization_id)
        .join(e, e.c.id == d.c.endpoint_id)
        .order_by(d.c.created_at.desc(), d.c.id)
        .limit(limit)
    )
    if ica_id is not None:
        query = query.where(e.c.organization_id == ica_id)
    if status is not None:
        query = query.where(d.c.status == status)
    rows = (await session.execute(query)).all()
    return [await _with_attempts(session, row) for row in rows]


async def get_delivery(session: AsyncSession, *, delivery_id: uuid.UUID, ica_id: uuid.UUID | None) -> dict[str, Any]:
    d, e = webhooks.deliveries, webhooks.endpoints
    query = select(d, e.c.url, e.c.organization_id).join(e, e.c.id == d.c.endpoint_id).where(d.c.id == delivery_id)
    if ica_id is not None:
        query = query.where(e.c.organization_id == ica_id)
    row = (await session.execute(query)).first()
    if row is None:
        raise NotFound(f"no delivery {delivery_id}")
    return await _with_attempts(session, row)


async def _with_attempts(session: AsyncSession, row: Any) -> dict[str, Any]:
    a = webhooks.attempts
    attempts = (await session.execute(select(a).where(a.c.delivery_id == row.id).order_by(a.c.attempt))).all()
    return {**row._asdict(), "attempt_log": [x._asdict() for x in attempts]}


async def resend_delivery(session: AsyncSession, *, delivery_id: uuid.UUID, ica_id: uuid.UUID | None) -> dict[str, Any]:
    await get_delivery(session, delivery_id=delivery_id, ica_id=ica_id)  # 404 for another ICA's
    await resend(session, webhooks, delivery_id)
    return await get_delivery(session, delivery_id=delivery_id, ica_id=ica_id)
