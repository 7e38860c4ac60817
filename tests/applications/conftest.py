from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import PRINCIPAL_HEADER, Principal, Role, mint_principal_token
from tests.conftest import INTERNAL_SECRET
from tests.support import service_app

Headers = Callable[..., dict[str, str]]


def as_role(role: Role, organization_id: uuid.UUID | None = None, key_id: uuid.UUID | None = None) -> dict[str, str]:
    """Headers of a request the gateway authenticated for this role (a fresh API key each call unless given)."""
    principal = Principal(key_id=key_id or uuid.uuid4(), role=role, organization_id=organization_id)
    return {PRINCIPAL_HEADER: mint_principal_token(principal, secret=INTERNAL_SECRET, audience="applications")}


@pytest.fixture
async def api(connection: AsyncConnection) -> AsyncIterator[httpx.AsyncClient]:
    app = service_app("applications", connection)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://applications") as client:
        yield client


PROFILE: dict[str, Any] = {
    "reported_on": "2026-06-30",
    "members_total": 412,
    "members_women": 268,
    "board_seats_total": 9,
    "board_seats_women": 5,
    "employees_total": 14,
    "employees_women": 6,
    "senior_managers_total": 3,
    "senior_managers_women": 2,
    "general_assembly_last_12_months": True,
    "board_elected_by_members": True,
    "one_member_one_vote": True,
    "environmental_practices": ["agroforestry"],
}


def business_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Coopérative des productrices de karité de Thiès",
        "legal_form": "cooperative",
        "country": "SN",
        "sector": "agriculture: shea butter",
        "year_founded": 2014,
        "profile": dict(PROFILE),
    }
    body.update(overrides)
    return body


async def new_ica(api: httpx.AsyncClient, name: str | None = None) -> uuid.UUID:
    response = await api.post(
        "/api/v1/applications/icas", json={"name": name or f"ICA {uuid.uuid4().hex[:6]}"}, headers=as_role(Role.admin)
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])
