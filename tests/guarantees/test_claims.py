"""Claims: within the rules (active guarantee, days past due per the portfolio, deadline), maker–checker, and a
payout equal to the formula to the cent, shown in the capital ledger."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
from dateutil.relativedelta import relativedelta
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Role
from tests.guarantees.conftest import MANAGER, as_role, set_capital
from tests.guarantees.test_issuance import TODAY, apply, loan_event, new_loan, opened, setup
from tests.guarantees.test_room import FakeFx
from tests.support import assert_problem, service_app

CLAIMS = "/api/v1/guarantees/claims"


class Answer:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def json(self) -> dict[str, Any]:
        return self.body


class FakePortfolio(FakeFx):
    """The portfolio's FX and its loans' default facts, as the contracts say."""

    def __init__(self) -> None:
        self.defaults: dict[str, dict[str, Any]] = {}

    async def get(self, service: str, path: str, params: dict[str, str], *, problem_404: bool = False) -> Answer:
        assert service == "portfolio" and path.endswith("/default") and params["trigger_dpd"] == "90"
        return Answer(self.defaults[path.split("/")[3]])


def default(dpd: int, on: Any, outstanding: str) -> dict[str, Any]:
    return {"days_past_due": dpd, "default_date": on.isoformat() if on else None, "outstanding_on_default": outstanding}


async def test_a_claim_within_the_rules_is_paid_by_a_second_staff_member(connection: AsyncConnection) -> None:
    portfolio = FakePortfolio()
    app = service_app("guarantees", connection)
    app.state.peers = portfolio
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guarantees") as api:
        lender = uuid.uuid4()
        await setup(api, lender, capital="1000000.00")
        loan = new_loan(lender)
        await apply(connection, opened(loan, principal="12000000"))
        as_lender = as_role(Role.lender, lender)
        body = {"loan_id": loan["loan_id"], "documents": [{"name": "demand letter.pdf", "kind": "demand_letter"}]}

        portfolio.defaults[loan["loan_id"]] = default(60, None, "0")
        below = assert_problem(await api.post(CLAIMS, json=body, headers=as_lender), 409)
        assert below["type"] == "/problems/below-claim-trigger" and below["days_past_due"] == 60
        late = TODAY - relativedelta(months=12) - timedelta(days=1)
        portfolio.defaults[loan["loan_id"]] = default(500, late, "12000000")
        assert assert_problem(await api.post(CLAIMS, json=body, headers=as_lender), 409)["type"] == (
            "/problems/claim-deadline-past"
        )
        assert_problem(await api.post(CLAIMS, json=body, headers=as_role(Role.lender, uuid.uuid4())), 404)
        assert_problem(await api.post(CLAIMS, json=body, headers=MANAGER), 403)  # lenders file

        portfolio.defaults[loan["loan_id"]] = default(120, TODAY - timedelta(days=30), "12000000")
        filed = await api.post(CLAIMS, json=body, headers=as_lender)
        assert filed.status_code == 201, filed.text
        claim = filed.json()
        # payout = min(50 % × 12,000,000 XOF × (1.4712 / 655.957) CAD, 125,000) = 13,456.98 CAD
        assert claim["payout"] == {"amount": "13456.98", "currency": "CAD"} and claim["status"] == "filed"
        assert claim["amount_in_default"] == {"amount": "12000000", "currency": "XOF"}
        again = await api.post(CLAIMS, json=body, headers=as_lender)
        assert assert_problem(again, 409)["type"] == "/problems/guarantee-not-active"  # it is called now

        url = f"{CLAIMS}/{claim['id']}"
        assert (await api.post(f"{url}/validate", json={}, headers=MANAGER)).status_code == 200
        assert_problem(await api.post(f"{url}/approve-payment", json={}, headers=MANAGER), 403)  # maker–checker
        assert_problem(await api.post(f"{url}/approve-payment", json={}, headers=as_lender), 403)
        checker = as_role(Role.fund_manager)
        paid = await api.post(f"{url}/approve-payment", json={}, headers=checker)
        assert paid.status_code == 200 and paid.json()["status"] == "paid"
        assert [h["to_status"] for h in paid.json()["history"]] == ["filed", "validated", "paid"]
        ledger = (
            await api.get("/api/v1/guarantees/capital/entries", params={"kind": "claim_paid"}, headers=MANAGER)
        ).json()
        assert [e["amount"]["amount"] for e in ledger["items"] if e["reference"] == f"claim {claim['id']}"] == [
            "-13456.98"
        ]
        capital = (await api.get("/api/v1/guarantees/capital", params={"as_of": str(TODAY)}, headers=MANAGER)).json()
        assert Decimal(capital["capital_available"]["amount"]) == Decimal("1000000.00") - Decimal("13456.98")
        assert (await api.get(url, headers=as_role(Role.lender, uuid.uuid4()))).status_code == 404
        assert [c["id"] for c in (await api.get(CLAIMS, headers=as_lender)).json()] == [claim["id"]]


async def test_a_rejected_claim_leaves_the_guarantee_active(connection: AsyncConnection) -> None:
    portfolio = FakePortfolio()
    app = service_app("guarantees", connection)
    app.state.peers = portfolio
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guarantees") as api:
        lender = uuid.uuid4()
        await setup(api, lender)
        await set_capital(api, "1000000.00")
        loan = new_loan(lender)
        await apply(connection, opened(loan, principal="12000000"))
        portfolio.defaults[loan["loan_id"]] = default(95, TODAY - timedelta(days=5), "11000000")
        body = {"loan_id": loan["loan_id"], "documents": [{"name": "statement.pdf", "kind": "loan_statement"}]}
        claim = (await api.post(CLAIMS, json=body, headers=as_role(Role.lender, lender))).json()
        rejected = await api.post(
            f"{CLAIMS}/{claim['id']}/reject", json={"reason": "collateral not yet realised"}, headers=MANAGER
        )
        assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
        assert_problem(await api.post(f"{CLAIMS}/{claim['id']}/validate", json={}, headers=MANAGER), 409)
        guarantees = (await api.get("/api/v1/guarantees/guarantees", headers=MANAGER)).json()
        assert next(g for g in guarantees if g["loan_id"] == loan["loan_id"])["status"] == "active"


async def test_recoveries_are_shared_until_the_payout_is_recouped_and_never_beyond(connection: AsyncConnection) -> None:
    portfolio = FakePortfolio()
    app = service_app("guarantees", connection)
    app.state.peers = portfolio
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guarantees") as api:
        lender = uuid.uuid4()
        await setup(api, lender, capital="1000000.00")
        loan = new_loan(lender)
        await apply(connection, opened(loan, principal="12000000"))
        portfolio.defaults[loan["loan_id"]] = default(120, TODAY - timedelta(days=30), "12000000")
        body = {"loan_id": loan["loan_id"], "documents": [{"name": "demand.pdf", "kind": "demand_letter"}]}
        claim = (await api.post(CLAIMS, json=body, headers=as_role(Role.lender, lender))).json()
        url = f"{CLAIMS}/{claim['id']}"
        early = {"amount": {"amount": "1000", "currency": "XOF"}, "value_date": str(TODAY), "reference": "R0"}
        assert_problem(await api.post(f"{url}/recoveries", json=early, headers=MANAGER), 409)  # not paid yet
        await api.post(f"{url}/validate", json={}, headers=MANAGER)
        await api.post(f"{url}/approve-payment", json={}, headers=as_role(Role.fund_manager))  # payout 13,456.98

        # the lender pushes a recovery of 10,000,000 XOF: the fund's share is 50 % of it in CAD = 11,214.15
        event = loan_event(
            "loan.recovery_received",
            loan,
            outstanding_principal="0",
            transaction_id=str(uuid.uuid4()),
            external_id="REC-1",
            amount="10000000",
            value_date=str(TODAY),
            allocation={k: "0" for k in ("penalties", "fees", "interest", "principal", "credit", "recovered")},
            split={"lender": "10000000"},
        )
        await apply(connection, event)
        await apply(connection, event)  # delivered twice: shared once
        second = {"amount": {"amount": "10000000", "currency": "XOF"}, "value_date": str(TODAY), "reference": "R2"}
        capped = (await api.post(f"{url}/recoveries", json=second, headers=MANAGER)).json()
        # only what is left of the payout: 13,456.98 − 11,214.15 = 2,242.83
        assert capped["fund_share"]["amount"] == "2242.83" and capped["recouped"] == capped["payout"]
        third = {**second, "reference": "R3"}
        beyond = (await api.post(f"{url}/recoveries", json=third, headers=MANAGER)).json()
        assert beyond["fund_share"]["amount"] == "0.00" and beyond["recouped"]["amount"] == "13456.98"
        ledger = (
            await api.get("/api/v1/guarantees/capital/entries", params={"kind": "recovery"}, headers=MANAGER)
        ).json()
        mine = [e["amount"]["amount"] for e in ledger["items"] if e["reference"] == f"claim {claim['id']}"]
        assert sorted(mine) == ["11214.15", "2242.83"]
