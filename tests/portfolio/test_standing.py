"""Every loan event carries the loan's standing per value date from the change on — what the reports' read models
replay to answer "as of D" without reading the portfolio's tables. A backdated payment, a reversal and a charge
bring every step they changed; the steps always agree with the portfolio's own position as of their dates."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.portfolio.books import MANAGER, disbursed_loan, events_of, pay, position
from tests.portfolio.test_fx import post_rate


def step(on: str, outstanding: str, overdue_from: str | None, status: str = "active") -> dict[str, Any]:
    return {"on": on, "outstanding_principal": outstanding, "overdue_from": overdue_from, "status": status}


async def last_standing(connection: AsyncConnection, loan_id: str, event_type: str) -> list[dict[str, Any]]:
    standing: list[dict[str, Any]] = [
        p["standing"] for t, p in await events_of(connection, loan_id) if t == event_type
    ][-1]
    return standing


async def test_each_change_announces_the_steps_it_changed(api: httpx.AsyncClient, connection: AsyncConnection) -> None:
    # the reference annuity: 10,000.00 CAD, 12 %, 12 monthly instalments of 888.49 from 2025-02-15;
    # instalment 1: interest 100.00, principal 788.49; instalment 2: interest 92.12 (1 % of 9,211.51), principal 796.37
    loan_id = await disbursed_loan(api, connection)
    assert await last_standing(connection, loan_id, "loan.disbursed") == [step("2025-01-15", "10000.00", "2025-02-15")]

    late = (await pay(api, loan_id, "888.49", "2025-03-01")).json()
    assert await last_standing(connection, loan_id, "loan.repayment_applied") == [
        step("2025-03-01", "9211.51", "2025-03-15")
    ]
    # a backdated payment: it pays instalment 1, so the 1 March one now pays instalment 2
    early = (await pay(api, loan_id, "888.49", "2025-02-20")).json()
    assert await last_standing(connection, loan_id, "loan.repayment_applied") == [
        step("2025-02-20", "9211.51", "2025-03-15"),
        step("2025-03-01", "8415.14", "2025-04-15"),
    ]
    # reversing it restores the steps from its date on
    reversed_ = await api.post(
        f"/api/v1/portfolio/loans/{loan_id}/transactions/{early['id']}/reversal",
        json={"reason": "pushed by mistake"},
        headers=MANAGER,
    )
    assert reversed_.status_code == 200, reversed_.text
    assert await last_standing(connection, loan_id, "loan.repayment_reversed") == [
        step("2025-02-20", "10000.00", "2025-02-15"),
        step("2025-03-01", "9211.51", "2025-03-15"),
    ]
    # a fee backdated before the 1 March payment is paid first by it: 25.00 less principal from that date
    fee = await api.post(
        f"/api/v1/portfolio/loans/{loan_id}/charges",
        json={
            "kind": "fee",
            "amount": {"amount": "25.00", "currency": "CAD"},
            "value_date": "2025-02-25",
            "instalment": 1,
            "comment": "late fee",
        },
        headers=MANAGER,
    )
    assert fee.status_code == 201, fee.text
    assert await last_standing(connection, loan_id, "loan.charged") == [
        step("2025-02-25", "10000.00", "2025-02-15"),
        step("2025-03-01", "9236.51", "2025-02-15"),  # 25.00 of principal of instalment 1 still unpaid
    ]
    # every step says what the portfolio itself answers as of its date
    for s in await last_standing(connection, loan_id, "loan.charged"):
        assert (await position(api, loan_id, s["on"]))["outstanding_principal"]["amount"] == s["outstanding_principal"]
    assert late["allocation"]["principal"] == "788.49"


async def test_a_recorded_rate_is_announced_once(api: httpx.AsyncClient, connection: AsyncConnection) -> None:
    assert (await post_rate(api, "GHS", "2001-03-02", "0.1123")).status_code == 201
    assert (await post_rate(api, "GHS", "2001-03-02", "0.1123")).status_code in (200, 201)  # the same again: no-op
    rows = (
        await connection.execute(
            text("SELECT payload FROM portfolio.outbox WHERE type = 'fx.rate_recorded' AND aggregate_id = 'GHS'")
        )
    ).all()
    assert [r.payload for r in rows] == [
        {"currency": "GHS", "rate_date": "2001-03-02", "cad_per_unit": "0.1123", "source": "Bank of Canada"}
    ]
