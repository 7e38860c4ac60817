"""A loan's books through the API: schedule at disbursement, allocation, credit, reversal, days past due,
closure, write-off, tranches and restructuring, and who may do what."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Role
from tests.portfolio.books import MANAGER, disbursed_loan, events_of, open_loan, pay, position, schedule
from tests.portfolio.conftest import as_role
from tests.portfolio.test_loans import LENDER
from tests.support import assert_problem


async def test_the_reference_annuity_is_the_schedule_stored_at_disbursement(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    loan_id = await disbursed_loan(api, connection)  # 10,000.00 CAD, 12 % a year, 12 monthly instalments
    plan = await schedule(api, loan_id, "2025-01-15")
    lines = plan["instalments"]
    assert [line["total_due"]["amount"] for line in lines] == ["888.49"] * 11 + ["888.47"]
    assert lines[0]["interest"]["amount"] == "100.00" and lines[0]["due_date"] == "2025-02-15"
    assert plan["total_interest"]["amount"] == "661.86"
    assert sum(Decimal(line["principal"]["amount"]) for line in lines) == Decimal("10000.00")
    assert plan["total_principal"]["amount"] == "10000.00" and plan["version"] == 1
    loan = (await api.get(f"/api/v1/portfolio/loans/{loan_id}", headers=MANAGER)).json()
    assert loan["status"] == "active" and loan["outstanding_principal"]["amount"] == "10000.00"
    disbursed = [p for t, p in await events_of(connection, loan_id) if t == "loan.disbursed"]
    assert disbursed[0]["split"] == {"fund": "4000.00", "lender": "6000.00"}


async def test_a_partial_payment_pays_interest_before_principal_of_the_oldest_instalment(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    loan_id = await disbursed_loan(api, connection)
    response = await pay(api, loan_id, "500.00", "2025-02-15")
    assert response.status_code == 201, response.text
    txn = response.json()
    assert txn["allocation"] == {
        "penalties": "0.00",
        "fees": "0.00",
        "interest": "100.00",
        "principal": "400.00",
        "credit": "0.00",
        "recovered": "0.00",
    }
    assert txn["split"] == {"fund": "200.00", "lender": "300.00"}
    assert txn["outstanding_after"]["amount"] == "9600.00"
    first = (await schedule(api, loan_id, "2025-02-15"))["instalments"][0]
    assert first["paid_interest"]["amount"] == "100.00" and first["paid_principal"]["amount"] == "400.00"
    assert first["unpaid"]["amount"] == "388.49" and first["status"] == "partly_paid"
    # due today is not yet overdue; the next day it is
    assert (await position(api, loan_id, "2025-02-15"))["days_past_due"] == 0
    after = await position(api, loan_id, "2025-02-16")
    assert after["days_past_due"] == 1 and after["bucket"] == "1-30"
    assert after["overdue_principal"]["amount"] == "388.49" and after["overdue_interest"]["amount"] == "0.00"
    applied = [p for t, p in await events_of(connection, loan_id) if t == "loan.repayment_applied"]
    assert applied[0]["outstanding_principal"] == "9600.00" and applied[0]["split"] == txn["split"]


async def test_an_overpayment_becomes_a_credit_and_closes_the_loan(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    loan_id = await disbursed_loan(api, connection)
    response = await pay(api, loan_id, "10761.86", "2025-03-01")  # everything due (10,661.86) and 100.00 more
    assert response.status_code == 201, response.text
    assert response.json()["allocation"]["credit"] == "100.00"
    loan = (await api.get(f"/api/v1/portfolio/loans/{loan_id}", headers=MANAGER)).json()
    assert loan["status"] == "repaid" and loan["closed_on"] == "2025-03-01"
    assert loan["credit"]["amount"] == "100.00" and loan["outstanding_principal"]["amount"] == "0.00"
    assert [t for t, _ in await events_of(connection, loan_id)][-2:] == ["loan.repayment_applied", "loan.repaid"]


async def test_a_reversal_restores_balances_and_days_past_due_exactly(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    loan_id = await disbursed_loan(api, connection)
    assert (await pay(api, loan_id, "888.49", "2025-02-15")).status_code == 201
    before = [await position(api, loan_id, day) for day in ("2025-03-20", "2025-06-01")]
    plan_before = await schedule(api, loan_id, "2025-06-01")
    wrong = (await pay(api, loan_id, "1500.00", "2025-03-14")).json()
    assert (await position(api, loan_id, "2025-06-01"))["days_past_due"] != before[1]["days_past_due"]
    reversed_ = await api.post(
        f"/api/v1/portfolio/loans/{loan_id}/transactions/{wrong['id']}/reversal",
        json={"reason": "pushed twice by the lender's clerk"},
        headers=MANAGER,
    )
    assert reversed_.status_code == 200 and reversed_.json()["reversed_at"] is not None
    assert [await position(api, loan_id, day) for day in ("2025-03-20", "2025-06-01")] == before
    assert await schedule(api, loan_id, "2025-06-01") == plan_before
    again = await api.post(
        f"/api/v1/portfolio/loans/{loan_id}/transactions/{wrong['id']}/reversal",
        json={"reason": "twice"},
        headers=MANAGER,
    )
    assert assert_problem(again, 409)["reason"] == "already_reversed"
    statement = (await api.get(f"/api/v1/portfolio/loans/{loan_id}/transactions", headers=MANAGER)).json()
    assert [(t["kind"], t["reversed_at"] is not None) for t in statement["items"]] == [
        ("disbursement", False),
        ("repayment", False),
        ("repayment", True),
    ]
    assert "loan.repayment_reversed" in [t for t, _ in await events_of(connection, loan_id)]


async def test_days_past_due_count_from_the_oldest_unpaid_instalment(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    loan_id = await disbursed_loan(api, connection)
    worked = {
        "2025-02-15": (0, "current"),
        "2025-02-16": (1, "1-30"),
        "2025-03-17": (30, "1-30"),
        "2025-03-18": (31, "31-60"),
        "2025-05-16": (90, "61-90"),
        "2025-05-17": (91, "91-180"),
        "2025-08-15": (181, "over-180"),
    }
    for day, (dpd, bucket) in worked.items():
        got = await position(api, loan_id, day)
        assert (day, got["days_past_due"], got["bucket"]) == (day, dpd, bucket)
    assert (await position(api, loan_id, "2025-05-16"))["in_default"] is True
    # paying the first two instalments moves the oldest unpaid one to the third (due 2025-04-15)
    assert (await pay(api, loan_id, "1776.98", "2025-05-01")).status_code == 201
    assert (await position(api, loan_id, "2025-05-16"))["days_past_due"] == 31
    # the past stands as it was: before that payment's value date, the loan was further behind
    assert (await position(api, loan_id, "2025-04-30"))["days_past_due"] == 74


async def test_charges_are_paid_before_interest_and_principal(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    loan_id = await disbursed_loan(api, connection)
    for kind, amount in (("penalty", "15.00"), ("fee", "10.00")):
        response = await api.post(
            f"/api/v1/portfolio/loans/{loan_id}/charges",
            json={
                "kind": kind,
                "amount": {"amount": amount, "currency": "CAD"},
                "value_date": "2025-02-20",
                "instalment": 1,
                "comment": f"late {kind}",
            },
            headers=MANAGER,
        )
        assert response.status_code == 201, response.text
    paid = (await pay(api, loan_id, "120.00", "2025-02-21")).json()
    assert paid["allocation"]["penalties"] == "15.00" and paid["allocation"]["fees"] == "10.00"
    assert paid["allocation"]["interest"] == "95.00" and paid["allocation"]["principal"] == "0.00"


async def test_write_off_takes_the_outstanding_and_later_money_is_a_recovery(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    loan_id = await disbursed_loan(api, connection)
    assert (await pay(api, loan_id, "888.49", "2025-02-15")).status_code == 201
    off = await api.post(
        f"/api/v1/portfolio/loans/{loan_id}/write-off",
        json={"value_date": "2025-09-30", "reason": "cooperative dissolved after the 2025 floods"},
        headers=MANAGER,
    )
    assert off.status_code == 200, off.text
    assert off.json()["status"] == "written_off" and off.json()["written_off_principal"]["amount"] == "9211.51"
    assert off.json()["outstanding_principal"]["amount"] == "0.00"
    refused = await pay(api, loan_id, "100.00", "2025-10-01")
    assert assert_problem(refused, 409)["reason"] == "loan_written_off"
    recovery = await api.post(
        f"/api/v1/portfolio/loans/{loan_id}/recoveries",
        json={"amount": {"amount": "2500.00", "currency": "CAD"}, "value_date": "2025-11-15"},
        headers=MANAGER,
    )
    assert recovery.status_code == 201 and recovery.json()["allocation"]["recovered"] == "2500.00"
    assert (await position(api, loan_id, "2025-12-01"))["recovered_after_write_off"]["amount"] == "2500.00"
    assert (await position(api, loan_id, "2025-09-29"))["status"] == "active"  # before the write-off, as it stood
    types = [t for t, _ in await events_of(connection, loan_id)]
    assert "loan.written_off" in types and types[-1] == "loan.recovery_received"


async def test_a_second_tranche_and_a_restructuring_make_new_versions_and_keep_the_old(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    loan_id = str(await open_loan(connection, amount="12000.00"))
    await api.put(
        f"/api/v1/portfolio/loans/{loan_id}/terms",
        json={"annual_rate_pct": "10", "frequency": "monthly", "method": "equal_principal"},
        headers=MANAGER,
    )
    for amount, on in (("6000.00", "2025-01-10"), ("6000.00", "2025-04-20")):
        response = await api.post(
            f"/api/v1/portfolio/loans/{loan_id}/disbursements",
            json={"amount": {"amount": amount, "currency": "CAD"}, "value_date": on},
            headers=MANAGER,
        )
        assert response.status_code == 201, response.text
    over = await api.post(
        f"/api/v1/portfolio/loans/{loan_id}/disbursements",
        json={"amount": {"amount": "0.01", "currency": "CAD"}, "value_date": "2025-04-21"},
        headers=MANAGER,
    )
    assert assert_problem(over, 409)["reason"] == "over_disbursement"
    tranche = await schedule(api, loan_id, "2025-04-20")
    assert tranche["version"] == 2 and tranche["total_principal"]["amount"] == "12000.00"
    assert (await schedule(api, loan_id, "2025-03-01"))["total_principal"]["amount"] == "6000.00"
    restructuring = await api.post(
        f"/api/v1/portfolio/loans/{loan_id}/restructuring",
        json={
            "effective_from": "2025-07-01",
            "annual_rate_pct": "8",
            "frequency": "quarterly",
            "method": "annuity",
            "periods": 8,
            "first_due_date": "2025-10-01",
            "reason": "harvest lost to drought; lender and fund agree to stretch",
        },
        headers=MANAGER,
    )
    assert restructuring.status_code == 201, restructuring.text
    assert restructuring.json()["version"] == 3
    new = await schedule(api, loan_id, "2025-07-01")

    def due(lines: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return [(x["due_date"], x["principal"]["amount"], x["interest"]["amount"]) for x in lines]

    kept = [line for line in new["instalments"] if line["due_date"] <= "2025-07-01"]
    assert len(kept) == 5 and due(kept) == due([x for x in tranche["instalments"] if x["due_date"] <= "2025-07-01"])
    assert [line["due_date"] for line in new["instalments"][len(kept) :]][:2] == ["2025-10-01", "2026-01-01"]
    assert sum(Decimal(line["principal"]["amount"]) for line in new["instalments"]) == Decimal("12000.00")
    # arrears do not disappear: nothing was paid, so the oldest instalment is still overdue
    assert (await position(api, loan_id, "2025-07-02"))["days_past_due"] == (date(2025, 7, 2) - date(2025, 2, 10)).days
    versions = (await api.get(f"/api/v1/portfolio/loans/{loan_id}/schedules", headers=MANAGER)).json()
    assert [(v["version"], v["reason"]) for v in versions] == [
        (1, "disbursement"),
        (2, "tranche"),
        (3, "restructuring"),
    ]
    loan = (await api.get(f"/api/v1/portfolio/loans/{loan_id}", headers=MANAGER)).json()
    assert loan["restructured"] is True and loan["status"] == "active"


async def test_bad_money_is_refused_and_changes_nothing(api: httpx.AsyncClient, connection: AsyncConnection) -> None:
    loan_id = await disbursed_loan(api, connection)
    assert assert_problem(await pay(api, loan_id, "10.005", "2025-02-15"), 422)
    assert assert_problem(await pay(api, loan_id, "-10.00", "2025-02-15"), 422)
    assert (
        assert_problem(await pay(api, loan_id, "10", "2025-02-15", currency="XOF"), 422)["reason"] == "wrong_currency"
    )
    assert assert_problem(await pay(api, loan_id, "10.00", "2099-01-01"), 422)["reason"] == "future_value_date"
    assert assert_problem(await pay(api, loan_id, "10.00", "2024-12-31"), 409)["reason"] == "before_disbursement"
    assert_problem(await pay(api, str(uuid.uuid4()), "10.00", "2025-02-15"), 404)
    statement = (await api.get(f"/api/v1/portfolio/loans/{loan_id}/transactions", headers=MANAGER)).json()
    assert [t["kind"] for t in statement["items"]] == ["disbursement"]


async def test_who_may_change_and_read_a_loans_books(api: httpx.AsyncClient, connection: AsyncConnection) -> None:
    ica = uuid.uuid4()
    loan_id = await disbursed_loan(api, connection, ica_id=ica)
    body = {"amount": {"amount": "10.00", "currency": "CAD"}, "value_date": "2025-02-15"}
    for role, org in ((Role.lender, LENDER), (Role.ica, ica), (Role.funder, None), (Role.analyst, None)):
        response = await api.post(
            f"/api/v1/portfolio/loans/{loan_id}/repayments", json=body, headers=as_role(role, org)
        )
        assert_problem(response, 403)
    url = f"/api/v1/portfolio/loans/{loan_id}/position"
    assert (await api.get(url, headers=as_role(Role.lender, LENDER))).status_code == 200
    assert (await api.get(url, headers=as_role(Role.ica, ica))).status_code == 200
    assert_problem(await api.get(url, headers=as_role(Role.lender, uuid.uuid4())), 404)
    assert_problem(await api.get(url, headers=as_role(Role.ica, uuid.uuid4())), 404)
    assert_problem(
        await api.get(f"/api/v1/portfolio/loans/{loan_id}/transactions", headers=as_role(Role.ica, uuid.uuid4())), 404
    )
    assert_problem(await api.get(url), 401)


async def test_lists_filter_and_page_with_a_cursor(api: httpx.AsyncClient, connection: AsyncConnection) -> None:
    lender = uuid.uuid4()
    ids = {await disbursed_loan(api, connection, lender_id=lender) for _ in range(3)}
    await open_loan(connection, lender_id=lender)  # pending disbursement
    seen: list[str] = []
    cursor = None
    while True:
        params = {"lender_id": str(lender), "status": "active", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/v1/portfolio/loans", params=params, headers=MANAGER)).json()
        seen += [loan["id"] for loan in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    own = (await api.get("/api/v1/portfolio/loans", headers=as_role(Role.lender, lender))).json()["items"]
    assert len(own) == 4 and {loan["lender_id"] for loan in own} == {str(lender)}
