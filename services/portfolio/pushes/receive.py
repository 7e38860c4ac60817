"""Receiving a lender's push: the hot path, kept lean (issue 5: 800 single pushes/s through the gateway).

The push is verified over its raw bytes against the lender's valid secrets (two during a rotation, ±5 minutes),
then stored as received, by one `INSERT` committed on its own, before the 2xx: an accepted push is never lost. A
retried push (the same `webhook-id`) is acknowledged again without being stored twice. Applying its items is
asynchronous (`processor.py`).

Why not an ordinary FastAPI route with the request's session: on this 2-core machine that cost about 1.8 ms of CPU
a push, most of it routing across the service's routes, a thread hop for the session dependency, and six round
trips to PostgreSQL (the pool's pre-ping is BEGIN; SELECT; ROLLBACK, then BEGIN, INSERT, COMMIT). Here:
`PushReceiver` answers `POST /webhooks/lenders/<uuid>` in front of the routing (inside the request-id and access-log
middleware), and the insert runs on a small asyncpg pool of its own (no pre-ping, no reset query, no explicit
transaction: one statement is its own transaction, committed when it returns). Everything else, a malformed lender
id included, goes on to FastAPI, where the route documents this endpoint and calls the same `accept()`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime

import asyncpg
from pydantic import BaseModel
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from services.portfolio.lenders.service import cached_signing_secrets, signing_secrets
from shared.events.outbox import asyncpg_dsn
from shared.problems import Problem, Unauthorized, UnprocessableContent, render_problem
from shared.webhooks.secrets import WebhookRejected, verify

log = logging.getLogger("services.portfolio.pushes")

PATH_PREFIX = "/webhooks/lenders/"
MAX_PUSH_BYTES = 5 * 1024 * 1024
MAX_ITEMS = 10_000
ACQUIRE_TIMEOUT_SECONDS = 10.0

_STORE = """
    INSERT INTO portfolio.lender_pushes (id, lender_id, webhook_id, raw_body, item_count, received_at)
    VALUES ($1, $2, $3, $4, $5, clock_timestamp())
    ON CONFLICT ON CONSTRAINT uq_lender_pushes_webhook_id DO NOTHING
    RETURNING id, status, received_at, item_count
"""
# clock_timestamp(), not now(): the pushes are applied in the order received
_FIND = """
    SELECT id, status, received_at, item_count FROM portfolio.lender_pushes WHERE lender_id = $1 AND webhook_id = $2
"""


class PushReceipt(BaseModel):
    push_id: uuid.UUID
    webhook_id: str
    items: int
    status: str
    received_at: datetime
    duplicate: bool


async def _no_reset(_connection: asyncpg.Connection) -> None:
    """The pool's connections run single statements in autocommit and change no session state: nothing to reset
    (the default reset is one more round trip on every release)."""


@contextlib.asynccontextmanager
async def push_pool(database_url: str, *, size: int) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(
        **asyncpg_dsn(database_url),
        min_size=0,  # connects on demand: the service starts (and answers 503) while the database is away
        max_size=size,
        reset=_no_reset,
        server_settings={"application_name": "portfolio-pushes"},
    )
    try:
        yield pool
    finally:
        await pool.close()


# a connection the server dropped (a restart); after one, asyncpg can also report the cut mid-operation as an
# `InternalClientError` ("cannot switch to state 12; another operation (2) is in progress"), seen under `make load`
BROKEN = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, asyncpg.InternalClientError, ConnectionError)


@contextlib.asynccontextmanager
async def _connection(state: State) -> AsyncIterator[asyncpg.Connection]:
    pool: asyncpg.Pool | None = getattr(state, "push_pool", None)
    if pool is not None:
        try:
            connection = await pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS)
        except TimeoutError:
            raise Problem(
                "the service is busy; retry after a few seconds", status=503, slug="busy", headers={"Retry-After": "5"}
            ) from None
        try:
            yield connection
        except BROKEN:
            connection.terminate()  # never back in the pool as it is: the pool opens a new one in its place
            raise
        finally:
            await pool.release(connection)
        return
    # no pool of its own (tests bind the app to one connection in a rolled-back transaction): the driver
    # connection of a session, so the same statements run inside the test's transaction
    async with state.sessionmaker() as session:
        bound = await session.connection()
        raw = await bound.get_raw_connection()
        yield raw.driver_connection
        await session.commit()


async def _secrets(state: State, lender_id: uuid.UUID) -> list[str]:
    cached = cached_signing_secrets(lender_id)
    if cached is not None:
        return cached
    async with state.sessionmaker() as session:
        return await signing_secrets(session, lender_id)


async def accept(state: State, lender_id: uuid.UUID, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
    """Verifies and stores a push; answers the status (202 stored, 200 a retry of one stored) and the receipt as
    JSON. Raises a `Problem` when the push is refused (nothing is stored then)."""
    secrets = await _secrets(state, lender_id)
    if not secrets:
        raise Unauthorized("the signature is not valid for this lender")  # unknown lender: the same answer
    try:
        webhook_id = verify(secrets[:2], headers, body)
    except WebhookRejected as exc:
        raise Unauthorized(
            f"the push was refused: {exc.reason.value}", slug="webhook-rejected", reason=exc.reason.value
        ) from None
    try:
        items = json.loads(body)["items"]
        if not isinstance(items, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise UnprocessableContent(
            'a push is a JSON object with an "items" list', errors=[{"pointer": "#/items", "detail": "required list"}]
        ) from None
    if len(items) > MAX_ITEMS:
        raise UnprocessableContent(f"a push may carry at most {MAX_ITEMS} items; split it")
    for attempt in (1, 2):
        try:
            async with _connection(state) as connection:
                stored = await connection.fetchrow(_STORE, uuid.uuid4(), lender_id, webhook_id, body, len(items))
                duplicate = stored is None
                if stored is None:  # a retry of a push already received: the same receipt, nothing stored twice
                    stored = await connection.fetchrow(_FIND, lender_id, webhook_id)
                    assert stored is not None
            break
        except BROKEN:
            # a pooled connection the server dropped (a restart): once more on a fresh one. Safe either way: had
            # the insert committed, the retry finds it by its webhook-id and answers the same receipt
            if attempt == 2:
                raise
            log.warning("a pooled connection was lost while storing a push; retrying once")
    if not duplicate:
        # stored and committed: this process's processor applies it at once; other processes poll. (Not NOTIFY: a
        # transaction that notifies holds a cluster-wide lock through its commit, which would serialize pushes.)
        processor = getattr(state, "push_processor", None)
        if processor is not None:
            processor.wake()
    receipt = PushReceipt(
        push_id=stored["id"],
        webhook_id=webhook_id,
        items=stored["item_count"],
        status=stored["status"],
        received_at=stored["received_at"],
        duplicate=duplicate,
    )
    return (200 if duplicate else 202), receipt.model_dump_json().encode()


def _lender_of(path: str) -> uuid.UUID | None:
    rest = path[len(PATH_PREFIX) :]
    if "/" in rest or len(rest) != 36:
        return None
    try:
        return uuid.UUID(rest)
    except ValueError:
        return None


class PushReceiver:
    """Pure ASGI, in front of the routing: answers `POST /webhooks/lenders/<uuid>`, passes on everything else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith(PATH_PREFIX):
            lender_id = _lender_of(scope["path"])
            if lender_id is not None:
                await self._receive_push(scope, receive, send, lender_id)
                return
        await self.app(scope, receive, send)

    async def _receive_push(self, scope: Scope, receive: Receive, send: Send, lender_id: uuid.UUID) -> None:
        try:
            body = await read_body(receive)
            if body is None:
                return  # the client went away: nobody to answer, nothing stored
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            status, receipt = await accept(scope["app"].state, lender_id, headers, body)
        except Problem as exc:
            await render_problem(exc, scope["path"])(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(receipt)).encode()), (b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": receipt})


async def read_body(receive: Receive) -> bytes | None:
    """The whole body (None when the client disconnected first); a `Problem` 413 past `MAX_PUSH_BYTES`."""
    parts: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_PUSH_BYTES:
            raise Problem(f"a push may be at most {MAX_PUSH_BYTES} bytes", status=413, slug="body-too-large")
        parts.append(chunk)
        more = message.get("more_body", False)
    return b"".join(parts)
