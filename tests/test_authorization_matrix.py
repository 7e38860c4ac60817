"""Every role against every operation of every service, as the gateway would forward it: a caller without a
principal is refused everywhere (401); no answer is ever a 5xx; a funder writes nothing; an ICA's or a lender's key
writes only where its organization acts (the lists below, also in docs/api.md); the reporting service takes no
write from anyone.

Each operation is called with ids that exist nowhere and an empty JSON body: a role that may call it gets past
the role check (to a 404, a 409 or a 422), one that may not is refused (403) before anything is read. Reading
another organization's data is covered per service (an ICA or lender key gets 404 for others' resources)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import PRINCIPAL_HEADER, Principal, Role, mint_principal_token
from tests.conftest import INTERNAL_SECRET
from tests.support import service_app, wired

SERVICES = ("applications", "portfolio", "guarantees", "reporting")
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
# what an organization's key may write (method, path), per its role
ICA_WRITES = {
    ("POST", "/api/v1/applications/businesses"),
    ("PATCH", "/api/v1/applications/businesses/{business_id}"),
    ("POST", "/api/v1/applications/businesses/{business_id}/facts"),
    ("POST", "/api/v1/applications/applications"),
    ("PATCH", "/api/v1/applications/applications/{application_id}"),
    ("POST", "/api/v1/applications/applications/{application_id}/submit"),
    ("POST", "/api/v1/applications/applications/{application_id}/withdraw"),
    ("POST", "/api/v1/applications/applications/{application_id}/documents"),
    ("POST", "/api/v1/applications/businesses/{business_id}/documents"),
    ("POST", "/api/v1/applications/notifications/endpoints"),
    ("POST", "/api/v1/applications/notifications/deliveries/{delivery_id}/resend"),
    ("DELETE", "/api/v1/applications/notifications/endpoints/{endpoint_id}"),
}
# an application's moves: who may make each is the pipeline's transition matrix, checked on the application
# itself (tests/applications/test_transition_matrix.py covers every role × every move)
BY_TRANSITION = {
    ("POST", "/api/v1/applications/applications/{application_id}/return"),
    ("POST", "/api/v1/applications/applications/{application_id}/send-to-committee"),
}
LENDER_WRITES = {
    ("POST", "/api/v1/guarantees/claims"),
}


def headers(service: str, role: Role | None) -> dict[str, str]:
    if role is None:
        return {}
    org = uuid.uuid4() if role in (Role.ica, Role.lender) else None
    token = mint_principal_token(
        Principal(key_id=uuid.uuid4(), role=role, organization_id=org),
        secret=INTERNAL_SECRET,
        audience=service,
        ttl_seconds=600,
    )
    return {PRINCIPAL_HEADER: token}


def operations(app: Any) -> list[tuple[str, str]]:
    """Every operation the service documents under /api/v1 (its OpenAPI: what a partner can call)."""
    return [
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/api/v1/")
        for method in item
        if method.upper() in {"GET", *WRITES}
    ]


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "x" if m.group(0) == "{name}" else str(uuid.uuid4()), path)


@pytest.mark.parametrize("service", SERVICES)
async def test_every_role_against_every_operation(service: str, connection: AsyncConnection) -> None:
    # the reporting service's reconciliation asks the other services: here they answer, in this process
    app = wired(connection)[service] if service == "reporting" else service_app(service, connection)
    answers: dict[tuple[str, str], dict[str, int]] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{service}") as api:
        for method, path in operations(app):
            row = answers.setdefault((method, path), {})
            for role in (None, *Role):
                response = await api.request(
                    method,
                    concrete(path),
                    json={} if method in WRITES else None,
                    headers=headers(service, role),
                )
                row[role.value if role else "anonymous"] = response.status_code
    assert answers, "no operation found"
    five = {op: row for op, row in answers.items() if any(code >= 500 for code in row.values())}
    assert not five, f"5xx answers: {five}"
    anonymous = {op: row["anonymous"] for op, row in answers.items() if row["anonymous"] != 401}
    assert not anonymous, f"answered without a principal: {anonymous}"
    wrong = []
    for (method, path), row in answers.items():
        if method not in WRITES:
            continue
        if row["funder"] not in (403, 405):
            wrong.append(f"a funder may {method} {path}: {row['funder']}")
        reports = service == "reporting" and "/admin/events/" not in path  # event operations are the admin's
        if reports and not all(code in (401, 403, 405) for code in row.values()):
            wrong.append(f"reporting takes {method} {path}: {row}")
        for role, allowed in (("ica", ICA_WRITES), ("lender", LENDER_WRITES)):
            if (method, path) in BY_TRANSITION:
                continue
            if (row[role] == 403) == ((method, path) in allowed):
                wrong.append(f"{role} on {method} {path}: {row[role]}")
    assert not wrong, "\n".join(wrong)
