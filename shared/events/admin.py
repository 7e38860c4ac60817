"""Operations on the event table, per service (admin role): lag, counts, parked events, retry, replay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select, update

from shared.auth import Role, require_roles
from shared.db import SessionDep, TransactionalRoute, on_commit
from shared.events.consumer import Consumer
from shared.events.contracts import EventEnvelope
from shared.events.tables import EventTables
from shared.problems import Conflict, NotFound, problem_responses


class SubscriptionStatus(BaseModel):
    name: str
    producer: str
    active_here: bool = Field(description="this instance holds the subscription's lock and is consuming")
    position: int
    producer_head: int | None = Field(description="the producer's latest position (None: producer unreachable)")
    lag_events: int | None
    lag_seconds: float | None = Field(description="age of the oldest event not yet consumed; 0 when caught up")
    applied: int
    failed_attempts: int
    retrying: int
    held: int
    parked: int
    last_applied_at: datetime | None


class RetryRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    subscription: str
    event_id: uuid.UUID
    position: int
    aggregate_type: str
    aggregate_id: str
    aggregate_seq: int
    status: Literal["retrying", "parked", "held"]
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    first_failed_at: datetime
    type: str


class RetryOutcome(BaseModel):
    requeued: int


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"from_position": 0}]})

    from_position: int = Field(0, ge=0, description="events after this position are applied again (0: all)")


class ReplayOutcome(BaseModel):
    subscription: str
    from_position: int
    previous_position: int


class OutboxStatus(BaseModel):
    head: int
    unsequenced: int
    pruned_through: int
    oldest_retained_position: int | None
    subscribers: dict[str, int]


def events_admin_router(service: str, tables: EventTables) -> APIRouter:
    router = APIRouter(
        prefix=f"/api/v1/{service}/admin/events",
        tags=[f"admin: {service} events"],
        route_class=TransactionalRoute,
        dependencies=[require_roles(Role.admin)],
        responses=problem_responses(401, 403, 422, 429),
    )
    subs, retries = tables.subscriptions, tables.retries

    def consumers(request: Request) -> dict[str, Consumer]:
        found: dict[str, Consumer] = getattr(request.app.state, "consumers", {})
        return found

    @router.get("/subscriptions", response_model=list[SubscriptionStatus], summary="Each subscription's lag and counts")
    async def list_subscriptions(request: Request, session: SessionDep) -> list[SubscriptionStatus]:
        counts = {
            (r.subscription, r.status): r.n
            for r in await session.execute(
                select(retries.c.subscription, retries.c.status, func.count().label("n")).group_by(
                    retries.c.subscription, retries.c.status
                )
            )
        }
        rows = {r.name: r for r in await session.execute(select(subs))}
        out = []
        for name, consumer in sorted(consumers(request).items()):
            row = rows.get(name)
            position = row.position if row is not None else 0
            head, lag_seconds = await _producer_lag(consumer, position)
            out.append(
                SubscriptionStatus(
                    name=name,
                    producer=consumer.subscription.producer,
                    active_here=consumer.active,
                    position=position,
                    producer_head=head,
                    lag_events=None if head is None else max(0, head - position),
                    lag_seconds=lag_seconds,
                    applied=row.applied_count if row is not None else 0,
                    failed_attempts=row.failed_count if row is not None else 0,
                    retrying=counts.get((name, "retrying"), 0),
                    held=counts.get((name, "held"), 0),
                    parked=counts.get((name, "parked"), 0),
                    last_applied_at=row.last_applied_at if row is not None else None,
                )
            )
        return out

    @router.get("/failed", response_model=list[RetryRow], summary="Events waiting in retry, parked or held")
    async def list_failed(
        session: SessionDep,
        status: Literal["retrying", "parked", "held"] | None = "parked",
        subscription: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[RetryRow]:
        query = select(retries).order_by(retries.c.position).limit(limit)
        if status is not None:
            query = query.where(retries.c.status == status)
        if subscription is not None:
            query = query.where(retries.c.subscription == subscription)
        return [
            RetryRow.model_validate({**row._asdict(), "type": row.envelope.get("type", "")})
            for row in await session.execute(query)
        ]

    @router.post(
        "/failed/{event_id}/retry",
        response_model=RetryOutcome,
        summary="Retry one parked event now (with a fresh count of attempts)",
        responses=problem_responses(404),
    )
    async def retry_one(event_id: uuid.UUID, request: Request, session: SessionDep) -> RetryOutcome:
        result = await session.execute(
            update(retries)
            .where(retries.c.event_id == event_id, retries.c.status.in_(("parked", "retrying")))
            .values(status="retrying", attempts=0, next_attempt_at=datetime.now(UTC), updated_at=func.now())
            .returning(retries.c.subscription)
        )
        touched = [r.subscription for r in result]
        if not touched:
            raise NotFound(f"no parked or retrying event {event_id}")
        _wake(request, touched)
        return RetryOutcome(requeued=len(touched))

    @router.post("/failed/retry", response_model=RetryOutcome, summary="Retry every parked event now")
    async def retry_all(request: Request, session: SessionDep, subscription: str | None = None) -> RetryOutcome:
        query = (
            update(retries)
            .where(retries.c.status == "parked")
            .values(status="retrying", attempts=0, next_attempt_at=datetime.now(UTC), updated_at=func.now())
            .returning(retries.c.subscription)
        )
        if subscription is not None:
            query = query.where(retries.c.subscription == subscription)
        touched = [r.subscription for r in await session.execute(query)]
        _wake(request, touched)
        return RetryOutcome(requeued=len(touched))

    @router.post(
        "/subscriptions/{name}/replay",
        response_model=ReplayOutcome,
        summary="Replay a subscription from a position to rebuild its read model",
        description="Undoes what the subscription built from events after `from_position` (its reset hook), forgets "
        "them in the inbox and the retry table, and moves its position back: the consumer applies them again.",
        responses=problem_responses(404, 409),
    )
    async def replay(name: str, spec: ReplayRequest, request: Request, session: SessionDep) -> ReplayOutcome:
        consumer = consumers(request).get(name)
        if consumer is None:
            raise NotFound(f"no subscription {name!r} in this service")
        if consumer.subscription.reset is None:
            raise Conflict(f"subscription {name!r} has no reset hook, so it cannot be replayed")
        previous = await session.scalar(select(subs.c.position).where(subs.c.name == name).with_for_update())
        if previous is None:
            raise NotFound(f"subscription {name!r} has not started yet")
        if spec.from_position > previous:
            raise Conflict(
                f"cannot replay from {spec.from_position}: the subscription is at {previous}", position=previous
            )
        await consumer.subscription.reset(session, spec.from_position)
        await session.execute(
            delete(tables.inbox).where(
                tables.inbox.c.subscription == name, tables.inbox.c.position > spec.from_position
            )
        )
        await session.execute(
            delete(retries).where(retries.c.subscription == name, retries.c.position > spec.from_position)
        )
        await session.execute(
            update(subs).where(subs.c.name == name).values(position=spec.from_position, updated_at=func.now())
        )
        on_commit(request, consumer.interrupt.set)  # the consumer re-reads its position once this is committed
        return ReplayOutcome(subscription=name, from_position=spec.from_position, previous_position=previous)

    @router.get("/outbox", response_model=OutboxStatus, summary="This service's outbox as a producer")
    async def outbox_status(session: SessionDep) -> OutboxStatus:
        head = (await session.execute(select(tables.outbox_head))).one()
        unsequenced = await session.scalar(
            select(func.count()).select_from(tables.outbox).where(tables.outbox.c.position.is_(None))
        )
        oldest = await session.scalar(select(func.min(tables.outbox.c.position)))
        acks = {r.subscription: r.position for r in await session.execute(select(tables.outbox_subscribers))}
        return OutboxStatus(
            head=head.position,
            unsequenced=unsequenced or 0,
            pruned_through=head.pruned_through,
            oldest_retained_position=oldest,
            subscribers=acks,
        )

    return router


def _wake(request: Request, subscriptions: list[str]) -> None:
    found: dict[str, Consumer] = getattr(request.app.state, "consumers", {})
    for name in set(subscriptions):
        if name in found:
            found[name].retry_wake.set()


async def _producer_lag(consumer: Consumer, position: int) -> tuple[int | None, float | None]:
    """Ask the producer, now, for its head and the age of the first event after `position`."""
    try:
        async with httpx.AsyncClient(base_url=consumer.producer_url, timeout=3) as client:
            page = await consumer.fetch(client, after=position, wait=0, limit=1, consuming=False)
    except (httpx.HTTPError, ValueError):
        return None, None
    if not page.events:
        return page.head, 0.0 if page.next_after >= page.head else None
    first: EventEnvelope = page.events[0]
    return page.head, max(0.0, (datetime.now(UTC) - first.occurred_at).total_seconds())
