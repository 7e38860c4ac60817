"""The applications service's own count by status as of a date, which the reporting service reconciles with: from
its transitions, drafts left out, service token only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import SERVICE_HEADER, Role, mint_service_token
from tests.applications.conftest import FakePeers, act, as_role, draft, setup_ica
from tests.conftest import INTERNAL_SECRET
from tests.support import assert_problem

TOTALS = "/internal/applications/totals"


async def test_applications_by_status_as_of_a_date(
    api: httpx.AsyncClient, peers: FakePeers, connection: AsyncConnection
) -> None:
    # other tests' processes may have committed applications: the count here is this test's alone (rolled back)
    await connection.execute(text("DELETE FROM applications.application_transitions"))
    ica, business = await setup_ica(api)
    analyst = as_role(Role.analyst)
    await draft(api, ica, business)  # a draft: nobody else's business yet
    reviewed, returned, withdrawn = [await draft(api, ica, business) for _ in range(3)]
    for application in (reviewed, returned, withdrawn):
        assert (await act(api, application["id"], "submit", ica.headers)).status_code == 200
    assert (await act(api, returned["id"], "return", analyst, comment="the 2025 accounts, please")).status_code == 200
    assert (await act(api, withdrawn["id"], "withdraw", ica.headers, comment="financed elsewhere")).status_code == 200

    token = {SERVICE_HEADER: mint_service_token("reporting", secret=INTERNAL_SECRET, audience="applications")}
    today = datetime.now(UTC).date()
    now = (await api.get(TOTALS, params={"as_of": str(today)}, headers=token)).json()
    assert now == {
        "as_of": str(today),
        "applications": 3,
        "by_status": {"returned": 1, "under_review": 1, "withdrawn": 1},
    }
    yesterday = (await api.get(TOTALS, params={"as_of": str(today - timedelta(days=1))}, headers=token)).json()
    assert (yesterday["applications"], yesterday["by_status"]) == (0, {})
    assert_problem(await api.get(TOTALS, params={"as_of": str(today)}, headers=analyst), 401)
