from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from services.applications.pipeline.peers import CadEquivalent, GuaranteeRoom
from shared.auth import PRINCIPAL_HEADER, Principal, Role, mint_principal_token
from shared.problems import ServiceUnavailable
from tests.conftest import INTERNAL_SECRET
from tests.support import service_app

Headers = Callable[..., dict[str, str]]


def as_role(
    role: Role, organization_id: uuid.UUID | None = None, key_id: uuid.UUID | None = None, holder: str | None = None
) -> dict[str, str]:
    """Headers of a request the gateway authenticated for this role (a fresh API key each call unless given)."""
    principal = Principal(key_id=key_id or uuid.uuid4(), role=role, organization_id=organization_id, holder=holder)
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


APPS = "/api/v1/applications/applications"
LENDER = uuid.UUID("0b7f2c1e-8f4a-4c55-9d1e-5a6b7c8d9e0f")
CAD_PER = {"XOF": Decimal("0.0021"), "USD": Decimal("1.40"), "HTG": Decimal("0.0106")}


@dataclass
class FakePeers:
    """The contracts of the portfolio (FX) and guarantees (room) services, as screening calls them."""

    room: bool = True
    reachable: bool = True
    calls: list[str] = field(default_factory=list)

    async def cad_equivalent(self, amount: Decimal, currency: str, on: date) -> CadEquivalent | None:
        self.calls.append(f"fx {currency}")
        if not self.reachable:
            raise ServiceUnavailable("portfolio did not answer")
        rate = CAD_PER.get(currency)
        if rate is None:
            return None
        return CadEquivalent(amount_cad=amount * rate, rate=rate, rate_date=on, stale=False)

    async def guarantee_room(self, **kw: Any) -> GuaranteeRoom:
        self.calls.append("room")
        if not self.reachable:
            raise ServiceUnavailable("guarantees did not answer")
        return GuaranteeRoom(room=self.room, reason=None if self.room else "facility ceiling of CAD 2,000,000 reached")


@pytest.fixture
def peers(api: httpx.AsyncClient) -> FakePeers:
    fake = FakePeers()
    api._transport.app.state.peers = fake  # type: ignore[attr-defined]
    return fake


@dataclass
class Ica:
    id: uuid.UUID
    key: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def headers(self) -> dict[str, str]:
        return as_role(Role.ica, self.id, key_id=self.key)


async def setup_ica(api: httpx.AsyncClient, **business: Any) -> tuple[Ica, str]:
    ica = Ica(await new_ica(api))
    created = await api.post("/api/v1/applications/businesses", json=business_body(**business), headers=ica.headers)
    assert created.status_code == 201, created.text
    return ica, created.json()["id"]


def application_body(business_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "business_id": business_id,
        "requested": {"amount": "15000000", "currency": "XOF"},
        "term_months": 24,
        "purpose": "equipment",
        "instruments": ["co_financing", "guarantee"],
        "lender_id": str(LENDER),
        "lender_share_pct": "60",
        "support_plan": "Monthly visits by the ICA's agronomist; bookkeeping training for the board.",
    }
    body.update(overrides)
    return body


async def draft(api: httpx.AsyncClient, ica: Ica, business_id: str, **overrides: Any) -> dict[str, Any]:
    response = await api.post(APPS, json=application_body(business_id, **overrides), headers=ica.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def act(api: httpx.AsyncClient, app_id: str, action: str, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await api.post(f"{APPS}/{app_id}/{action}", json=body, headers=headers)
