"""What every service gets from the kernel: problems for every error, request ids, readiness, JSON logs."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import uuid
from collections.abc import Iterator

import httpx
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.auth import PRINCIPAL_HEADER, Principal, Role, ensure_same_organization, mint_principal_token, require_roles
from shared.logging import _ContextFilter
from shared.money import Money
from shared.problems import Conflict
from tests.conftest import INTERNAL_SECRET
from tests.support import assert_problem, service_app

ICA = uuid.UUID("11111111-1111-4111-8111-111111111111")


class Payment(BaseModel):
    reference: str
    paid: Money


def token(role: Role, org: uuid.UUID | None = None, audience: str = "applications") -> dict[str, str]:
    principal = Principal(key_id=uuid.uuid4(), role=role, organization_id=org)
    return {PRINCIPAL_HEADER: mint_principal_token(principal, secret=INTERNAL_SECRET, audience=audience)}


def kernel_app(engine: AsyncEngine) -> FastAPI:
    app = service_app("applications", engine)
    router = APIRouter(prefix="/api/v1/applications/kernel")

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2 SELECT * FROM secrets")

    @router.get("/conflict")
    async def conflict() -> None:
        raise Conflict("application is approved; allowed moves: none", current_state="approved")

    @router.post("/payments", dependencies=[require_roles(Role.admin, Role.fund_manager)])
    async def pay(payment: Payment) -> Payment:
        return payment

    @router.get("/organizations/{org_id}")
    async def organization(org_id: uuid.UUID, principal: Principal = require_roles(*Role)) -> dict[str, str]:
        ensure_same_organization(principal, org_id)
        return {"organization": str(org_id)}

    app.include_router(router)
    return app


async def call(app: FastAPI, method: str, path: str, **kw: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        return await client.request(method, path, **kw)  # type: ignore[arg-type]


async def test_an_unexpected_error_is_a_500_problem_without_internals(engine: AsyncEngine) -> None:
    response = await call(
        kernel_app(engine), "GET", "/api/v1/applications/kernel/boom", headers={"X-Request-ID": "rid-1"}
    )
    body = assert_problem(response, 500)
    assert body["request_id"] == "rid-1"
    assert "hunter2" not in response.text and "SELECT" not in response.text and "RuntimeError" not in response.text


async def test_a_business_conflict_is_a_409_with_its_extensions(engine: AsyncEngine) -> None:
    body = assert_problem(await call(kernel_app(engine), "GET", "/api/v1/applications/kernel/conflict"), 409)
    assert body["current_state"] == "approved" and body["type"] == "/problems/conflict"


async def test_money_with_too_many_decimals_is_a_422_with_a_pointer(engine: AsyncEngine) -> None:
    app = kernel_app(engine)
    headers = token(Role.fund_manager)
    ok = await call(
        app,
        "POST",
        "/api/v1/applications/kernel/payments",
        json={"reference": "r1", "paid": {"amount": "10.50", "currency": "CAD"}},
        headers=headers,
    )
    assert ok.status_code == 200 and ok.json()["paid"] == {"amount": "10.50", "currency": "CAD"}
    for amount, currency in (("10.005", "CAD"), ("10.5", "XOF")):
        bad = await call(
            app,
            "POST",
            "/api/v1/applications/kernel/payments",
            json={"reference": "r1", "paid": {"amount": amount, "currency": currency}},
            headers=headers,
        )
        body = assert_problem(bad, 422)
        assert body["errors"][0]["pointer"] == "#/paid"
        assert "decimal place" in body["errors"][0]["detail"]
    missing = await call(app, "POST", "/api/v1/applications/kernel/payments", json={"paid": {}}, headers=headers)
    pointers = {e["pointer"] for e in assert_problem(missing, 422)["errors"]}
    assert {"#/reference", "#/paid/amount", "#/paid/currency"} <= pointers


async def test_roles_and_organizations_are_enforced(engine: AsyncEngine) -> None:
    app = kernel_app(engine)
    pay = {"reference": "r", "paid": {"amount": "1.00", "currency": "CAD"}}
    assert_problem(
        await call(app, "POST", "/api/v1/applications/kernel/payments", json=pay, headers=token(Role.ica, ICA)), 403
    )
    assert_problem(await call(app, "POST", "/api/v1/applications/kernel/payments", json=pay), 401)
    own = await call(app, "GET", f"/api/v1/applications/kernel/organizations/{ICA}", headers=token(Role.ica, ICA))
    assert own.status_code == 200
    other = await call(
        app, "GET", f"/api/v1/applications/kernel/organizations/{uuid.uuid4()}", headers=token(Role.ica, ICA)
    )
    assert_problem(other, 403)
    staff = await call(app, "GET", f"/api/v1/applications/kernel/organizations/{ICA}", headers=token(Role.analyst))
    assert staff.status_code == 200


async def test_framework_errors_are_problems_too(engine: AsyncEngine) -> None:
    app = kernel_app(engine)
    assert_problem(await call(app, "GET", "/api/v1/applications/nothing-here"), 404)
    assert_problem(await call(app, "DELETE", "/api/v1/applications/kernel/boom"), 405)


async def test_readyz_says_when_migrations_are_not_at_head(engine: AsyncEngine) -> None:
    app = kernel_app(engine)
    ready = await call(app, "GET", "/readyz")
    assert ready.status_code == 200 and ready.json()["migration"]["current"] == ready.json()["migration"]["head"]
    app.state.head_revision = "9999"
    pending = await call(app, "GET", "/readyz")
    assert pending.status_code == 503 and pending.json()["status"] == "migrations pending"
    assert (await call(app, "GET", "/healthz")).json() == {"status": "ok", "service": "applications"}


async def test_every_log_line_of_a_request_carries_its_request_id(engine: AsyncEngine) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(_ContextFilter("applications"))
    handler.setFormatter(logging.Formatter("%(request_id)s|%(name)s|%(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        await call(kernel_app(engine), "GET", "/api/v1/applications/kernel/boom", headers={"X-Request-ID": "trace-77"})
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    # the test client's own line (httpx) is written outside the request
    lines = [line for line in stream.getvalue().splitlines() if "|" in line and "|httpx|" not in line]
    assert any("unhandled error" in line for line in lines)
    assert any(line.split("|")[1] == "access" for line in lines)
    assert all(line.startswith("trace-77|") for line in lines if not line.startswith(" ")), lines


@contextlib.contextmanager
def json_logs(service: str) -> Iterator[io.StringIO]:
    """The service's JSON logging configured, its lines written to the stream answered; the root logger restored
    after."""
    from shared import logging as shared_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        shared_logging.configure_logging(service, "INFO")
        listener = shared_logging._listener
        assert listener is not None
        listener.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        yield stream
    finally:
        shared_logging.stop_logging()
        root.handlers[:], root.level = saved[0], saved[1]


def test_json_log_lines_parse_and_carry_the_request_id() -> None:
    from shared import logging as shared_logging

    with json_logs("portfolio") as stream:
        token_ = shared_logging.request_id_var.set("abc123")
        logging.getLogger("portfolio.test").info("repayment applied", extra={"loan_id": "L-1"})
        shared_logging.request_id_var.reset(token_)
        shared_logging.stop_logging()  # drains the queue
        line = json.loads(stream.getvalue().splitlines()[-1])
        assert line["request_id"] == "abc123" and line["service"] == "portfolio" and line["loan_id"] == "L-1"
        assert line["message"] == "repayment applied" and line["level"] == "INFO"


def test_the_log_writer_writes_every_line_in_order_while_running() -> None:
    """Lines are handed over without waking the writer; it still writes each one, in order, on its own."""
    with json_logs("gateway") as stream:
        for n in range(2000):
            logging.getLogger("access").info("POST /webhooks/lenders/x 202", extra={"n": n})
        deadline = time.monotonic() + 10
        while stream.getvalue().count("\n") < 2000 and time.monotonic() < deadline:
            time.sleep(0.01)  # written by the writer thread, not by stopping it
        numbers = [json.loads(line)["n"] for line in stream.getvalue().splitlines()]
        assert numbers == list(range(2000))
