"""An approval opens its loan exactly once, with the participants' shares; who may read loans."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.portfolio.loans.events import open_loan
from shared.auth import Role
from shared.contracts.applications import ApplicationApprovedV1
from shared.db import make_sessionmaker
from shared.events.contracts import EventEnvelope
from tests.portfolio.conftest import ADMIN, as_role
from tests.support import assert_problem

LENDER = uuid.UUID("0b7f2c1e-8f4a-4c55-9d1e-5a6b7c8d9e0f")


def approval(instruments: list[str], fund_share: str | None, coverage: str | None, **ids: Any) -> EventEnvelope:
    application_id = ids.get("application_id", uuid.uuid4())
    payload = ApplicationApprovedV1(
        application_id=application_id,
        ica_id=ids.get("ica_id", uuid.uuid4()),
        business_id=uuid.uuid4(),
        from_status="committee",
        to_status="approved",
        comment="approved",
        terms={
            "amount": "12000000",
            "currency": "XOF",
            "term_months": 24,
            "instruments": instruments,
            "lender_id": LENDER,
            "fund_share_pct": fund_share,
            "guarantee_coverage_pct": coverage,
            "conditions": ["quarterly reports"],
        },
        policy_version=1,
        business={
            "business_id": uuid.uuid4(),
            "ica_id": uuid.uuid4(),
            "name": "Coop",
            "legal_form": "cooperative",
            "country": "SN",
            "sector": "shea",
            "year_founded": 2014,
            "facts": {
                "reported_on": "2026-06-30",
                "members_total": 10,
                "members_women": 6,
                "board_seats_total": 5,
                "board_seats_women": 3,
                "employees_total": 2,
                "employees_women": 1,
                "senior_managers_total": 1,
                "senior_managers_women": 1,
                "women_ownership_pct": None,
                "general_assembly_last_12_months": True,
                "board_elected_by_members": True,
                "one_member_one_vote": True,
                "environmental_practices": [],
            },
        },
    )
    return EventEnvelope(
        event_id=uuid.uuid4(),
        type="application.approved",
        aggregate_type="application",
        aggregate_id=str(application_id),
        aggregate_seq=5,
        occurred_at=datetime.now(UTC),
        producer="applications",
        payload=payload.model_dump(mode="json"),
        position=1,
    )


async def apply(connection: AsyncConnection, event: EventEnvelope) -> None:
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        await open_loan(session, event)
        await session.commit()


async def shares(connection: AsyncConnection, application_id: uuid.UUID) -> dict[str, Decimal]:
    rows = await connection.execute(
        text(
            "SELECT p.participant, p.share_pct FROM portfolio.loan_participants p JOIN portfolio.loans l ON l.id = p.loan_id WHERE l.application_id = :a"
        ),
        {"a": application_id},
    )
    return {r.participant: r.share_pct for r in rows}


async def test_an_approval_opens_one_loan_even_when_delivered_twice(connection: AsyncConnection) -> None:
    event = approval(["co_financing", "guarantee"], "40.00", "50.00")
    await apply(connection, event)
    await apply(connection, event)
    again = approval(["co_financing", "guarantee"], "40.00", "50.00", application_id=uuid.UUID(event.aggregate_id))
    await apply(connection, again)  # another approval event for the same application: still one loan
    count = await connection.scalar(
        text("SELECT count(*) FROM portfolio.loans WHERE application_id = :a"), {"a": event.aggregate_id}
    )
    assert count == 1
    assert await shares(connection, uuid.UUID(event.aggregate_id)) == {
        "fund": Decimal("40.00"),
        "lender": Decimal("60.00"),
    }


async def test_a_guaranteed_loan_is_the_lenders_alone(connection: AsyncConnection) -> None:
    event = approval(["guarantee"], None, "50.00")
    await apply(connection, event)
    assert await shares(connection, uuid.UUID(event.aggregate_id)) == {"lender": Decimal("100.00")}


async def test_who_reads_which_loans(api: httpx.AsyncClient, connection: AsyncConnection) -> None:
    ica = uuid.uuid4()
    event = approval(["co_financing"], "30.00", None, ica_id=ica)
    await apply(connection, event)
    loans = (await api.get("/api/v1/portfolio/loans", headers=ADMIN)).json()["items"]
    loan = next(x for x in loans if x["application_id"] == event.aggregate_id)
    assert loan["principal"] == {"amount": "12000000", "currency": "XOF"} and loan["status"] == "pending_disbursement"
    assert {p["participant"]: p["share_pct"] for p in loan["participants"]} == {"fund": "30.00", "lender": "70.00"}
    assert (
        await api.get(f"/api/v1/portfolio/loans/{loan['id']}", headers=as_role(Role.lender, LENDER))
    ).status_code == 200
    assert (await api.get(f"/api/v1/portfolio/loans/{loan['id']}", headers=as_role(Role.ica, ica))).status_code == 200
    assert (await api.get(f"/api/v1/portfolio/loans/{loan['id']}", headers=as_role(Role.funder))).status_code == 200
    assert_problem(
        await api.get(f"/api/v1/portfolio/loans/{loan['id']}", headers=as_role(Role.lender, uuid.uuid4())), 404
    )
    assert_problem(await api.get(f"/api/v1/portfolio/loans/{loan['id']}", headers=as_role(Role.ica, uuid.uuid4())), 404)
    other_lender = (await api.get("/api/v1/portfolio/loans", headers=as_role(Role.lender, uuid.uuid4()))).json()[
        "items"
    ]
    assert loan["id"] not in [x["id"] for x in other_lender]
