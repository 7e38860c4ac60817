"""RFC 9457 problem details: one exception family carrying a status, rendered the same way everywhere.

Every error a client can see, including FastAPI's and Starlette's own 404/405/422/500, is
`application/problem+json` with `type`, `title`, `status`, `detail`, `instance` and the `request_id`.
No stack trace, SQL or exception text of an unexpected error ever reaches a client.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from shared.logging import request_id_var

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "/problems/"
log = logging.getLogger("shared.problems")


class FieldError(BaseModel):
    pointer: str | None = Field(None, description="JSON pointer into the request body, e.g. `#/amount`")
    parameter: str | None = Field(None, description="name of the query, path or header parameter")
    detail: str


class ProblemDetails(BaseModel):
    """An RFC 9457 problem. Extension members (`errors`, `limit`, ...) are added by specific problems."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", examples=["/problems/validation-error"])
    title: str = Field(examples=["Request validation failed"])
    status: int = Field(examples=[422])
    detail: str | None = Field(None, examples=["1 field is invalid"])
    instance: str | None = Field(None, examples=["/api/v1/applications/whoami"])
    request_id: str | None = Field(None, examples=["3f9c1d7e5b2a4c6d8e0f1a2b3c4d5e6f"])
    errors: list[FieldError] | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the problems a route may answer."""
    return {
        s: {"model": ProblemDetails, "content": {PROBLEM_JSON: {}}, "description": HTTPStatus(s).phrase}
        for s in statuses
    }


class Problem(Exception):
    """Base of the family: raise a subclass (or this with a status) anywhere; it renders as problem+json."""

    status: int = 500
    title: str = "Internal Server Error"
    slug: str | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        title: str | None = None,
        slug: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title or self.title)
        self.detail = detail
        if status is not None:
            self.status = status
            if title is None:
                self.title = HTTPStatus(status).phrase
        if title is not None:
            self.title = title
        if slug is not None:
            self.slug = slug
        self.headers = headers or {}
        self.extensions = extensions

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug if self.slug else "about:blank"


class BadRequest(Problem):
    status, title, slug = 400, "Bad Request", "bad-request"


class Unauthorized(Problem):
    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="fisiq"'})
        super().__init__(detail, **kw)


class Forbidden(Problem):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(Problem):
    status, title, slug = 404, "Not Found", "not-found"


class Conflict(Problem):
    status, title, slug = 409, "Conflict", "conflict"


class UnprocessableContent(Problem):
    status, title, slug = 422, "Unprocessable Content", "validation-error"


class TooManyRequests(Problem):
    status, title, slug = 429, "Too Many Requests", "rate-limited"


class BadGateway(Problem):
    status, title, slug = 502, "Bad Gateway", "upstream-unreachable"


class ServiceUnavailable(Problem):
    status, title, slug = 503, "Service Unavailable", "service-unavailable"


class GatewayTimeout(Problem):
    status, title, slug = 504, "Gateway Timeout", "upstream-timeout"


def problem_response(
    *,
    status: int,
    title: str | None = None,
    detail: str | None = None,
    type_: str = "about:blank",
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
        "request_id": request_id_var.get(),
    }
    if extensions:
        body.update(extensions)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def render_problem(exc: Problem, instance: str | None) -> Response:
    return problem_response(
        status=exc.status,
        title=exc.title,
        detail=exc.detail,
        type_=exc.type,
        instance=instance,
        headers=exc.headers,
        extensions=exc.extensions,
    )


def _field_error(err: dict[str, Any]) -> dict[str, Any]:
    loc = list(err.get("loc", ()))
    where = loc[0] if loc else "body"
    msg = str(err.get("msg", "invalid"))
    if err.get("type") == "json_invalid":
        ctx = err.get("ctx") or {}
        return {"pointer": "#", "detail": f"malformed JSON: {ctx.get('error', msg)}"}
    if where == "body":
        path = "".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}" for p in loc[1:])
        return {"pointer": "#" + path, "detail": msg}
    name = ".".join(str(p) for p in loc[1:]) or str(where)
    return {"parameter": name, "in": where, "detail": msg}


# PostgreSQL data exceptions that only a client's value can cause here
UNSTORABLE = {
    "22021": "a text contains a character that cannot be stored (a NUL, say)",
    "22P05": "a text contains a character that cannot be stored",
    "22003": "a number is out of the range that can be stored or compared",
}


# PostgreSQL: connection exceptions (08), too many connections (53300), shutting down or starting (57P01-57P03)
UNAVAILABLE_SQLSTATES = ("08", "53300", "57P01", "57P02", "57P03")
UNAVAILABLE_DRIVER_ERRORS = {
    "ConnectionDoesNotExistError",
    "CannotConnectNowError",
    "TooManyConnectionsError",
    "ConnectionFailureError",
    "InterfaceError",
    "InternalClientError",  # a connection cut mid-operation (sqlalchemy/sqlalchemy#13241)
}


def database_unavailable(exc: BaseException) -> bool:
    """The database went away under the request, or refused it a connection (checked through the chain of causes,
    without importing the driver here)."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if getattr(seen, "connection_invalidated", False):  # SQLAlchemy found the connection broken and discarded it
            return True
        sqlstate = getattr(seen, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(UNAVAILABLE_SQLSTATES):
            return True
        if type(seen).__name__ in UNAVAILABLE_DRIVER_ERRORS and type(seen).__module__.startswith("asyncpg"):
            return True
        if isinstance(seen, ConnectionError | OSError) and not isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _pool_exhausted(exc: BaseException) -> bool:
    """SQLAlchemy's `TimeoutError`: no connection of the pool freed in time (without importing SQLAlchemy here)."""
    return type(exc).__name__ == "TimeoutError" and type(exc).__module__ == "sqlalchemy.exc"


def _unstorable(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(exc, "sqlstate", None)
    return UNSTORABLE.get(sqlstate) if isinstance(sqlstate, str) else None


def unexpected(exc: BaseException, method: str, path: str) -> Response:
    """The answer to an exception nothing else handled: a 422 when the database refused a value the client sent
    (nothing was written: the request's transaction is rolled back), else a 500 — logged with its trace, which
    never reaches the client."""
    if database_unavailable(exc):
        # the database went away or refuses connections (a restart, a failover, too many clients): the request's
        # transaction did not commit; the caller should retry shortly
        log.warning("database unavailable on %s %s: %s", method, path, exc.__cause__ or exc)
        return problem_response(
            status=503,
            title="Service Unavailable",
            detail="the database is not reachable for now; nothing was changed, retry after a few seconds",
            type_=PROBLEM_BASE + "database-unavailable",
            instance=path,
            headers={"Retry-After": "5"},
        )
    if _pool_exhausted(exc):
        # every database connection of this process is busy: the caller should come back shortly
        log.warning("busy on %s %s: %s", method, path, exc)
        return problem_response(
            status=503,
            title="Service Unavailable",
            detail="the service is busy; retry after a few seconds",
            type_=PROBLEM_BASE + "busy",
            instance=path,
            headers={"Retry-After": "5"},
        )
    unstorable = _unstorable(exc)
    if unstorable is not None:
        log.warning("refused a value on %s %s: %s", method, path, exc.__cause__ or exc)
        return problem_response(
            status=422,
            title="Request validation failed",
            detail=unstorable,
            type_=PROBLEM_BASE + "validation-error",
            instance=path,
        )
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return problem_response(
        status=500, detail="An unexpected error occurred; quote the request id when reporting it.", instance=path
    )


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return render_problem(exc, request.url.path)

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        phrase = HTTPStatus(exc.status_code).phrase
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
        if exc.status_code == 404 and detail is None:
            detail = f"no resource at {request.url.path}"
        if exc.status_code == 405 and detail is None:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem_response(
            status=exc.status_code,
            detail=detail,
            instance=request.url.path,
            headers=dict(exc.headers) if exc.headers else None,
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [_field_error(dict(e)) for e in exc.errors()]
        n = len(errors)
        return problem_response(
            status=422,
            title="Request validation failed",
            detail=f"{n} field{'s are' if n != 1 else ' is'} invalid",
            type_=PROBLEM_BASE + "validation-error",
            instance=request.url.path,
            extensions={"errors": errors},
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        return unexpected(exc, request.method, request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unexpected)
