"""Helpers for tests of loans' books: open a loan from an approval, set its terms, disburse it, read its events."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Role
from tests.portfolio.conftest import as_role
from tests.portfolio.test_loans import LENDER, apply, approval

MANAGER = as_role(Role.fund_manager)


async def open_loan(
    connection: AsyncConnection,
    *,
    amount: str = "10000.00",
    currency: str = "CAD",
    term_months: int = 12,
    instruments: tuple[str, ...] = ("co_financing",),
    fund_share: str | None = "40.00",
    lender_id: uuid.UUID = LENDER,
    ica_id: uuid.UUID | None = None,
) -> uuid.UUID:
    event = approval(list(instruments), fund_share, None, ica_id=ica_id or uuid.uuid4())
    payload = dict(event.payload)
    payload["terms"] = {
        **payload["terms"],
        "amount": amount,
        "currency": currency,
        "term_months": term_months,
        "lender_id": str(lender_id),
    }
    await apply(connection, event.model_copy(update={"payload": payload}))
    loan_id = await connection.scalar(
        text("SELECT id FROM portfolio.loans WHERE application_id = :a"), {"a": uuid.UUID(event.aggregate_id)}
    )
    assert loan_id is not None
    return uuid.UUID(str(loan_id))


async def disbursed_loan(
    api: httpx.AsyncClient,
    connection: AsyncConnection,
    *,
    terms: dict[str, Any] | None = None,
    on: str = "2025-01-15",
    **loan: Any,
) -> str:
    """A loan with its terms set (default: 12 % annuity, monthly) and its whole principal disbursed on `on`."""
    loan_id = str(await open_loan(connection, **loan))
    body = terms or {"annual_rate_pct": "12", "frequency": "monthly", "method": "annuity"}
    response = await api.put(f"/api/v1/portfolio/loans/{loan_id}/terms", json=body, headers=MANAGER)
    assert response.status_code == 200, response.text
    principal = response.json()["principal"]
    response = await api.post(
        f"/api/v1/portfolio/loans/{loan_id}/disbursements",
        json={"amount": principal, "value_date": on},
        headers=MANAGER,
    )
    assert response.status_code == 201, response.text
    return loan_id


async def pay(
    api: httpx.AsyncClient, loan_id: str, amount: str, on: str, currency: str = "CAD", **extra: Any
) -> httpx.Response:
    return await api.post(
        f"/api/v1/portfolio/loans/{loan_id}/repayments",
        json={"amount": {"amount": amount, "currency": currency}, "value_date": on, **extra},
        headers=MANAGER,
    )


async def position(api: httpx.AsyncClient, loan_id: str, on: str) -> dict[str, Any]:
    response = await api.get(f"/api/v1/portfolio/loans/{loan_id}/position", params={"as_of": on}, headers=MANAGER)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def schedule(api: httpx.AsyncClient, loan_id: str, on: str) -> dict[str, Any]:
    response = await api.get(f"/api/v1/portfolio/loans/{loan_id}/schedule", params={"as_of": on}, headers=MANAGER)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def events_of(connection: AsyncConnection, loan_id: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await connection.execute(
        text("SELECT type, payload FROM portfolio.outbox WHERE aggregate_id = :a ORDER BY aggregate_seq"),
        {"a": loan_id},
    )
    return [(r.type, r.payload) for r in rows]
