"""Concurrent repayments on one loan, each in its own connection and transaction: none is lost."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from services.portfolio.loans.ledger import Due, Entry, Kind, replay
from services.portfolio.schedules.generator import Frequency, Method, Terms, generate
from tests.portfolio.books import MANAGER, disbursed_loan, pay, position
from tests.support import service_app


async def test_50_concurrent_repayments_leave_the_outstanding_exact(engine: AsyncEngine) -> None:
    app = service_app("portfolio", engine)  # every request its own session and connection: real concurrency
    async with (
        engine.connect() as connection,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portfolio") as api,
    ):
        loan_id = await disbursed_loan(api, connection)
        await connection.commit()
        responses = await asyncio.gather(
            *(pay(api, loan_id, "100.00", "2025-03-01", external_id=f"conc-{loan_id}-{i}") for i in range(50))
        )
    assert [r.status_code for r in responses] == [201] * 50
    schedule = [
        Due(i.number, i.due_date, i.principal, i.interest)
        for i in generate(
            Terms(Decimal("10000.00"), "CAD", Decimal("0.12"), 12, Frequency.monthly, Method.annuity, date(2025, 2, 15))
        )
    ]
    expected = replay(
        schedule,
        [
            Entry(0, Kind.disbursement, Decimal("10000.00"), date(2025, 1, 15)),
            Entry(1, Kind.repayment, Decimal("5000.00"), date(2025, 3, 1)),
        ],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portfolio") as api:
        loan = (await api.get(f"/api/v1/portfolio/loans/{loan_id}", headers=MANAGER)).json()
        now = await position(api, loan_id, "2025-03-01")
        statement = (
            await api.get(f"/api/v1/portfolio/loans/{loan_id}/transactions", params={"limit": 100}, headers=MANAGER)
        ).json()["items"]
    assert loan["outstanding_principal"]["amount"] == str(expected.outstanding_principal)
    assert now["outstanding_principal"]["amount"] == str(expected.outstanding_principal)
    assert now["principal_paid"]["amount"] == str(expected.principal_paid)
    # each repayment saw the one before it: the outstanding after each is a strictly decreasing sequence
    after = [Decimal(t["outstanding_after"]["amount"]) for t in statement if t["kind"] == "repayment"]
    assert len(after) == 50 and after == sorted(after, reverse=True) and after[-1] == expected.outstanding_principal
