"""Fixtures of the guarantees service's tests: the app on the test transaction, principals as the gateway sends them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import PRINCIPAL_HEADER, Principal, Role, mint_principal_token
from tests.conftest import INTERNAL_SECRET
from tests.support import service_app


def as_role(role: Role, org: uuid.UUID | None = None) -> dict[str, str]:
    principal = Principal(key_id=uuid.uuid4(), role=role, organization_id=org)
    return {PRINCIPAL_HEADER: mint_principal_token(principal, secret=INTERNAL_SECRET, audience="guarantees")}


ADMIN = as_role(Role.admin)
MANAGER = as_role(Role.fund_manager)


@pytest.fixture
async def api(connection: AsyncConnection) -> AsyncIterator[httpx.AsyncClient]:
    app = service_app("guarantees", connection)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guarantees") as client:
        yield client
