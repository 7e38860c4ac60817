"""Guarantees issued from the portfolio's loan events: once per loan, within the facility and the limits (else
refused with the reason), following the loan's outstanding, released when it is repaid."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.guarantees.issuance.events import subscription
from shared.auth import Role
from shared.db import make_sessionmaker
from shared.events.contracts import EventEnvelope
from tests.guarantees.conftest import MANAGER, set_capital
from tests.guarantees.test_room import FakeFx

TODAY = datetime.now(UTC).date()


def loan_event(event_type: str, loan: dict[str, Any], **payload: Any) -> EventEnvelope:
    body = {
        "loan_id": loan["loan_id"],
        "application_id": loan["application_id"],
        "lender_id": loan["lender_id"],
        "business_id": loan["business_id"],
        "ica_id": str(uuid.uuid4()),
        "country": "SN",
        "currency": "XOF",
        "outstanding_principal": "0",
        "status": "active",
        **payload,
    }
    return EventEnvelope(
        event_id=uuid.uuid4(),
        type=event_type,
        aggregate_type="loan",
        aggregate_id=loan["loan_id"],
        aggregate_seq=1,
        occurred_at=datetime.now(UTC),
        producer="portfolio",
        payload=body,
    )


def opened(loan: dict[str, Any], principal: str = "26000000", coverage: str | None = "50") -> EventEnvelope:
    return loan_event(
        "loan.opened",
        loan,
        status="pending_disbursement",
        principal=principal,
        term_months=24,
        instruments=["guarantee"],
        guarantee_coverage_pct=coverage,
        shares={"lender": "100"},
    )


async def apply(connection: AsyncConnection, event: EventEnvelope) -> None:
    handler = subscription(FakeFx()).handler  # type: ignore[arg-type]
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        await handler(session, event)
        await session.commit()


async def setup(api: httpx.AsyncClient, lender: uuid.UUID, capital: str = "1000000.00") -> None:
    facility = {
        "lender_id": str(lender),
        "ceiling": {"amount": "1500000.00", "currency": "CAD"},
        "max_cover_per_loan": {"amount": "125000.00", "currency": "CAD"},
        "valid_from": str(date(TODAY.year - 1, 1, 1)),
        "valid_to": str(date(TODAY.year + 2, 12, 31)),
    }
    assert (await api.post("/api/v1/guarantees/facilities", json=facility, headers=MANAGER)).status_code == 201
    await set_capital(api, capital)


def new_loan(lender: uuid.UUID) -> dict[str, Any]:
    return {
        "loan_id": str(uuid.uuid4()),
        "application_id": str(uuid.uuid4()),
        "lender_id": str(lender),
        "business_id": str(uuid.uuid4()),
    }


async def guarantee(connection: AsyncConnection, loan: dict[str, Any]) -> Any:
    rows = await connection.execute(
        text("SELECT * FROM guarantees.guarantees WHERE loan_id = :l"), {"l": uuid.UUID(loan["loan_id"])}
    )
    return rows.one_or_none()


async def announced(connection: AsyncConnection) -> list[str]:
    # the setup's capital entries and facility are announced too (capital.entry_recorded, facility.terms_set): not
    # what these tests follow
    rows = await connection.execute(
        text(
            "SELECT type FROM guarantees.outbox"
            " WHERE type NOT IN ('capital.entry_recorded', 'facility.terms_set') ORDER BY id"
        )
    )
    return [r.type for r in rows]


async def test_a_guarantee_follows_its_loan_from_issue_to_release(connection: AsyncConnection) -> None:
    from tests.support import service_app

    app = service_app("guarantees", connection)
    app.state.peers = FakeFx()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guarantees") as api:
        lender = uuid.uuid4()
        await setup(api, lender)
        loan = new_loan(lender)
        await apply(connection, opened(loan))
        await apply(connection, opened(loan))  # delivered twice: one guarantee
        g = await guarantee(connection, loan)
        assert (g.status, str(g.coverage_pct), str(g.cap_cad)) == ("active", "50.00", "125000.00")

        async def exposure() -> str:
            listed = (await api.get("/api/v1/guarantees/guarantees", headers=MANAGER)).json()
            return str(next(x for x in listed if x["loan_id"] == loan["loan_id"])["exposure_cad"]["amount"])

        assert await exposure() == "0.00"  # not yet disbursed
        rate = Decimal("1.4712") / Decimal("655.957")
        for event_type, outstanding in (
            ("loan.disbursed", "26000000"),
            ("loan.repayment_applied", "24900000"),
            ("loan.repayment_applied", "1000000"),
        ):
            await apply(connection, loan_event(event_type, loan, outstanding_principal=outstanding))
            assert (await guarantee(connection, loan)).outstanding_principal == int(outstanding)
            # exposure = min(50 % × outstanding × the day's rate, 125,000 cap), to the cent
            assert await exposure() == str(
                min((Decimal(outstanding) * rate / 2).quantize(Decimal("0.01")), Decimal("125000.00"))
            )
        await apply(connection, loan_event("loan.repayment_applied", loan, outstanding_principal="0"))
        await apply(connection, loan_event("loan.repaid", loan, outstanding_principal="0", status="repaid"))
        assert (await guarantee(connection, loan)).status == "released"
        assert await exposure() == "0.00"
    assert await announced(connection) == [
        "guarantee.issued",
        "guarantee.exposure_changed",
        "guarantee.exposure_changed",
        "guarantee.exposure_changed",
        "guarantee.exposure_changed",
        "guarantee.released",
    ]


async def test_without_a_facility_or_room_the_guarantee_is_refused_with_the_reason(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    nobody = new_loan(uuid.uuid4())
    await apply(connection, opened(nobody))
    assert "no guarantee facility" in (await guarantee(connection, nobody)).refusal
    lender = uuid.uuid4()
    await setup(api, lender, capital="100000.00")  # capacity 300,000: per borrower 30,000
    big = new_loan(lender)
    await apply(connection, opened(big, principal="30000000"))  # 67,285 CAD → 33,642.50 of exposure
    refused = await guarantee(connection, big)
    assert refused.status == "refused" and refused.refusal.startswith("per borrower")
    outside = new_loan(lender)
    await apply(connection, opened(outside, principal="1000000", coverage="90"))
    assert "outside the policy" in (await guarantee(connection, outside)).refusal
    # a refused guarantee does not follow its loan
    await apply(connection, loan_event("loan.disbursed", big, outstanding_principal="30000000"))
    assert (await guarantee(connection, big)).outstanding_principal == 0
    assert (await announced(connection)).count("guarantee.refused") == 3


async def test_a_refused_guarantee_is_issued_again_once_there_is_room_else_409_with_the_limit(
    connection: AsyncConnection,
) -> None:
    from tests.guarantees.conftest import as_role
    from tests.support import assert_problem, service_app

    app = service_app("guarantees", connection)
    app.state.peers = FakeFx()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guarantees") as api:
        lender = uuid.uuid4()
        await setup(api, lender, capital="100000.00")  # per borrower: 10 % of 300,000 = 30,000
        loan = new_loan(lender)
        await apply(connection, opened(loan, principal="30000000"))  # 33,642.45 CAD of exposure
        g = (await api.get("/api/v1/guarantees/guarantees", params={"status": "refused"}, headers=MANAGER)).json()
        refused = next(x for x in g if x["loan_id"] == loan["loan_id"])
        assert refused["exposure_cad"] is None and refused["refusal"].startswith("per borrower")
        again = await api.post(f"/api/v1/guarantees/guarantees/{refused['id']}/issue", json={}, headers=MANAGER)
        problem = assert_problem(again, 409)
        assert problem["type"] == "/problems/limit-per-borrower" and problem["limit"] == "per_borrower"
        assert (problem["current"], problem["maximum"]) == ("33642.45", "30000.00")
        await set_capital(api, "200000.00")  # per borrower now 60,000
        issued = await api.post(f"/api/v1/guarantees/guarantees/{refused['id']}/issue", json={}, headers=MANAGER)
        assert issued.status_code == 200, issued.text
        assert (
            issued.json()["status"] == "active" and issued.json()["exposure_cad"]["amount"] == "0.00"
        )  # not yet disbursed
        assert_problem(
            await api.post(f"/api/v1/guarantees/guarantees/{refused['id']}/issue", json={}, headers=MANAGER), 409
        )
        mine = (await api.get("/api/v1/guarantees/guarantees", headers=as_role(Role.lender, lender))).json()
        assert [x["id"] for x in mine] == [refused["id"]]
        other = as_role(Role.lender, uuid.uuid4())
        assert_problem(await api.get(f"/api/v1/guarantees/guarantees/{refused['id']}", headers=other), 404)
        assert_problem(await api.get("/api/v1/guarantees/guarantees", headers=as_role(Role.ica, uuid.uuid4())), 403)
        assert_problem(
            await api.post(f"/api/v1/guarantees/guarantees/{refused['id']}/issue", json={}, headers=other), 403
        )
    assert (await announced(connection))[-1] == "guarantee.issued"
