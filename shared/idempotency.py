"""`Idempotency-Key` on partner POSTs (the IETF httpapi draft, as Stripe and others practise it).

- Scope: per API key (the principal's key id) and key value; keys are 1-255 printable ASCII characters.
- The first request runs; its successful (< 400) response is stored **in the same transaction as its effect**.
- A replay with the same key and the same request (method, path and query, canonical JSON body) returns the stored
  response, with `Idempotent-Replayed: true`; nothing runs again.
- The same key with another request → 422. While the first is still in flight → 409.
- An error response is not stored: the client may retry the same key once it has fixed the cause.
- Stored responses expire after `IDEMPOTENCY_TTL` (24 hours); after that the key may be used afresh.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request, Response
from sqlalchemy import Column, DateTime, Index, Integer, LargeBinary, MetaData, String, Table, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import principal_from_request
from shared.db import TransactionalRoute
from shared.problems import Conflict, UnprocessableContent

IDEMPOTENCY_HEADER = "idempotency-key"
IDEMPOTENCY_TTL = timedelta(hours=24)
_REPLAYED_HEADERS = ("content-type", "location")


def idempotency_table(metadata: MetaData) -> Table:
    """The table each service keeps in its own schema (created by its own migration)."""
    return Table(
        "idempotency_keys",
        metadata,
        Column("client_id", String(64), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("method", String(10), nullable=False),
        Column("path", String(2048), nullable=False),
        Column("response_status", Integer, nullable=False),
        Column("response_headers", JSONB, nullable=False),
        Column("response_body", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )


def _fingerprint(method: str, path: str, body: bytes) -> str:
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
    except ValueError:
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


class IdempotentRoute(TransactionalRoute):
    """A transactional route that honours `Idempotency-Key` on POST."""

    async def before_handler(self, request: Request, session: AsyncSession) -> Response | None:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if request.method != "POST" or key is None:
            return None
        if not (1 <= len(key) <= 255) or not key.isascii() or not key.isprintable():
            raise UnprocessableContent("Idempotency-Key must be 1 to 255 printable ASCII characters")
        principal = principal_from_request(request)
        if principal is None:
            return None  # the route's own auth dependency refuses the call
        table: Table | None = request.app.state.idempotency_table
        if table is None:
            raise RuntimeError("this service has no idempotency_keys table (see shared.idempotency)")
        client_id = str(principal.key_id)
        target = request.url.path + ("?" + request.url.query if request.url.query else "")
        fingerprint = _fingerprint(request.method, target, await request.body())
        lock_name = f"{table.schema}:{client_id}:{key}"
        got = await session.scalar(text("SELECT pg_try_advisory_xact_lock(hashtextextended(:n, 0))"), {"n": lock_name})
        if not got:
            raise Conflict(
                "a request with this Idempotency-Key is still being processed; retry after it completes",
                slug="idempotency-in-flight",
            )
        row = (
            await session.execute(
                select(table).where(table.c.client_id == client_id, table.c.key == key, table.c.expires_at > func.now())
            )
        ).first()
        if row is None:
            request.state.idempotency = (client_id, key, fingerprint)
            return None
        if row.fingerprint != fingerprint:
            raise UnprocessableContent(
                "this Idempotency-Key was already used with a different request",
                slug="idempotency-key-reused",
            )
        headers: dict[str, Any] = dict(row.response_headers)
        headers["Idempotent-Replayed"] = "true"
        return Response(content=row.response_body, status_code=row.response_status, headers=headers)

    async def after_handler(self, request: Request, session: AsyncSession, response: Response) -> None:
        pending = getattr(request.state, "idempotency", None)
        if pending is None:
            return
        if not hasattr(response, "body"):
            # the effect would commit with nothing to replay: refuse rather than risk a double application
            raise RuntimeError("a streamed response cannot be stored for Idempotency-Key replay")
        client_id, key, fingerprint = pending
        table: Table = request.app.state.idempotency_table
        now = datetime.now(UTC)
        await session.execute(table.delete().where(table.c.client_id == client_id, table.c.key == key))
        await session.execute(
            table.insert().values(
                client_id=client_id,
                key=key,
                fingerprint=fingerprint,
                method=request.method,
                path=request.url.path,
                response_status=response.status_code,
                response_headers={k: v for k, v in response.headers.items() if k in _REPLAYED_HEADERS},
                response_body=bytes(response.body),
                created_at=now,
                expires_at=now + IDEMPOTENCY_TTL,
            )
        )
