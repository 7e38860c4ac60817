"""Database plumbing: engines, the one-session-per-request unit of work, and readiness.

A route served through `TransactionalRoute` gets one `AsyncSession` for the whole request. Services only
`flush()`; the route commits once, after the handler returned a successful response and **before** that response
is sent, so a client never sees a success that was not committed. Any exception or error response rolls back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.problems import database_unavailable

log = logging.getLogger("shared.db")


def async_url(url: str) -> str:
    """Accept `postgres://`, `postgresql://` or `postgresql+asyncpg://` and answer the asyncpg form."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername != "postgresql+asyncpg":
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}: PostgreSQL is required")
    return parsed.render_as_string(hide_password=False)


POOL_TIMEOUT_SECONDS = 10.0


def dumps_json(value: Any) -> str:
    """JSON text for a `json` or `jsonb` parameter, as `json.dumps` gives it (keys that are not strings written as
    strings)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


async def copy_rows(
    session: AsyncSession, schema: str, table: str, columns: Sequence[str], records: Iterable[Sequence[Any]]
) -> None:
    """Inserts rows with PostgreSQL's binary COPY on the session's connection, in its transaction, in the order
    given (defaults, such as a sequence's next value, taken row by row in that order). For thousands of rows at
    once, e.g. a lender's push batch: about half the database's time of an `INSERT ... SELECT FROM unnest(...)`,
    and the driver encodes each value once, without checking every element of an array for a nested one. A
    `json` or `jsonb` column takes JSON text (`dumps_json`). A failure (a unique violation, say) is the driver's own
    exception, not SQLAlchemy's: the caller rolls back, as after any failed statement."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None, "a pooled connection always has its driver's"
    if not driver.is_in_transaction():
        # SQLAlchemy begins the database transaction with the session's first statement: one before this
        await session.execute(text("SELECT 1"))
        assert driver.is_in_transaction(), "the session's transaction has begun"
    await driver.copy_records_to_table(table, schema_name=schema, columns=list(columns), records=records)


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    application_name: str = "fisiq",
    pool_timeout: float = POOL_TIMEOUT_SECONDS,
    session_settings: dict[str, str] | None = None,
) -> AsyncEngine:
    """`session_settings`: PostgreSQL settings every connection of the pool starts with (sent once at connect,
    not on every transaction)."""
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        # a request waits at most this long for a connection, then is answered 503 (busy), not left hanging
        pool_timeout=pool_timeout,
        connect_args={"server_settings": {**(session_settings or {}), "application_name": application_name}},
        # json and jsonb in and out with orjson: a loan's book is read and written for each push that touches it
        json_serializer=dumps_json,
        json_deserializer=orjson.loads,
    )
    event.listen(engine.sync_engine, "handle_error", _broken_connection_is_a_disconnect)
    event.listen(engine.sync_engine, "connect", _connected)
    event.listen(engine.sync_engine, "checkout", _ping)
    return engine


def _connected(dbapi_connection: Any, record: Any) -> None:
    record.info["fresh"] = True  # just opened: its first checkout needs no ping


PING_TIMEOUT_SECONDS = 5.0  # a connection whose peer went silent (half-open) is given up, not waited on for minutes


def _ping(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection is pinged when it is checked out, as `pool_pre_ping` does, in one round trip (two the
    first time: asyncpg prepares the `;`): the asyncpg dialect's own ping wraps its `;` in BEGIN and ROLLBACK (for
    PgBouncer's transaction mode, not used here), three round trips on every request. A dead connection
    (PostgreSQL restarted, the backend terminated) invalidates the pool's older connections, and the pool checks out
    a new one: the request is served."""
    if record.info.pop("fresh", False):
        return
    try:
        dbapi_connection.run_async(lambda connection: connection.fetchrow(";", timeout=PING_TIMEOUT_SECONDS))
    except Exception as error:
        log.warning("a pooled connection did not answer a ping (%r): the pool's older connections are replaced", error)
        raise InvalidatePoolError(f"the pooled connection did not answer a ping: {error!r}") from error


def _broken_connection_is_a_disconnect(context: ExceptionContext) -> None:
    """A connection the server ended in the middle of an operation (a PostgreSQL restart, a terminated backend) can
    surface from asyncpg as `InternalClientError: cannot switch to state N; another operation (M) is in progress`
    rather than as a closed connection. SQLAlchemy does not count that as a disconnect, so the broken connection
    would go back to the pool and fail every later checkout (sqlalchemy/sqlalchemy#13241). Counting it as one
    discards it (and, outside a pre-ping, every connection opened before it), and the request is answered 503
    `database-unavailable` instead of 500."""
    if type(context.original_exception).__name__ == "InternalClientError":  # the driver's, as the dialect wraps it
        context.is_disconnect = True


def make_sessionmaker(bind: Any, **kw: Any) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(bind=bind, expire_on_commit=False, autoflush=False, **kw)


async def get_session(request: Request) -> AsyncSession:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop on every request for nothing
    session: AsyncSession | None = getattr(request.state, "db_session", None)
    if session is None:
        raise RuntimeError("route is not a TransactionalRoute: no session was opened for this request")
    return session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def on_commit(request: Request, callback: Callable[[], None]) -> None:
    """Run `callback` once the request's transaction has committed (never if it rolls back)."""
    request.state.after_commit.append(callback)


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class TransactionalRoute(APIRoute):
    """Opens the request's session, runs the handler, commits once on success, rolls back otherwise.

    Subclasses hook `before_handler` / `after_handler` to take part in the same transaction (idempotency).
    """

    async def before_handler(self, request: Request, session: AsyncSession) -> Response | None:
        return None

    async def after_handler(self, request: Request, session: AsyncSession, response: Response) -> None:
        return None

    sessionmaker_name = "sessionmaker"  # the `app.state` attribute whose sessionmaker serves these routes

    def get_route_handler(self) -> Handler:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            state = request.app.state
            sessionmaker: async_sessionmaker[AsyncSession] = getattr(state, self.sessionmaker_name, state.sessionmaker)
            async with sessionmaker() as session:
                request.state.db_session = session
                request.state.after_commit = []
                try:
                    early = await self.before_handler(request, session)
                    if early is not None:
                        await session.rollback()
                        return early
                    response = await original(request)
                    if response.status_code < 400:
                        await self.after_handler(request, session, response)
                        await session.commit()
                        for callback in request.state.after_commit:
                            callback()
                    else:
                        await session.rollback()
                    return response
                except BaseException:
                    await session.rollback()
                    raise
                finally:
                    request.state.db_session = None

        return handler


def snapshot(engine: AsyncEngine) -> AsyncEngine:
    """The engine's connections in REPEATABLE READ, READ ONLY transactions (one `BEGIN` says both: no extra round
    trip): every statement of a request reads the same snapshot, and nothing can be written (a request declared
    `one_statement` runs its one statement outside a transaction)."""
    return engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)


async def one_statement(session: AsyncSession) -> None:
    """Declared by a route, before anything is read, when its request reads in one statement. One statement sees
    one snapshot by itself, so the session runs it outside a transaction: no BEGIN and COMMIT, two round trips of a
    report that takes a few milliseconds (and no READ ONLY either: the statement is a fixed SELECT). The connection
    goes back to the pool in the engine's own isolation level. Once the session has read, or when it is joined to
    an outer connection (tests), it stays in its transaction. Declared by the route, never by a report function a
    request of several statements may reuse (the reconciliation reuses the pipeline's)."""
    if isinstance(session.bind, AsyncEngine) and not session.in_transaction():
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


@dataclass(frozen=True)
class DriverStatement:
    """A fixed SQL text with `:name` parameters, compiled once for the driver (asyncpg's `$n` placeholders), with
    the order its parameters are passed in: read by `fetch_one_statement`."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def compile(cls, sql: str) -> DriverStatement:
        compiled = text(sql).compile(dialect=postgresql.asyncpg.dialect())  # type: ignore[no-untyped-call]
        return cls(str(compiled), tuple(compiled.positiontup or ()))

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


async def fetch_one_statement(
    bind: AsyncEngine | AsyncConnection, statement: DriverStatement, params: Mapping[str, Any]
) -> list[Any]:
    """Reads one statement's rows on a pooled connection, through the driver (asyncpg `Record`s, read by name):
    outside a transaction, where one statement sees one snapshot by itself, with no ORM session and no SQLAlchemy
    result around it. For a read-only request that is one statement in all (the whole fund's impact report, the
    flows): the impact request's CPU went from ~2.2-2.5 to ~1.4 ms in-process (a session and `one_statement` on the
    same statement), most of what it costs beside its query. The connection is checked out as any other (pinged, with the service's
    session settings); one that broke under the statement is discarded, and the request is answered 503
    `database-unavailable` as on a session's path. `bind` is a connection where a test bound the app to one (its
    outer transaction's): the statement runs in that transaction. For fixed SELECTs only: the pool's reset on
    return knows nothing of what is done through the driver, so a statement that wrote, began a transaction or
    changed a setting would leave it on the pooled connection."""
    if not isinstance(bind, AsyncEngine):
        return await _fetch(bind, statement, params)
    async with bind.connect() as connection:
        try:
            return await _fetch(connection, statement, params)
        except BaseException as exc:
            # cancelled mid-statement (its caller gone), the driver may still be cancelling it: discarded as well,
            # as SQLAlchemy does on its own path, rather than handed to the next request half-way
            if isinstance(exc, asyncio.CancelledError) or database_unavailable(exc):
                await connection.invalidate(exc if isinstance(exc, Exception) else None)
            raise


async def _fetch(connection: AsyncConnection, statement: DriverStatement, params: Mapping[str, Any]) -> list[Any]:
    driver = (await connection.get_raw_connection()).driver_connection
    if driver is None:
        raise RuntimeError("the pooled connection has no driver connection")
    rows: list[Any] = await driver.fetch(statement.sql, *statement.arguments(params))
    return rows


@asynccontextmanager
async def snapshot_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session as `SnapshotRoute` opens for its routes (every statement reads one snapshot; nothing is written),
    for a route that needs one only on some of its paths (`fetch_one_statement` serves the others)."""
    state = request.app.state
    sessionmaker: async_sessionmaker[AsyncSession] = getattr(state, SnapshotRoute.sessionmaker_name, state.sessionmaker)
    async with sessionmaker() as session:
        yield session


class SnapshotRoute(TransactionalRoute):
    """A read-only route whose queries all see the database as of one instant: a report made of several statements
    never mixes figures from before and after a concurrent commit (under READ COMMITTED each statement would take
    its own snapshot). Served by `app.state.snapshot_sessionmaker` (`shared.app.bind_database` sets it); where an
    app has none (tests bound to one connection), by its ordinary sessionmaker."""

    sessionmaker_name = "snapshot_sessionmaker"


async def current_revision(engine: AsyncEngine, schema: str) -> str | None:
    async with engine.connect() as conn:
        exists = await conn.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"{schema}.alembic_version"})
        if not exists:
            return None
        rev = await conn.scalar(text(f'SELECT version_num FROM "{schema}".alembic_version'))  # noqa: S608
        return str(rev) if rev is not None else None
