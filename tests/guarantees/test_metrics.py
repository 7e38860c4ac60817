"""The metrics as of a date: leverage follows the FX rates of that date, and a past date reads as it stood."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from services.guarantees.issuance.events import subscription
from shared.auth import Role
from shared.db import make_sessionmaker
from shared.peers import CadEquivalent
from tests.guarantees.conftest import MANAGER, as_role
from tests.guarantees.test_claims import Answer
from tests.guarantees.test_issuance import TODAY, new_loan, opened, setup
from tests.support import assert_problem, service_app

YESTERDAY = TODAY - timedelta(days=1)


class DatedPortfolio:
    """XOF at one rate until yesterday and another from today; each loan's outstanding per date."""

    def __init__(self) -> None:
        self.rates = {YESTERDAY: Decimal("0.0022"), TODAY: Decimal("0.0030")}
        self.outstanding: dict[str, dict[date, str]] = {}

    async def cad_equivalent(self, amount: Decimal, currency: str, on: date) -> CadEquivalent | None:
        if currency == "CAD":
            return CadEquivalent(amount, Decimal(1), on, False)
        if currency != "XOF":
            return None
        rate = self.rates[max(d for d in self.rates if d <= on)] if any(d <= on for d in self.rates) else None
        if rate is None:
            return None
        return CadEquivalent((amount * rate).quantize(Decimal("0.01")), rate, on, False)

    async def post(self, service: str, path: str, body: dict[str, Any]) -> Answer:
        on = date.fromisoformat(body["as_of"])
        loans = {
            i: {"currency": "XOF", "outstanding_principal": self.outstanding.get(i, {}).get(on, "0")}
            for i in body["loan_ids"]
        }
        return Answer({"as_of": body["as_of"], "loans": loans})


async def test_leverage_follows_the_rates_of_its_date_and_a_past_date_stands(connection: AsyncConnection) -> None:
    portfolio = DatedPortfolio()
    app = service_app("guarantees", connection)
    app.state.peers = portfolio
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guarantees") as api:
        lender = uuid.uuid4()
        body = {
            "kind": "contribution",
            "amount": {"amount": "1000000.00", "currency": "CAD"},
            "value_date": str(YESTERDAY),
        }
        assert (await api.post("/api/v1/guarantees/capital/entries", json=body, headers=MANAGER)).status_code == 201
        await setup(api, lender, capital="1000000.00")  # today's capital brought to exactly 1,000,000
        loan = new_loan(lender)
        yesterday = opened(loan, principal="20000000")
        yesterday = yesterday.model_copy(update={"occurred_at": yesterday.occurred_at - timedelta(days=1)})
        handler = subscription(portfolio).handler  # type: ignore[arg-type]
        async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
            await handler(session, yesterday)  # issued yesterday, at yesterday's rate
            await session.commit()
        portfolio.outstanding[loan["loan_id"]] = {TODAY: "20000000", YESTERDAY: "20000000"}
        today = (await api.get("/api/v1/guarantees/metrics", headers=as_role(Role.funder))).json()
        # 50 % × 20,000,000 XOF × 0.0030 = 30,000 CAD over 1,000,000 CAD of capital
        assert today["guaranteed_exposure_cad"] == "30000.00" and today["leverage"] == "0.030000"
        assert today["exposure_by_country_cad"] == {"SN": "30000.00"}
        assert today["utilisation_by_lender"][str(lender)]["utilisation"] == "0.020000"  # of 1,500,000
        portfolio.rates[TODAY] = Decimal("0.0033")  # the day's rate is corrected upwards
        again = (await api.get("/api/v1/guarantees/metrics", headers=MANAGER)).json()
        assert again["guaranteed_exposure_cad"] == "33000.00" and again["leverage"] == "0.033000"
        # yesterday reads as it stood, at yesterday's rate, whatever happened to today's
        past = (await api.get("/api/v1/guarantees/metrics", params={"as_of": str(YESTERDAY)}, headers=MANAGER)).json()
        assert past["guaranteed_exposure_cad"] == "22000.00"
        assert Decimal(past["leverage"]) == round(Decimal("22000") / Decimal(past["capital_available_cad"]), 6)
        assert past["recovery_rate"] is None and past["net_loss_rate"] == "0.000000"
        assert today["guarantees_issued_cad"] == "22000.00"  # at issue, at the rate of the opening day (0.0022)
        assert_problem(await api.get("/api/v1/guarantees/metrics", headers=as_role(Role.lender, lender)), 403)
