"""Fixtures of the guarantees service's tests: the app on the test transaction, principals as the gateway sends them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import PRINCIPAL_HEADER, Principal, Role, mint_principal_token
from tests.conftest import INTERNAL_SECRET
from tests.support import service_app


def as_role(role: Role, org: uuid.UUID | None = None) -> dict[str, str]:
    principal = Principal(key_id=uuid.uuid4(), role=role, organization_id=org)
    # module-level headers (ADMIN, MANAGER) live for the whole run: an hour, not the gateway's two minutes
    token = mint_principal_token(principal, secret=INTERNAL_SECRET, audience="guarantees", ttl_seconds=3600)
    return {PRINCIPAL_HEADER: token}


ADMIN = as_role(Role.admin)
MANAGER = as_role(Role.fund_manager)


@pytest.fixture
async def api(connection: AsyncConnection) -> AsyncIterator[httpx.AsyncClient]:
    app = service_app("guarantees", connection)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guarantees") as client:
        yield client


async def set_capital(api: httpx.AsyncClient, amount: str) -> None:
    """Brings today's capital available to exactly `amount` (other tests may have committed contributions)."""
    today = datetime.now(UTC).date()
    now = (await api.get("/api/v1/guarantees/capital", params={"as_of": str(today)}, headers=MANAGER)).json()
    difference = Decimal(amount) - Decimal(now["capital_available"]["amount"])
    if difference:
        body = {
            "kind": "adjustment",
            "amount": {"amount": str(difference), "currency": "CAD"},
            "value_date": str(today),
            "comment": "test baseline",
        }
        assert (await api.post("/api/v1/guarantees/capital/entries", json=body, headers=MANAGER)).status_code == 201
