"""Rules that keep the books consistent: what cannot be backdated, what a write-off closes, how a lender's
pushes keep their order, and a close of day that one unreadable loan cannot stop."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.portfolio.pushes.models import LenderPush
from services.portfolio.pushes.processor import _in_lender_order
from shared.db import make_sessionmaker
from tests.portfolio.books import MANAGER, disbursed_loan, events_of, pay
from tests.portfolio.test_close_of_day import close
from tests.portfolio.test_push_items import drain, new_lender, send, xof_loans
from tests.support import assert_problem


def charge_body(on: str, instalment: int = 1) -> dict[str, object]:
    return {
        "kind": "penalty",
        "amount": {"amount": "10.00", "currency": "CAD"},
        "value_date": on,
        "instalment": instalment,
        "comment": "late",
    }


async def test_charges_cannot_predate_the_schedule_and_a_restructuring_keeps_charged_instalments(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    loan_id = await disbursed_loan(api, connection)  # disbursed 2025-01-15, 12 monthly instalments
    early = await api.post(
        f"/api/v1/portfolio/loans/{loan_id}/charges", json=charge_body("2025-01-01"), headers=MANAGER
    )
    assert assert_problem(early, 409)["reason"] == "backdated_charge"
    late = await api.post(
        f"/api/v1/portfolio/loans/{loan_id}/charges", json=charge_body("2025-02-20", 12), headers=MANAGER
    )
    assert late.status_code == 201
    shorter = {
        "effective_from": "2025-03-01",
        "annual_rate_pct": "12",
        "frequency": "monthly",
        "method": "annuity",
        "periods": 3,
        "first_due_date": "2025-04-01",
        "reason": "shorter term asked by the lender",
    }
    refused = await api.post(f"/api/v1/portfolio/loans/{loan_id}/restructuring", json=shorter, headers=MANAGER)
    assert assert_problem(refused, 422)["reason"] == "charged_instalment_dropped"


async def test_a_write_off_closes_the_past_and_is_never_followed_by_a_cure(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    loan_id = await disbursed_loan(api, connection)
    paid = (await pay(api, loan_id, "500.00", "2025-02-15")).json()
    await close(api, "2025-05-16")  # defaulted
    off = await api.post(
        f"/api/v1/portfolio/loans/{loan_id}/write-off",
        json={"value_date": "2025-06-30", "reason": "business closed"},
        headers=MANAGER,
    )
    written_off = off.json()["written_off_principal"]["amount"]
    backdated = await api.post(
        f"/api/v1/portfolio/loans/{loan_id}/recoveries",
        json={"amount": {"amount": "1000.00", "currency": "CAD"}, "value_date": "2025-06-01"},
        headers=MANAGER,
    )
    assert assert_problem(backdated, 409)["reason"] == "before_write_off"
    undo = await api.post(
        f"/api/v1/portfolio/loans/{loan_id}/transactions/{paid['id']}/reversal",
        json={"reason": "wrong loan"},
        headers=MANAGER,
    )
    assert assert_problem(undo, 409)["reason"] == "before_write_off"
    loan = (await api.get(f"/api/v1/portfolio/loans/{loan_id}", headers=MANAGER)).json()
    assert loan["written_off_principal"]["amount"] == written_off
    await close(api, "2025-07-01")
    await close(api, "2025-07-02")
    types = [t for t, _ in await events_of(connection, loan_id)]
    assert "loan.defaulted" in types and "loan.cured" not in types
    loan = (await api.get(f"/api/v1/portfolio/loans/{loan_id}", headers=MANAGER)).json()
    assert loan["arrears_state"] == "written_off"


async def test_a_day_is_closed_once_over_and_one_unreadable_loan_does_not_stop_it(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    from services.portfolio.loans.service import today

    response = await api.post("/api/v1/portfolio/admin/close-of-day", json={"as_of": str(today())}, headers=MANAGER)
    assert_problem(response, 422)
    good, broken = await disbursed_loan(api, connection), await disbursed_loan(api, connection)
    # a fee on an instalment no schedule has: a corruption the API refuses, written here behind its back
    await connection.execute(
        text(
            "INSERT INTO portfolio.loan_transactions (id, loan_id, lender_id, kind, amount, currency, value_date,"
            " instalment, source, split, outstanding_after)"
            " SELECT gen_random_uuid(), id, lender_id, 'fee', 1, 'CAD', '2025-02-01', 99, 'staff', '{}', 0"
            " FROM portfolio.loans WHERE id = :loan"
        ),
        {"loan": uuid.UUID(broken)},
    )
    result = await close(api, "2025-02-16")
    assert result["failed"] == 1
    assert [t for t, _ in await events_of(connection, good)][-1] == "loan.in_arrears"


async def test_a_lenders_pushes_wait_for_its_older_ones_and_notices_count_once(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    a_id, a_secret = await new_lender(api, "Banque A")
    b_id, b_secret = await new_lender(api, "Banque B")
    (loan,) = await xof_loans(api, connection, a_id, 1)
    notice = {"type": "notice", "transaction_id": "N-1", "loan_id": loan, "message": "borrower moved offices"}
    p1 = (await send(api, a_id, a_secret, [notice])).json()["push_id"]
    p2 = (await send(api, a_id, a_secret, [notice])).json()["push_id"]
    p3 = (await send(api, b_id, b_secret, [notice])).json()["push_id"]
    sessionmaker = make_sessionmaker(connection, join_transaction_mode="create_savepoint")
    async with sessionmaker() as session:
        rows = (await session.scalars(select(LenderPush).where(LenderPush.id.in_([p2, p3])))).all()
        # p1 (lender A's older push) is not in this claim: A's p2 must wait; B's p3 may go
        kept = await _in_lender_order(session, sorted(rows, key=lambda p: p.received_at))
        assert [str(p.id) for p in kept] == [p3]
    del p1
    await drain(connection)
    statuses = await connection.execute(
        text(
            "SELECT p.lender_id, i.status FROM portfolio.lender_push_items i JOIN portfolio.lender_pushes p"
            " ON p.id = i.push_id WHERE p.lender_id IN (:a, :b) ORDER BY p.received_at"
        ),
        {"a": uuid.UUID(a_id), "b": uuid.UUID(b_id)},
    )
    got = [(str(r.lender_id), r.status) for r in statuses]
    # applied once, then a duplicate though both came in one batch; B may not speak of A's loan
    assert got == [(a_id, "applied"), (a_id, "duplicate"), (b_id, "rejected")]
