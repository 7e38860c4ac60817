"""The room check the applications service asks at screening, over the facility, the capital and the limits."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import SERVICE_HEADER, mint_service_token
from shared.peers import CadEquivalent
from tests.conftest import INTERNAL_SECRET
from tests.guarantees.conftest import MANAGER, set_capital
from tests.support import assert_problem, service_app

RATES = {"CAD": Decimal(1), "XOF": Decimal("1.4712") / Decimal("655.957")}


class FakeFx:
    """The portfolio's FX contract, with fixed rates."""

    async def cad_equivalent(self, amount: Decimal, currency: str, on: date) -> CadEquivalent | None:
        rate = RATES.get(currency)
        if rate is None:
            return None
        return CadEquivalent(amount_cad=(amount * rate).quantize(Decimal("0.01")), rate=rate, rate_date=on, stale=False)


def internal() -> dict[str, str]:
    return {SERVICE_HEADER: mint_service_token("applications", secret=INTERNAL_SECRET, audience="guarantees")}


async def ask(
    api: httpx.AsyncClient, lender: uuid.UUID, amount: str, currency: str = "CAD", **kw: Any
) -> httpx.Response:
    params = {
        "lender_id": str(lender),
        "business_id": str(kw.get("business", uuid.uuid4())),
        "country": kw.get("country", "SN"),
        "amount": amount,
        "currency": currency,
    }
    return await api.get("/internal/guarantees/room", params=params, headers=internal())


async def test_room_follows_the_facility_the_capital_and_the_limits(connection: AsyncConnection) -> None:
    app = service_app("guarantees", connection)
    app.state.peers = FakeFx()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guarantees") as api:
        lender = uuid.uuid4()
        assert (await ask(api, lender, "100000.00")).json()["room"] is False  # no facility
        today = datetime.now(UTC).date()
        facility = {
            "lender_id": str(lender),
            "ceiling": {"amount": "1500000.00", "currency": "CAD"},
            "max_cover_per_loan": {"amount": "125000.00", "currency": "CAD"},
            "valid_from": str(date(today.year - 1, 1, 1)),
            "valid_to": str(date(today.year + 2, 12, 31)),
        }
        assert (await api.post("/api/v1/guarantees/facilities", json=facility, headers=MANAGER)).status_code == 201
        await set_capital(api, "100000.00")
        # capacity 300,000; per borrower 10 % = 30,000: a 50 % guarantee on 60,000 is exactly at it
        at_limit = (await ask(api, lender, "60000.00")).json()
        assert at_limit["room"] is True and at_limit["exposure_cad"] == "30000.00"
        over = (await ask(api, lender, "60000.02")).json()
        assert over["room"] is False and [b["limit"] for b in over["breaches"]] == ["per_borrower"]
        assert "per borrower" in over["reason"] and over["breaches"][0]["maximum"] == "30000.00"
        # an XOF amount is measured in CAD at today's rate: 26,000,000 XOF = 58,313.58 CAD → 29,156.79 exposure
        xof = (await ask(api, lender, "26000000", currency="XOF")).json()
        assert xof["room"] is True and xof["exposure_cad"] == "29156.79"
        # live guarantees count: one on this borrower leaves it less room
        business = uuid.uuid4()
        await connection.execute(
            text(
                "INSERT INTO guarantees.guarantees (id, loan_id, application_id, lender_id, business_id, country,"
                " currency, facility_id, facility_version, coverage_pct, cap_cad, principal, outstanding_principal,"
                " issued_on)"
                " SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), :lender, :business, 'SN', 'CAD',"
                " id, 1, 50, 125000, 20000, 20000, :today FROM guarantees.facilities WHERE lender_id = :lender"
            ),
            {"lender": lender, "business": business, "today": today},
        )
        again = (await ask(api, lender, "50000.00", business=business)).json()
        assert again["room"] is False and again["breaches"][0]["current"] == "35000.00"  # 10,000 + 25,000
        assert_problem(await ask(api, lender, "100.00", currency="HTG"), 503)  # no rate: nothing decided
        outsider = await api.get(
            "/internal/guarantees/room",
            params={
                "lender_id": str(lender),
                "business_id": str(business),
                "country": "SN",
                "amount": "1",
                "currency": "CAD",
            },
            headers=MANAGER,
        )
        assert_problem(outsider, 401)
