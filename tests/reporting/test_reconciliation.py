"""Reconciliation: the read model's totals against the owners' own (portfolio, guarantees, applications), asked
over their internal routes with a service token. The owners here are the real services on the test transaction;
their events come from their own outboxes and are applied through the reporting subscriptions' handlers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.guarantees.issuance.events import subscription as guarantees_from_loans
from services.portfolio.fx.service import record_rate
from services.portfolio.loans import operations
from services.portfolio.loans.events import open_loan
from services.portfolio.loans.ledger import Kind
from services.portfolio.loans.service import Ledgers
from shared.auth import Role
from shared.db import make_sessionmaker
from shared.events.contracts import EventEnvelope
from tests.guarantees.conftest import MANAGER, set_capital
from tests.portfolio.test_loans import approval
from tests.reporting.conftest import ANALYST, FUNDER, apply, as_role, rebuild_from
from tests.support import assert_problem, wired

TODAY = datetime.now(UTC).date()
START = TODAY - timedelta(days=100)


async def outbox_since(connection: AsyncConnection, schema: str, after: int) -> list[EventEnvelope]:
    rows = await connection.execute(
        text(
            f"SELECT event_id, type, aggregate_type, aggregate_id, aggregate_seq, occurred_at, producer, payload"  # noqa: S608
            f" FROM {schema}.outbox WHERE id > :after ORDER BY id"
        ),
        {"after": after},
    )
    return [EventEnvelope(**row._mapping) for row in rows]


async def last_ids(connection: AsyncConnection) -> dict[str, int]:
    found = {}
    for schema in ("portfolio", "guarantees", "applications"):
        found[schema] = int(await connection.scalar(text(f"SELECT coalesce(max(id), 0) FROM {schema}.outbox")) or 0)  # noqa: S608
    return found


async def only_this_test(connection: AsyncConnection) -> None:
    """Other tests' processes may have committed loans, rates, guarantees or applications: the owners' totals
    here are this test's alone (deleted inside the test's transaction, rolled back at the end)."""
    for table in (
        "portfolio.loan_transactions",
        "portfolio.fx_rates",
        "guarantees.recoveries",
        "guarantees.claim_steps",
        "guarantees.claims",
        "guarantees.guarantees",
        "guarantees.capital_entries",
        "applications.application_transitions",
    ):
        await connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names


async def test_the_read_model_reconciles_once_drained_and_lists_what_is_not_applied_yet(
    connection: AsyncConnection,
) -> None:
    await only_this_test(connection)
    apps = wired(connection)
    guarantees_app, reporting_app = apps["guarantees"], apps["reporting"]
    before = await last_ids(connection)
    sessions = make_sessionmaker(connection, join_transaction_mode="create_savepoint")
    lender = uuid.uuid4()

    # the owners' books: a EUR rate (XOF derives from it), a facility and 1,000,000.00 of capital, two guaranteed
    # loans of 12,000,000 XOF disbursed 100 days ago (first due 70 days ago), one of them repaid 1,000,000 XOF since
    async with sessions() as session:
        await record_rate(
            session, currency="EUR", rate_date=START, cad_per_unit=Decimal("1.50"), source="BoC", actor=None
        )
        await session.commit()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guarantees_app), base_url="http://g") as api:
        facility = {
            "lender_id": str(lender),
            "ceiling": {"amount": "100000.00", "currency": "CAD"},
            "max_cover_per_loan": {"amount": "50000.00", "currency": "CAD"},
            "valid_from": str(START),
            "valid_to": str(TODAY + timedelta(days=365)),
        }
        assert (await api.post("/api/v1/guarantees/facilities", json=facility, headers=MANAGER)).status_code == 201
        await set_capital(api, "1000000.00")
    loans = []
    async with sessions() as session:
        for _ in range(2):
            event = approval(["guarantee"], None, "50.00")
            payload = {**event.payload, "terms": {**event.payload["terms"], "lender_id": str(lender)}}
            await open_loan(session, event.model_copy(update={"payload": payload}))
            loans.append(
                await session.scalar(
                    text(
                        "UPDATE portfolio.loans SET annual_rate = 0.12, frequency = 'monthly', method = 'annuity'"
                        " WHERE application_id = :a RETURNING id"
                    ),
                    {"a": uuid.UUID(payload["application_id"])},
                )
            )
        ledgers = await Ledgers.open(session, loans)
        for ledger in ledgers.values():
            await operations.disburse(
                session,
                ledger,
                amount=Decimal("12000000"),
                currency="XOF",
                value_date=START,
                actor=None,
                first_due_date=START + timedelta(days=30),
            )
        await operations.pay(
            session,
            ledgers[loans[0]],
            kind=Kind.repayment,
            amount=Decimal("1000000"),
            currency="XOF",
            value_date=START + timedelta(days=10),
            actor=None,
        )
        await session.commit()
    portfolio_events = await outbox_since(connection, "portfolio", before["portfolio"])
    issue = guarantees_from_loans(guarantees_app.state.peers).handler
    async with sessions() as session:
        for event in portfolio_events:
            if event.type.startswith("loan."):
                await issue(session, event)
        await session.commit()
    # every event drained into the read model
    drained = portfolio_events + await outbox_since(connection, "guarantees", before["guarantees"])
    await rebuild_from(connection, drained)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=reporting_app), base_url="http://r") as api:
        answer = await api.get("/api/v1/reporting/reconciliation", params={"as_of": str(TODAY)}, headers=FUNDER)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        figures = {(f["source"], f["figure"], f["currency"]): (f["reporting"], f["owner"]) for f in body["figures"]}
        assert body["reconciled"] is True and body["differences"] == []
        # annuity 12 %, 24 months: 564,882 XOF a month. Loan 1's 1,000,000 paid instalment 1 (120,000 interest,
        # 444,882 principal) and part of 2 (115,551 interest, 319,567 principal): 11,235,551 outstanding; loan 2
        # owes 12,000,000. Both are more than 30 days late (loan 2's instalment 1 is 70 days overdue, loan 1's
        # instalment 2 about 40 days)
        assert figures[("portfolio", "loans", "XOF")] == (2, 2)
        assert figures[("portfolio", "gross_loan_portfolio", "XOF")] == ("23235551", "23235551")
        assert figures[("portfolio", "par30", "XOF")] == ("23235551", "23235551")
        assert figures[("guarantees", "guarantees", None)] == (2, 2)
        assert figures[("guarantees", "capital_available", "CAD")] == ("1000000.00", "1000000.00")
        # exposure: 50 % × outstanding × 1.50 / 655.957 per loan, each rounded to the cent: 12,846.37 + 13,720.41
        assert figures[("guarantees", "exposure", "CAD")] == ("26566.78", "26566.78")
        assert figures[("applications", "applications", None)] == (0, 0)

        # the lender's ceiling utilisation, from facility.terms_set: exposure ÷ 100,000.00
        report = await api.get("/api/v1/reporting/guarantees", params={"as_of": str(TODAY)}, headers=ANALYST)
        [utilisation] = report.json()["total"]["utilisation_by_lender"]
        exposure = figures[("guarantees", "exposure", "CAD")][0]
        assert utilisation == {
            "lender": str(lender),
            "facility_id": utilisation["facility_id"],
            "facility_version": 1,
            "in_force": True,
            "ceiling_cad": "100000.00",
            "exposure_cad": exposure,
            "utilisation": "0.265668",  # 26,566.78 / 100,000.00
        }

        # a repayment of 2,000,000 XOF and a capital entry the owners recorded, not applied here yet
        after = await last_ids(connection)
        async with sessions() as session:
            ledgers = await Ledgers.open(session, [loans[1]])
            await operations.pay(
                session,
                ledgers[loans[1]],
                kind=Kind.repayment,
                amount=Decimal("2000000"),
                currency="XOF",
                value_date=TODAY,
                actor=None,
            )
            await session.commit()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guarantees_app), base_url="http://g") as g:
            entry = {
                "kind": "contribution",
                "amount": {"amount": "5000.00", "currency": "CAD"},
                "value_date": str(TODAY),
            }
            assert (await g.post("/api/v1/guarantees/capital/entries", json=entry, headers=MANAGER)).status_code == 201
        lagging = (
            await api.get("/api/v1/reporting/reconciliation", params={"as_of": str(TODAY)}, headers=FUNDER)
        ).json()
        assert lagging["reconciled"] is False
        listed = {(d["source"], d["figure"], d["currency"]): d for d in lagging["differences"]}
        assert set(listed) == {
            ("portfolio", "gross_loan_portfolio", "XOF"),
            ("portfolio", "par30", "XOF"),
            ("guarantees", "exposure", "CAD"),
            ("guarantees", "capital_available", "CAD"),
        }
        capital = listed[("guarantees", "capital_available", "CAD")]
        assert (capital["reporting"], capital["owner"], capital["difference"]) == (
            "1000000.00",
            "1005000.00",
            "-5000.00",
        )
        # loan 2's 2,000,000 paid instalments 1-3 (1,694,646) and 305,354 of the 4th (106,520 interest first):
        # 1,546,871 of principal, and it is no longer late
        glp = listed[("portfolio", "gross_loan_portfolio", "XOF")]
        assert (glp["reporting"], glp["owner"], glp["difference"]) == ("23235551", "21688680", "1546871")
        par30 = listed[("portfolio", "par30", "XOF")]
        assert (par30["reporting"], par30["owner"], par30["difference"]) == ("23235551", "11235551", "12000000")

        # applied, they reconcile again
        await apply(
            connection,
            await outbox_since(connection, "portfolio", after["portfolio"])
            + await outbox_since(connection, "guarantees", after["guarantees"]),
        )
        again = (await api.get("/api/v1/reporting/reconciliation", params={"as_of": str(TODAY)}, headers=FUNDER)).json()
        assert again["reconciled"] is True, again["differences"]

        # staff and funders only
        ica = await api.get("/api/v1/reporting/reconciliation", headers=as_role(Role.ica, uuid.uuid4()))
        assert_problem(ica, 403)
        assert_problem(await api.get("/api/v1/reporting/reconciliation", params={"as_of": "soon"}, headers=FUNDER), 422)
