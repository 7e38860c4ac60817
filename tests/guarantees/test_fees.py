"""Guarantee fees on a worked quarter: the formula to the unit, invoiced once, paid into the capital ledger."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from services.guarantees.fees.router import daily_sum
from shared.auth import Role
from tests.guarantees.conftest import MANAGER, as_role
from tests.guarantees.test_claims import Answer
from tests.guarantees.test_issuance import apply, new_loan, opened
from tests.guarantees.test_room import RATES, FakeFx
from tests.support import assert_problem, service_app

FEES = "/api/v1/guarantees/fees/invoices"


class HistoryPortfolio(FakeFx):
    def __init__(self) -> None:
        self.steps: dict[str, list[list[str]]] = {}

    async def post(self, service: str, path: str, body: dict[str, Any]) -> Answer:
        assert path == "/internal/loans/outstanding-history" and (body["from"], body["to"]) == (
            "2026-04-01",
            "2026-06-30",
        )
        return Answer({"loans": {i: {"currency": "XOF", "steps": self.steps.get(i, [])} for i in body["loan_ids"]}})


def test_daily_sums_of_a_step_function() -> None:
    from datetime import date

    steps = [["2026-04-01", "12000000"], ["2026-05-16", "6000000"]]
    assert daily_sum(steps, date(2026, 4, 1), date(2026, 6, 30)) == (Decimal(12000000 * 45 + 6000000 * 46), 91)
    assert daily_sum(steps, date(2026, 5, 1), date(2026, 5, 31)) == (Decimal(12000000 * 15 + 6000000 * 16), 31)


async def test_a_worked_quarter_is_invoiced_once_and_paid_into_the_ledger(connection: AsyncConnection) -> None:
    portfolio = HistoryPortfolio()
    app = service_app("guarantees", connection)
    app.state.peers = portfolio
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guarantees") as api:
        lender = uuid.uuid4()
        facility = {
            "lender_id": str(lender),
            "ceiling": {"amount": "1500000.00", "currency": "CAD"},
            "max_cover_per_loan": {"amount": "125000.00", "currency": "CAD"},
            "valid_from": "2026-01-01",
            "valid_to": "2028-12-31",
        }  # coverage 50 %, fee 1.5 % a year: the policy's defaults
        assert (await api.post("/api/v1/guarantees/facilities", json=facility, headers=MANAGER)).status_code == 201
        capital = {
            "kind": "contribution",
            "amount": {"amount": "1000000.00", "currency": "CAD"},
            "value_date": "2026-01-02",
        }
        assert (await api.post("/api/v1/guarantees/capital/entries", json=capital, headers=MANAGER)).status_code == 201
        loan = new_loan(lender)
        event = opened(loan, principal="12000000")
        await apply(connection, event.model_copy(update={"occurred_at": datetime(2026, 3, 15, tzinfo=UTC)}))
        # 12,000,000 XOF outstanding from April 1; 6,000,000 from May 16 (a repayment)
        portfolio.steps[loan["loan_id"]] = [["2026-04-01", "12000000"], ["2026-05-16", "6000000"]]
        assert_problem(await api.post(FEES, json={"quarter": "2099-Q1"}, headers=MANAGER), 422)
        run = await api.post(FEES, json={"quarter": "2026-Q2"}, headers=MANAGER)
        assert run.status_code == 201, run.text
        (invoice,) = [i for i in run.json() if i["lender_id"] == str(lender)]
        # (12,000,000 × 45 + 6,000,000 × 46) XOF-days × 50 % × 1.5 % ÷ 365 = 16,767.12 → 16,767 XOF
        assert invoice["amount"] == {"amount": "16767", "currency": "XOF"}
        assert invoice["lines"][0]["days"] == 91 and invoice["status"] == "unpaid"
        again = await api.post(FEES, json={"quarter": "2026-Q2"}, headers=MANAGER)
        assert again.status_code == 201 and [i for i in again.json() if i["lender_id"] == str(lender)] == []
        mine = (await api.get(FEES, headers=as_role(Role.lender, lender))).json()
        assert [i["id"] for i in mine] == [invoice["id"]]
        assert (await api.get(FEES, headers=as_role(Role.lender, uuid.uuid4()))).json() == []
        assert_problem(await api.post(FEES, json={"quarter": "2026-Q2"}, headers=as_role(Role.lender, lender)), 403)
        paid = await api.post(f"{FEES}/{invoice['id']}/paid", json={}, headers=MANAGER)
        assert paid.status_code == 200 and paid.json()["status"] == "paid"
        assert_problem(await api.post(f"{FEES}/{invoice['id']}/paid", json={}, headers=MANAGER), 409)
        ledger = (
            await api.get("/api/v1/guarantees/capital/entries", params={"kind": "fee_income"}, headers=MANAGER)
        ).json()
        expected = (Decimal(16767) * RATES["XOF"]).quantize(Decimal("0.01"))
        assert [e["amount"]["amount"] for e in ledger["items"] if e["reference"] == f"fee invoice {invoice['id']}"] == [
            str(expected)
        ]
