"""Expiry: a guarantee whose loan defaulted and whose claim deadline passed with no claim is expired — on the day
after the deadline, not on it — leaves the exposure, and can no longer be claimed; a cured loan's is untouched."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from dateutil.relativedelta import relativedelta
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Role
from tests.guarantees.conftest import MANAGER, as_role
from tests.guarantees.test_claims import Answer, FakePortfolio, default
from tests.guarantees.test_issuance import TODAY, announced, apply, guarantee, loan_event, new_loan, opened, setup
from tests.support import assert_problem, service_app

EXPIRY = "/api/v1/guarantees/admin/expiry"


class Portfolio(FakePortfolio):
    """Loans this test does not know (another test's, committed) are not in default."""

    async def get(self, service: str, path: str, params: dict[str, str], *, problem_404: bool = False) -> Answer:
        self.asked.append(path.split("/")[3])
        if path.split("/")[3] not in self.defaults:
            return Answer(default(0, None, "0"))
        return await super().get(service, path, params)

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []


def in_arrears(loan: dict[str, Any], since: Any, on: Any, event: str = "loan.in_arrears") -> Any:
    dpd = (on - since).days
    return loan_event(
        event, loan, outstanding_principal="12000000", as_of=str(on), days_past_due=dpd, bucket="x", policy_version=1
    )


async def test_a_guarantee_expires_the_day_after_its_claim_deadline(connection: AsyncConnection) -> None:
    portfolio = Portfolio()
    app = service_app("guarantees", connection)
    app.state.peers = portfolio
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guarantees") as api:
        lender = uuid.uuid4()
        await setup(api, lender)
        lapsed, on_deadline, cured = new_loan(lender), new_loan(lender), new_loan(lender)
        for loan in (lapsed, on_deadline, cured):
            await apply(connection, opened(loan, principal="12000000"))
            await apply(connection, loan_event("loan.disbursed", loan, outstanding_principal="12000000"))
        # overdue since 16 months: the default (90 days past due) 13 months ago, the deadline 12 months after it
        since = TODAY - relativedelta(months=16)
        for loan in (lapsed, on_deadline, cured):
            await apply(connection, in_arrears(loan, since, since + timedelta(days=1)))
            await apply(connection, in_arrears(loan, since, since + timedelta(days=90), "loan.defaulted"))
        await apply(
            connection,
            loan_event(
                "loan.cured",
                cured,
                outstanding_principal="9000000",
                as_of=str(TODAY),
                days_past_due=0,
                bucket="current",
                policy_version=1,
            ),
        )
        assert (await guarantee(connection, lapsed)).overdue_since == since
        assert (await guarantee(connection, cured)).overdue_since is None
        deadline_yesterday = TODAY - relativedelta(months=12) - timedelta(days=1)
        portfolio.defaults[lapsed["loan_id"]] = default(400, deadline_yesterday, "12000000")
        portfolio.defaults[on_deadline["loan_id"]] = default(400, TODAY - relativedelta(months=12), "12000000")

        assert_problem(await api.post(EXPIRY, json={}, headers=as_role(Role.lender, lender)), 403)
        assert_problem(await api.post(EXPIRY, json={"on": "yesterday"}, headers=MANAGER), 422)
        assert (await guarantee(connection, lapsed)).status == "active"  # refused calls changed nothing

        ran = await api.post(EXPIRY, json={"on": str(TODAY)}, headers=MANAGER)
        assert ran.status_code == 200, ran.text
        assert ran.json() == [
            {
                "guarantee_id": str((await guarantee(connection, lapsed)).id),
                "loan_id": lapsed["loan_id"],
                "default_date": str(deadline_yesterday),
                "claim_deadline": str(TODAY - timedelta(days=1)),
            }
        ]
        assert cured["loan_id"] not in portfolio.asked  # a cured loan's guarantee is not even looked at
        g = await guarantee(connection, lapsed)
        assert (g.status, g.expired_on) == ("expired", TODAY)
        assert (await guarantee(connection, on_deadline)).status == "active"  # its deadline is today: still claimable
        listed = (await api.get(f"/api/v1/guarantees/guarantees/{g.id}", headers=MANAGER)).json()
        assert listed["status"] == "expired" and listed["exposure_cad"]["amount"] == "0.00"

        body = {"loan_id": lapsed["loan_id"], "documents": [{"name": "demand.pdf", "kind": "demand_letter"}]}
        refused = assert_problem(
            await api.post("/api/v1/guarantees/claims", json=body, headers=as_role(Role.lender, lender)), 409
        )
        assert refused["type"] == "/problems/guarantee-not-active"

        again = await api.post(EXPIRY, json={"on": str(TODAY)}, headers=MANAGER)
        assert again.json() == []  # idempotent
        tomorrow = await api.post(EXPIRY, json={"on": str(TODAY + timedelta(days=1))}, headers=MANAGER)
        assert [e["loan_id"] for e in tomorrow.json()] == [on_deadline["loan_id"]]
    assert (await announced(connection)).count("guarantee.expired") == 2
