"""Durable outbound webhooks: endpoints, deliveries and their attempts in the calling service's own schema.

- `enqueue()` writes a delivery in the caller's transaction: the notification exists if and only if the change
  it announces commits (no dual write), and `NOTIFY fisiq_webhooks_<schema>` wakes the deliverer at commit.
- `Deliverer` (one asyncio task per process, any number of processes) claims due deliveries with
  `FOR UPDATE SKIP LOCKED` in a short transaction that counts the attempt, logs it and leases the row
  (`next_attempt_at` moved past the request timeout), then POSTs **outside** any transaction, then records the
  outcome. A process that dies mid-request leaves the lease to expire: the delivery is tried again (at least once;
  receivers deduplicate on `webhook-id`, which is the delivery's id and the same on every attempt).
- 2xx → `delivered`. Anything else (other status, redirect, timeout, connection error) → retried after an
  exponential backoff with jitter, `failed` once `max_attempts` attempts have been made. A non-HTTPS URL in
  production is a permanent failure. `resend()` makes a delivery due now (a failed one gets one more attempt).
- Deliveries of an inactive endpoint wait (pending) until it is active again.

Body sent (`application/json`): `{"type": <event type>, "timestamp": <enqueued at, ISO 8601>, "data": <payload>}`,
the Standard Webhooks payload structure. No ordering between deliveries is promised, as with any webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.background import log_failure
from shared.db import make_sessionmaker
from shared.webhooks.secrets import generate_secret, is_valid_secret, sign

log = logging.getLogger("shared.webhooks.outbound")

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
USER_AGENT = "fisiq-webhooks/1"
_RESPONSE_EXCERPT = 500  # bytes of a refused response's body kept in the attempts log


# --------------------------------------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class WebhookTables:
    schema: str
    endpoints: Table
    deliveries: Table
    attempts: Table


def webhook_tables(metadata: MetaData) -> WebhookTables:
    """The outbound webhook tables, in the service's own schema (create them with `migration_v1`)."""
    schema = metadata.schema
    assert schema, "webhook tables live in the service's own schema"
    endpoints = Table(
        "webhook_endpoints",
        metadata,
        Column("id", UUID(as_uuid=True), primary_key=True),
        Column("organization_id", UUID(as_uuid=True), nullable=False),
        Column("url", Text, nullable=False),
        # the signing secret as given (`whsec_...`); never returned by an API after creation
        Column("secret", Text, nullable=False),
        Column("active", Boolean, nullable=False, server_default=text("true")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_webhook_endpoints_organization", "organization_id"),
    )
    deliveries = Table(
        "webhook_deliveries",
        metadata,
        # the `webhook-id` header: the same on every attempt, so receivers can deduplicate
        Column("id", UUID(as_uuid=True), primary_key=True),
        Column("endpoint_id", UUID(as_uuid=True), ForeignKey(endpoints.c.id), nullable=False),
        Column("event_type", String(100), nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("status", String(10), nullable=False, server_default=PENDING),
        Column("attempts", Integer, nullable=False, server_default="0"),
        # when a pending delivery is due (or its in-flight lease ends); null once delivered or failed
        Column("next_attempt_at", DateTime(timezone=True)),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("delivered_at", DateTime(timezone=True)),
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="ck_webhook_deliveries_status"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
    )
    attempts = Table(
        "webhook_delivery_attempts",
        metadata,
        Column("delivery_id", UUID(as_uuid=True), ForeignKey(deliveries.c.id, ondelete="CASCADE"), nullable=False),
        Column("attempt", Integer, nullable=False),
        Column("attempted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # all three null: the process died during the request, its outcome is unknown
        Column("response_status", Integer),
        Column("error", Text),
        Column("duration_ms", Integer),
        PrimaryKeyConstraint("delivery_id", "attempt"),
    )
    return WebhookTables(schema, endpoints, deliveries, attempts)


def wake_channel(schema: str) -> str:
    return f"fisiq_webhooks_{schema}"


# --------------------------------------------------------------------------------------------------------- endpoints
class InvalidEndpoint(ValueError):
    """An endpoint URL or secret the platform will not deliver to."""


def check_endpoint_url(url: str, *, allow_http: bool = False) -> str:
    """HTTPS only (plain HTTP with `allow_http`, for tests and local development), with a host, no credentials.

    Without `allow_http`, loopback, private and link-local IP literals and `localhost` are refused too, so an
    endpoint cannot aim the platform at its own internal network. (A public name resolving to a private address
    is not caught here: block it at the network level.)
    """
    parts = urlsplit(url)
    if parts.scheme not in (("https", "http") if allow_http else ("https",)):
        raise InvalidEndpoint("the endpoint URL must use https")
    if not parts.hostname:
        raise InvalidEndpoint("the endpoint URL has no host")
    if parts.username or parts.password:
        raise InvalidEndpoint("the endpoint URL must not carry credentials")
    if len(url) > 2000:
        raise InvalidEndpoint("the endpoint URL is longer than 2000 characters")
    if not allow_http:
        host = parts.hostname.lower().rstrip(".")
        if host == "localhost" or host.endswith(".localhost"):
            raise InvalidEndpoint("the endpoint URL must not point at this machine")
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
        except ValueError:
            address = None  # a name, not an address
        if address is not None and not address.is_global:
            raise InvalidEndpoint("the endpoint URL must not point at a private or reserved address")
    return url


async def create_endpoint(
    session: AsyncSession,
    tables: WebhookTables,
    *,
    organization_id: uuid.UUID,
    url: str,
    secret: str | None = None,
    allow_http: bool = False,
) -> tuple[uuid.UUID, str]:
    """Register an endpoint in the caller's transaction; answers its id and its secret (show it once)."""
    check_endpoint_url(url, allow_http=allow_http)
    secret = secret or generate_secret()
    if not is_valid_secret(secret):
        raise InvalidEndpoint("a webhook secret is 'whsec_' followed by the base64 of 24 to 64 bytes")
    endpoint_id = uuid.uuid4()
    await session.execute(
        insert(tables.endpoints).values(id=endpoint_id, organization_id=organization_id, url=url, secret=secret)
    )
    return endpoint_id, secret


# --------------------------------------------------------------------------------------------------------- enqueue
async def enqueue(
    session: AsyncSession,
    tables: WebhookTables,
    *,
    endpoint_id: uuid.UUID,
    event_type: str,
    payload: BaseModel | Mapping[str, Any],
) -> uuid.UUID:
    """Write a delivery in the caller's transaction (no commit); answers its id, the future `webhook-id`.

    `payload` is a Pydantic model (dumped in JSON mode) or a JSON-ready mapping (amounts as strings, ids as text).
    """
    data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else dict(payload)
    delivery_id = uuid.uuid4()
    await session.execute(
        insert(tables.deliveries).values(
            id=delivery_id,
            endpoint_id=endpoint_id,
            event_type=event_type,
            payload=data,
            status=PENDING,
            attempts=0,
            next_attempt_at=func.now(),
        )
    )
    # delivered at commit only: wakes the deliverers at once instead of at their next poll (once a transaction)
    transaction = session.get_transaction()
    notified: set[int] = session.info.setdefault("fisiq_webhooks_notified", set())
    if transaction is not None and id(transaction) not in notified:
        notified.add(id(transaction))
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": wake_channel(tables.schema)})
    return delivery_id


async def resend(session: AsyncSession, tables: WebhookTables, delivery_id: uuid.UUID) -> bool:
    """Make a delivery due now, in the caller's transaction. A failed one goes back to pending for one more
    attempt (its attempt count is kept, so the log stays numbered); a delivered one is sent again. Answers
    whether the delivery exists."""
    deliveries = tables.deliveries
    row = await session.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(status=PENDING, next_attempt_at=func.now(), delivered_at=None)
        .returning(deliveries.c.id)
    )
    if row.first() is None:
        return False
    await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": wake_channel(tables.schema)})
    return True


# --------------------------------------------------------------------------------------------------------- deliverer
@dataclass
class DelivererSettings:
    max_attempts: int = 8
    # delay after attempt n: uniform in [c/2, c] with c = min(max, base·2^(n-1)); with the defaults the 8 attempts
    # span about 1 to 2 hours
    base_backoff_seconds: float = 30.0
    max_backoff_seconds: float = 3600.0
    timeout_seconds: float = 10.0
    batch_size: int = 20  # deliveries claimed (and sent concurrently) at a time
    poll_seconds: float = 1.0  # fallback when no NOTIFY arrives
    allow_http: bool = False  # tests and local development only


def backoff(attempts: int, settings: DelivererSettings) -> timedelta:
    """Exponential with (equal) jitter after `attempts` attempts."""
    ceiling = min(settings.max_backoff_seconds, settings.base_backoff_seconds * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


@dataclass(frozen=True)
class _Claimed:
    delivery_id: uuid.UUID
    attempt: int
    url: str
    secret: str
    body: bytes


@dataclass(frozen=True)
class _Outcome:
    status: int | None
    error: str | None
    duration_ms: int
    permanent: bool = False

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Deliverer:
    """The background worker. In a service's lifespan:

    ```python
    deliverer = Deliverer(engine, tables, DelivererSettings(...))
    async with deliverer.running(), listening(database_url, {wake_channel(schema): lambda _p: deliverer.wake()}):
        yield
    ```
    (`listening` is `shared.events.outbox.listening`; without it the deliverer polls every `poll_seconds`.)
    """

    engine: AsyncEngine
    tables: WebhookTables
    settings: DelivererSettings = field(default_factory=DelivererSettings)
    client: httpx.AsyncClient | None = None  # a shared client; by default the deliverer opens its own
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self._wake.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.Task[None]]:
        task = asyncio.create_task(self.run(), name=f"webhook-deliverer-{self.tables.schema}")
        try:
            yield task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Forever, until cancelled: deliver what is due, then wait for a wake-up or the poll interval."""
        async with self._client() as client:
            while True:
                self._wake.clear()
                try:
                    busy = await self.run_once(client)
                    if busy >= self.settings.batch_size:
                        continue  # more may be due already
                    pause = await self._sleep_seconds()
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database is away, say: keep trying at the polling pace
                    log_failure(log, "webhook deliverer of %s failed; going on", self.tables.schema)
                    pause = self.settings.poll_seconds
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)

    async def run_once(self, client: httpx.AsyncClient | None = None) -> int:
        """Claim a batch of due deliveries, send them concurrently, record the outcomes; answers how many."""
        claimed = await self._claim()
        if not claimed:
            return 0
        if client is not None:
            outcomes = await asyncio.gather(*(self._send(client, c) for c in claimed))
        else:
            async with self._client() as own:
                outcomes = await asyncio.gather(*(self._send(own, c) for c in claimed))
        await self._record(list(zip(claimed, outcomes, strict=True)))
        return len(claimed)

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        if self.client is not None:
            yield self.client
            return
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(self.settings.timeout_seconds),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        ) as client:
            yield client

    async def _sleep_seconds(self) -> float:
        """Until the next pending delivery is due, at most `poll_seconds` (so short backoffs are honoured)."""
        d, e = self.tables.deliveries, self.tables.endpoints
        async with self.engine.connect() as conn:
            seconds = await conn.scalar(
                select(func.extract("epoch", func.min(d.c.next_attempt_at) - func.now()))
                .join(e, e.c.id == d.c.endpoint_id)
                .where(d.c.status == PENDING, e.c.active)
            )
        if seconds is None:
            return self.settings.poll_seconds
        return min(self.settings.poll_seconds, max(float(seconds), 0.005))

    async def _claim(self) -> list[_Claimed]:
        d, e, a = self.tables.deliveries, self.tables.endpoints, self.tables.attempts
        lease = timedelta(seconds=self.settings.timeout_seconds * 2 + 5)
        async with make_sessionmaker(self.engine)() as session, session.begin():
            due = (
                select(d.c.id)
                .join(e, e.c.id == d.c.endpoint_id)
                .where(d.c.status == PENDING, d.c.next_attempt_at <= func.now(), e.c.active)
                .order_by(d.c.next_attempt_at)
                .limit(self.settings.batch_size)
                .with_for_update(of=d, skip_locked=True)
                .cte("due")
            )
            rows = (
                await session.execute(
                    update(d)
                    .where(d.c.id == due.c.id)
                    .values(attempts=d.c.attempts + 1, next_attempt_at=func.now() + lease)
                    .returning(d.c.id, d.c.attempts, d.c.event_type, d.c.payload, d.c.created_at, d.c.endpoint_id)
                )
            ).all()
            if not rows:
                return []
            await session.execute(insert(a), [{"delivery_id": r.id, "attempt": r.attempts} for r in rows])
            endpoints = {
                r.id: r
                for r in await session.execute(
                    select(e.c.id, e.c.url, e.c.secret).where(e.c.id.in_({r.endpoint_id for r in rows}))
                )
            }
        return [
            _Claimed(
                delivery_id=r.id,
                attempt=r.attempts,
                url=endpoints[r.endpoint_id].url,
                secret=endpoints[r.endpoint_id].secret,
                body=_body(r.event_type, r.created_at, r.payload),
            )
            for r in rows
        ]

    async def _send(self, client: httpx.AsyncClient, claimed: _Claimed) -> _Outcome:
        started = time.monotonic()

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            check_endpoint_url(claimed.url, allow_http=self.settings.allow_http)
            headers = sign(
                claimed.secret, msg_id=str(claimed.delivery_id), timestamp=datetime.now(UTC), body=claimed.body
            )
        except ValueError as exc:  # InvalidEndpoint, or a secret that cannot sign: retrying will not help
            return _Outcome(None, f"not sent: {exc}", elapsed(), permanent=True)
        headers["Content-Type"] = "application/json"
        try:
            # a total deadline too: httpx's timeout bounds each read, and a receiver dripping bytes would outlive
            # the claim's lease (and be sent again by another deliverer)
            async with (
                asyncio.timeout(self.settings.timeout_seconds),
                client.stream(
                    "POST", claimed.url, content=claimed.body, headers=headers, timeout=self.settings.timeout_seconds
                ) as response,
            ):
                if 200 <= response.status_code < 300:
                    return _Outcome(response.status_code, None, elapsed())
                excerpt = b""
                async for chunk in response.aiter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= _RESPONSE_EXCERPT:
                        break
                error = f"HTTP {response.status_code}"
                if excerpt:
                    error += ": " + excerpt[:_RESPONSE_EXCERPT].decode("utf-8", "replace")
                return _Outcome(response.status_code, error, elapsed())
        except TimeoutError:
            return _Outcome(None, f"timeout after {self.settings.timeout_seconds:g} s", elapsed())
        except httpx.TimeoutException as exc:
            return _Outcome(
                None, f"timeout after {self.settings.timeout_seconds:g} s ({type(exc).__name__})", elapsed()
            )
        except httpx.HTTPError as exc:
            return _Outcome(None, f"{type(exc).__name__}: {exc}"[:2000], elapsed())

    async def _record(self, results: list[tuple[_Claimed, _Outcome]]) -> None:
        d, a = self.tables.deliveries, self.tables.attempts
        async with make_sessionmaker(self.engine)() as session, session.begin():
            for claimed, outcome in results:
                await session.execute(
                    update(a)
                    .where(a.c.delivery_id == claimed.delivery_id, a.c.attempt == claimed.attempt)
                    .values(response_status=outcome.status, error=outcome.error, duration_ms=outcome.duration_ms)
                )
                # only while the claim is still ours: a resend may have started a newer attempt meanwhile
                mine = (d.c.id == claimed.delivery_id, d.c.attempts == claimed.attempt, d.c.status == PENDING)
                if outcome.delivered:
                    values: dict[str, Any] = {"status": DELIVERED, "delivered_at": func.now(), "next_attempt_at": None}
                elif outcome.permanent or claimed.attempt >= self.settings.max_attempts:
                    values = {"status": FAILED, "next_attempt_at": None}
                    log.warning(
                        "webhook delivery %s failed after %d attempt(s): %s",
                        claimed.delivery_id,
                        claimed.attempt,
                        outcome.error,
                    )
                else:
                    values = {"next_attempt_at": func.now() + backoff(claimed.attempt, self.settings)}
                await session.execute(update(d).where(*mine).values(**values))


def _body(event_type: str, created_at: datetime, payload: Any) -> bytes:
    envelope = {"type": event_type, "timestamp": created_at.astimezone(UTC).isoformat(), "data": payload}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
