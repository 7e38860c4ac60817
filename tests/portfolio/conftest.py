"""Fixtures of the portfolio service's tests: the app on the test transaction, principals as the gateway sends them."""

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
    # module-level headers (ADMIN, MANAGER) live for the whole run: an hour, not the gateway's two minutes
    token = mint_principal_token(principal, secret=INTERNAL_SECRET, audience="portfolio", ttl_seconds=3600)
    return {PRINCIPAL_HEADER: token}


ADMIN = as_role(Role.admin)


@pytest.fixture
async def api(connection: AsyncConnection) -> AsyncIterator[httpx.AsyncClient]:
    app = service_app("portfolio", connection)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portfolio") as client:
        yield client
