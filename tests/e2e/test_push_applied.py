"""Across a real portfolio process: a lender's signed push is acknowledged at once and applied in the background
(woken at commit), and reconciliation shows it processed."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.auth import Role
from shared.webhooks.secrets import sign
from tests.e2e.test_approval_opens_loan import platform, principal
from tests.portfolio.books import open_loan

__all__ = ["platform"]


async def test_a_push_is_applied_by_the_running_service(platform: dict[str, str], engine: AsyncEngine) -> None:
    async with httpx.AsyncClient(base_url=platform["portfolio"], timeout=10) as portfolio:
        admin = principal("portfolio", Role.admin)
        name = f"E2E Bank {uuid.uuid4().hex[:6]}"
        body = {"name": name, "institution_type": "bank", "country": "SN", "currencies": ["XOF"]}
        lender = (await portfolio.post("/api/v1/portfolio/lenders", json=body, headers=admin)).json()
        async with engine.connect() as connection:
            loan = await open_loan(connection, amount="1200000", currency="XOF", lender_id=uuid.UUID(lender["id"]))
            await connection.commit()
        loan_id = str(loan)
        manager = principal("portfolio", Role.fund_manager)
        terms = {"annual_rate_pct": "9", "frequency": "monthly", "method": "annuity"}
        response = await portfolio.put(f"/api/v1/portfolio/loans/{loan_id}/terms", json=terms, headers=manager)
        assert response.status_code == 200, response.text
        response = await portfolio.post(
            f"/api/v1/portfolio/loans/{loan_id}/disbursements",
            json={"amount": {"amount": "1200000", "currency": "XOF"}, "value_date": "2025-06-01"},
            headers=manager,
        )
        assert response.status_code == 201, response.text
        item = {
            "type": "repayment",
            "transaction_id": "E2E-1",
            "loan_id": loan_id,
            "amount": {"amount": "104941", "currency": "XOF"},
            "value_date": "2025-07-01",
        }
        raw = json.dumps({"items": [item]}).encode()
        headers = sign(lender["webhook_secret"]["secret"], msg_id="msg_e2e_1", timestamp=datetime.now(UTC), body=raw)
        receipt = await portfolio.post(
            f"/webhooks/lenders/{lender['id']}", content=raw, headers={**headers, "content-type": "application/json"}
        )
        assert receipt.status_code == 202, receipt.text
        own = principal("portfolio", Role.lender, uuid.UUID(lender["id"]))
        url = f"/api/v1/portfolio/lenders/{lender['id']}/pushes/{receipt.json()['push_id']}"
        push: dict[str, Any] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            push = (await portfolio.get(url, headers=own)).json()
            if push["status"] == "processed":
                break
            await asyncio.sleep(0.05)
        assert push["status"] == "processed" and push["applied"] == 1
        state = (await portfolio.get(f"/api/v1/portfolio/loans/{loan_id}", headers=own)).json()
        assert state["outstanding_principal"]["amount"] != "1200000" and state["status"] == "active"
