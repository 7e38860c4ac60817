"""The default facts the guarantees service reads when a lender files a claim."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import SERVICE_HEADER, mint_service_token
from tests.conftest import INTERNAL_SECRET
from tests.portfolio.books import MANAGER, disbursed_loan, pay
from tests.support import assert_problem


def internal() -> dict[str, str]:
    return {SERVICE_HEADER: mint_service_token("guarantees", secret=INTERNAL_SECRET, audience="portfolio")}


async def test_days_past_due_default_date_and_the_outstanding_that_day(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    loan_id = await disbursed_loan(api, connection)  # first instalment due 2025-02-15
    assert (await pay(api, loan_id, "500.00", "2025-02-15")).status_code == 201  # 100 interest, 400 principal
    url = f"/internal/loans/{loan_id}/default"
    before = (await api.get(url, params={"trigger_dpd": 90, "as_of": "2025-05-15"}, headers=internal())).json()
    assert (before["days_past_due"], before["default_date"]) == (89, None)
    after = (await api.get(url, params={"trigger_dpd": 90, "as_of": "2025-06-01"}, headers=internal())).json()
    assert after["days_past_due"] == 106 and after["default_date"] == "2025-05-16"
    assert after["outstanding_on_default"] == "9600.00" and after["currency"] == "CAD"
    assert_problem(await api.get(url, params={"trigger_dpd": 90, "as_of": "2025-06-01"}, headers=MANAGER), 401)
    missing = f"/internal/loans/{uuid.uuid4()}/default"
    assert_problem(await api.get(missing, params={"trigger_dpd": 90, "as_of": "2025-06-01"}, headers=internal()), 404)


async def test_outstanding_of_many_loans_as_they_stood(api: httpx.AsyncClient, connection: AsyncConnection) -> None:
    first, second = await disbursed_loan(api, connection), await disbursed_loan(api, connection)
    assert (await pay(api, first, "888.49", "2025-02-15")).status_code == 201
    body = {"as_of": "2025-02-14", "loan_ids": [first, second, str(uuid.uuid4())]}
    before = (await api.post("/internal/loans/outstanding", json=body, headers=internal())).json()["loans"]
    assert before == {
        first: {"currency": "CAD", "outstanding_principal": "10000.00"},
        second: {"currency": "CAD", "outstanding_principal": "10000.00"},
    }
    after = (
        await api.post("/internal/loans/outstanding", json={**body, "as_of": "2025-02-15"}, headers=internal())
    ).json()["loans"]
    assert after[first]["outstanding_principal"] == "9211.51"
    assert_problem(await api.post("/internal/loans/outstanding", json=body, headers=MANAGER), 401)


async def test_outstanding_history_is_a_step_function_over_a_period(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    loan_id = await disbursed_loan(api, connection)
    assert (await pay(api, loan_id, "888.49", "2025-02-15")).status_code == 201
    assert (await pay(api, loan_id, "888.49", "2025-03-15")).status_code == 201
    body = {"loan_ids": [loan_id], "from": "2025-02-01", "to": "2025-03-31"}
    got = (await api.post("/internal/loans/outstanding-history", json=body, headers=internal())).json()
    assert got["loans"][loan_id]["steps"] == [
        ["2025-02-01", "10000.00"],
        ["2025-02-15", "9211.51"],
        ["2025-03-15", "8415.14"],
    ]
