"""Applying lenders' pushes: each item idempotent by the lender's transaction id, rejected alone with its reason,
and the lender sees each push and item in reconciliation."""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from standardwebhooks import Webhook

from services.portfolio.pushes import processor as processor_module
from services.portfolio.pushes.processor import Processor, process_next
from shared.auth import Role
from shared.db import make_sessionmaker
from tests.portfolio.books import MANAGER, disbursed_loan, events_of, open_loan
from tests.portfolio.conftest import as_role
from tests.portfolio.test_pushes import new_lender
from tests.support import assert_problem


async def send(
    api: httpx.AsyncClient, lender_id: str, secret: str, items: list[dict[str, Any]], msg_id: str | None = None
) -> httpx.Response:
    """Signed with the `standardwebhooks` package itself, as a lender's system would."""
    body = json.dumps({"items": items}).encode()
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, now, body.decode())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return await api.post(f"/webhooks/lenders/{lender_id}", content=body, headers=headers)


async def drain(connection: AsyncConnection) -> int:
    sessionmaker = make_sessionmaker(connection, join_transaction_mode="create_savepoint")
    done = 0
    while True:
        async with sessionmaker() as session:
            claimed = await process_next(session)
            await session.commit()
        if not claimed:
            return done
        done += len(claimed)


async def items_of(api: httpx.AsyncClient, lender_id: str, receipt: httpx.Response) -> list[dict[str, Any]]:
    """The items of the push `receipt` acknowledged, as the lender reads them in reconciliation."""
    own = as_role(Role.lender, uuid.UUID(lender_id))
    path = f"/api/v1/portfolio/lenders/{lender_id}/pushes/{receipt.json()['push_id']}/items"
    items: list[dict[str, Any]] = (await api.get(path, headers=own)).json()["items"]
    return items


def repayment(loan_id: str, txn: str, amount: str, currency: str = "XOF", on: str = "2025-02-20") -> dict[str, Any]:
    return {
        "type": "repayment",
        "transaction_id": txn,
        "loan_id": loan_id,
        "amount": {"amount": amount, "currency": currency},
        "value_date": on,
    }


async def xof_loans(api: httpx.AsyncClient, connection: AsyncConnection, lender_id: str, n: int) -> list[str]:
    return [
        await disbursed_loan(
            api, connection, lender_id=uuid.UUID(lender_id), amount="12000000", currency="XOF", term_months=24
        )
        for _ in range(n)
    ]


async def outstanding(api: httpx.AsyncClient, loan_id: str) -> str:
    loan = (await api.get(f"/api/v1/portfolio/loans/{loan_id}", headers=MANAGER)).json()
    amount: str = loan["outstanding_principal"]["amount"]
    return amount


async def test_a_push_of_1000_items_with_3_bad_ones_applies_997_and_says_why_for_each_other(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    lender_id, secret = await new_lender(api, "Banque Agricole du Sahel")
    loans = await xof_loans(api, connection, lender_id, 4)
    items = [repayment(loans[i % 4], f"BAS-{i:05d}", "1000") for i in range(1000)]
    items[17] = repayment(str(uuid.uuid4()), "BAS-00017", "1000")
    items[503] = repayment(loans[0], "BAS-00503", "1000", currency="EUR")
    items[998] = repayment(loans[1], "BAS-00998", "1000.5")
    receipt = await send(api, lender_id, secret, items)
    assert receipt.status_code == 202 and receipt.json()["items"] == 1000
    assert await drain(connection) == 1
    own = as_role(Role.lender, uuid.UUID(lender_id))
    push = (
        await api.get(f"/api/v1/portfolio/lenders/{lender_id}/pushes/{receipt.json()['push_id']}", headers=own)
    ).json()
    assert (push["status"], push["applied"], push["rejected"], push["duplicates"]) == ("processed", 997, 3, 0)
    rejected = (
        await api.get(
            f"/api/v1/portfolio/lenders/{lender_id}/pushes/{push['id']}/items",
            params={"status": "rejected"},
            headers=own,
        )
    ).json()["items"]
    assert [(r["index"], r["transaction_id"], r["reason"]) for r in rejected] == [
        (17, "BAS-00017", "unknown_loan"),
        (503, "BAS-00503", "wrong_currency"),
        (998, "BAS-00998", "too_many_decimals"),
    ]
    applied = (
        await api.get(
            f"/api/v1/portfolio/lenders/{lender_id}/pushes/{push['id']}/items", params={"limit": 1000}, headers=own
        )
    ).json()["items"]
    assert sum(1 for a in applied if a["status"] == "applied" and a["loan_transaction_id"]) == 997
    # each loan received its own items exactly: 250 items of 1,000 XOF, less the bad ones
    received = {loan: 0 for loan in loans}
    for i, item in enumerate(items):
        if i not in (17, 503, 998):
            received[item["loan_id"]] += 1000
    for loan in loans:
        statement = (
            await api.get(f"/api/v1/portfolio/loans/{loan}/transactions", params={"limit": 500}, headers=MANAGER)
        ).json()
        paid = sum(int(t["amount"]["amount"]) for t in statement["items"] if t["kind"] == "repayment")
        assert paid == received[loan]


async def test_a_transaction_id_counts_once_across_pushes_and_a_retried_push_is_not_counted_twice(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    lender_id, secret = await new_lender(api, "Caisse Populaire de Thiès")
    (loan,) = await xof_loans(api, connection, lender_id, 1)
    item = repayment(loan, "CPT-2025-000001", "500000")
    first = await send(api, lender_id, secret, [item], msg_id="msg_cpt_1")
    retry = await send(api, lender_id, secret, [item], msg_id="msg_cpt_1")
    assert first.status_code == 202 and retry.status_code == 200 and retry.json()["duplicate"] is True
    second = await send(
        api, lender_id, secret, [item, repayment(loan, "CPT-2025-000002", "250000")], msg_id="msg_cpt_2"
    )
    reused = await send(api, lender_id, secret, [repayment(loan, "CPT-2025-000001", "999999")], msg_id="msg_cpt_3")
    assert await drain(connection) == 3
    assert await outstanding(api, loan) != "12000000"
    statement = (await api.get(f"/api/v1/portfolio/loans/{loan}/transactions", headers=MANAGER)).json()["items"]
    assert sorted(int(t["amount"]["amount"]) for t in statement if t["kind"] == "repayment") == [250000, 500000]
    own = as_role(Role.lender, uuid.UUID(lender_id))
    url = f"/api/v1/portfolio/lenders/{lender_id}/pushes"
    counted = (await api.get(f"{url}/{second.json()['push_id']}", headers=own)).json()
    assert (counted["applied"], counted["duplicates"]) == (1, 1)
    refused = (await api.get(f"{url}/{reused.json()['push_id']}/items", headers=own)).json()["items"]
    assert refused[0]["reason"] == "transaction_id_reused"
    trace = (await api.get(f"/api/v1/portfolio/lenders/{lender_id}/transactions/CPT-2025-000001", headers=own)).json()
    assert [i["status"] for i in trace["items"]] == ["applied", "duplicate", "rejected"]
    assert_problem(
        await api.get(
            f"/api/v1/portfolio/lenders/{lender_id}/transactions/CPT-2025-000001",
            headers=as_role(Role.lender, uuid.uuid4()),
        ),
        404,
    )


async def test_every_reason_an_item_cannot_apply(api: httpx.AsyncClient, connection: AsyncConnection) -> None:
    lender_id, secret = await new_lender(api, "Microcrédit Bamako")
    other_id, _ = await new_lender(api, "Another Bank")
    (loan,) = await xof_loans(api, connection, lender_id, 1)
    (foreign,) = await xof_loans(api, connection, other_id, 1)
    items: list[Any] = [
        repayment(str(uuid.uuid4()), "R-1", "1000"),
        repayment(foreign, "R-2", "1000"),
        repayment(loan, "R-3", "1000", currency="EUR"),
        repayment(loan, "R-4", "-1000"),
        repayment(loan, "R-5", "1000.5"),
        repayment(loan, "R-6", "1000", on="2999-01-01"),
        repayment(loan, "R-7", "1000", on="2024-01-01"),
        {"type": "refund", "transaction_id": "R-8", "loan_id": loan},
        "not an object",
        {"type": "notice", "transaction_id": "N-1", "loan_id": loan, "message": "borrower asked for a rescheduling"},
        repayment(loan, "R-9", "1000"),
        {**repayment(loan, "D-1", "1000"), "type": "disbursement"},
    ]
    receipt = await send(api, lender_id, secret, items)
    assert receipt.status_code == 202
    await drain(connection)
    got = await items_of(api, lender_id, receipt)
    assert [(i["status"], i["reason"]) for i in got] == [
        ("rejected", "unknown_loan"),
        ("rejected", "foreign_loan"),
        ("rejected", "wrong_currency"),
        ("rejected", "negative_amount"),
        ("rejected", "too_many_decimals"),
        ("rejected", "future_value_date"),
        ("rejected", "before_disbursement"),
        ("rejected", "invalid_item"),
        ("rejected", "invalid_item"),
        ("applied", None),
        ("applied", None),
        ("rejected", "over_disbursement"),
    ]
    statement = (await api.get(f"/api/v1/portfolio/loans/{loan}/transactions", headers=MANAGER)).json()["items"]
    assert [(t["kind"], t["external_id"], t["source"]) for t in statement] == [
        ("disbursement", None, "staff"),
        ("repayment", "R-9", "push"),
    ]
    other = (await api.get(f"/api/v1/portfolio/loans/{foreign}/transactions", headers=MANAGER)).json()["items"]
    assert [t["kind"] for t in other] == ["disbursement"]


async def test_pushes_applied_together_stay_separate_and_a_faulty_one_is_set_aside(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    first_id, first_secret = await new_lender(api, "Banque du Nord")
    second_id, second_secret = await new_lender(api, "Banque du Sud")
    (north,) = await xof_loans(api, connection, first_id, 1)
    (south,) = await xof_loans(api, connection, second_id, 1)
    a = await send(api, first_id, first_secret, [repayment(north, "T-1", "1000"), repayment(north, "T-1", "1000")])
    broken = uuid.uuid4()  # a push whose stored body cannot be read (it cannot come through the API): a fault
    await connection.execute(
        text(
            "INSERT INTO portfolio.lender_pushes (id, lender_id, webhook_id, raw_body, item_count, received_at)"
            " VALUES (:id, :lender, 'msg_broken', :body, 1, clock_timestamp())"
        ),
        {"id": broken, "lender": uuid.UUID(first_id), "body": b'{"items": 5}'},
    )
    # the same transaction id from another lender is that lender's own: it counts
    c = await send(api, second_id, second_secret, [repayment(south, "T-1", "1000")])
    processor = Processor(None, sessionmaker=make_sessionmaker(connection, join_transaction_mode="create_savepoint"))
    await processor.drain()
    pushes = {
        row.id: row
        for row in await connection.execute(
            text("SELECT id, status, applied, duplicates, attempts, last_error FROM portfolio.lender_pushes")
        )
    }
    assert (pushes[uuid.UUID(a.json()["push_id"])].status, pushes[uuid.UUID(a.json()["push_id"])].applied) == (
        "processed",
        1,
    )
    assert pushes[uuid.UUID(a.json()["push_id"])].duplicates == 1
    assert pushes[uuid.UUID(c.json()["push_id"])].applied == 1
    assert pushes[broken].status == "failed" and pushes[broken].attempts == 5
    assert "TypeError" in pushes[broken].last_error
    staff = (await api.get(f"/api/v1/portfolio/lenders/{first_id}/pushes?status=failed", headers=MANAGER)).json()
    assert [p["id"] for p in staff["items"]] == [str(broken)]


async def test_the_processor_goes_on_while_a_batch_was_cut_by_its_limit_and_stops_once_caught_up(
    api: httpx.AsyncClient, connection: AsyncConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    lender_id, secret = await new_lender(api, "Banque du Centre")
    (loan,) = await xof_loans(api, connection, lender_id, 1)
    for n in range(5):
        await send(api, lender_id, secret, [repayment(loan, f"C-{n}", "1000")])
    processor = Processor(
        None, batch_pushes=2, sessionmaker=make_sessionmaker(connection, join_transaction_mode="create_savepoint")
    )
    told: list[tuple[int, bool]] = []
    claimed = processor._claimed

    def spy(push_ids: list[uuid.UUID], backlog: bool) -> None:
        told.append((len(push_ids), backlog))
        claimed(push_ids, backlog)

    processor._claimed = spy  # type: ignore[method-assign]
    claims = 0

    async def counted(*args: Any, **kwargs: Any) -> list[uuid.UUID]:
        nonlocal claims
        claims += 1
        return await process_next(*args, **kwargs)

    monkeypatch.setattr(processor_module, "process_next", counted)
    # 2 + 2 claimed with more behind them, then the last one alone: every push waiting is applied by one drain,
    # which stops there (the next batch waits for the next wake-up)
    assert await processor.drain() == 5
    assert told == [(2, True), (2, True), (1, False)]
    assert claims == 3  # not a fourth claim to find nothing
    applied = await connection.scalar(
        text("SELECT sum(applied) FROM portfolio.lender_pushes WHERE lender_id = :l"), {"l": uuid.UUID(lender_id)}
    )
    assert applied == 5
    statement = (await api.get(f"/api/v1/portfolio/loans/{loan}/transactions", headers=MANAGER)).json()["items"]
    assert [t["external_id"] for t in statement if t["source"] == "push"] == [f"C-{n}" for n in range(5)]


async def test_a_backdated_item_after_another_in_the_same_push_sees_it(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    lender_id, secret = await new_lender(api, "Banque de l'Est")
    (loan,) = await xof_loans(api, connection, lender_id, 1)
    later = repayment(loan, "E-2", "600000", on="2025-03-01")
    earlier = repayment(loan, "E-1", "400000", on="2025-02-20")
    await send(api, lender_id, secret, [later, earlier])
    await drain(connection)
    now = (await api.get(f"/api/v1/portfolio/loans/{loan}", headers=MANAGER)).json()
    replayed = (await api.get(f"/api/v1/portfolio/loans/{loan}/position", headers=MANAGER)).json()
    # the loan's running figures (kept by the push) equal a replay of every transaction from the database
    assert now["outstanding_principal"] == replayed["outstanding_principal"]
    assert replayed["principal_paid"]["amount"] == str(12000000 - int(now["outstanding_principal"]["amount"]))
    statement = (await api.get(f"/api/v1/portfolio/loans/{loan}/transactions", headers=MANAGER)).json()["items"]
    assert sorted(t["external_id"] for t in statement if t["kind"] == "repayment") == ["E-1", "E-2"]
    # 1,000,000 XOF paid: the first instalment's interest (120,000) first, the rest to principal
    assert int(replayed["principal_paid"]["amount"]) > 0


IDENTITIES = {"loan_id", "application_id", "business_id", "ica_id", "transaction_id", "external_id"}


def _without_identities(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: None if k in IDENTITIES else _without_identities(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_identities(v) for v in value]
    return value


def _as_numbers(value: Any) -> Any:
    """A snapshot's amounts as numbers: their text keeps the exponent of where they came from (`"449331.0000"`
    read back from a `numeric` column, `"449331"` as the lender sent it), the same amount either way."""
    if isinstance(value, dict):
        return {k: _as_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_numbers(v) for v in value]
    if isinstance(value, str):
        with contextlib.suppress(InvalidOperation):
            return Decimal(value)
    return value


async def _books(connection: AsyncConnection, loan_id: str) -> tuple[Any, list[Any], list[Any]]:
    loan = (
        await connection.execute(
            text(
                "SELECT status, disbursed, outstanding_principal, credit, written_off_principal, closed_on, book"
                " FROM portfolio.loans WHERE id = :l"
            ),
            {"l": loan_id},
        )
    ).one()
    transactions = (
        await connection.execute(
            text(
                "SELECT kind, amount, currency, value_date, split, allocation, outstanding_after, reversed_at"
                " FROM portfolio.loan_transactions WHERE loan_id = :l ORDER BY seq"
            ),
            {"l": loan_id},
        )
    ).all()
    events = await events_of(connection, loan_id)
    since = [t for t, _ in events].index("loan.disbursed")
    return (*loan[:-1], _as_numbers(loan.book)), [tuple(t) for t in transactions], _without_identities(events[since:])


async def test_repayments_pushed_give_the_same_books_and_events_as_the_same_repayments_entered_one_by_one(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    """A push applies its items on detached ledgers (loans read as plain rows, books restored from their snapshots,
    written set-wise); the staff API applies each on the session's ORM objects. The same repayments — in order,
    backdated, across two pushes, up to an overpayment that closes the loan — must give the same books and events."""
    lender_id, secret = await new_lender(api, "Equivalence Bank")
    pushed, entered = await xof_loans(api, connection, lender_id, 2)
    batches = [
        [("600000", "2025-02-15"), ("550000", "2025-03-20"), ("100000", "2025-03-01")],  # the last one backdated
        [("700000", "2025-04-15"), ("700000", "2025-04-15"), ("12000000", "2025-05-10")],  # beyond the whole loan
    ]
    for n, batch in enumerate(batches):
        items = [repayment(pushed, f"EQ-{n}-{i}", amount, on=on) for i, (amount, on) in enumerate(batch)]
        assert (await send(api, lender_id, secret, items)).status_code == 202
        assert await drain(connection) == 1
        for amount, on in batch:
            response = await api.post(
                f"/api/v1/portfolio/loans/{entered}/repayments",
                json={"amount": {"amount": amount, "currency": "XOF"}, "value_date": on},
                headers=MANAGER,
            )
            assert response.status_code == 201, response.text
    by_push, one_by_one = await _books(connection, pushed), await _books(connection, entered)
    assert by_push[0][0] == "repaid" and len(by_push[1]) == 7  # the disbursement and six repayments
    assert by_push == one_by_one


async def test_a_pushed_tranche_and_a_backdated_repayment_apply_as_the_staff_api_applies_them(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    """The push applier's detached ledgers (plain objects, the history loaded for a backdated item, a new schedule
    version for a tranche) end where the staff API's end: the same balances, schedule and statement."""
    lender_id, secret = await new_lender(api, "Caisse Populaire de Kayes")
    loans = []
    for _ in range(2):
        loan = str(await open_loan(connection, amount="12000000", currency="XOF", lender_id=uuid.UUID(lender_id)))
        terms = {"annual_rate_pct": "12", "frequency": "monthly", "method": "annuity"}
        assert (await api.put(f"/api/v1/portfolio/loans/{loan}/terms", json=terms, headers=MANAGER)).status_code == 200
        first = {"amount": {"amount": "6000000", "currency": "XOF"}, "value_date": "2025-01-15"}
        response = await api.post(f"/api/v1/portfolio/loans/{loan}/disbursements", json=first, headers=MANAGER)
        assert response.status_code == 201, response.text
        loans.append(loan)
    pushed, staffed = loans
    tranche = {**repayment(pushed, "T-1", "6000000", on="2025-03-01"), "type": "disbursement"}
    receipt = await send(
        api,
        lender_id,
        secret,
        [
            repayment(pushed, "R-1", "600000", on="2025-03-20"),
            tranche,
            repayment(pushed, "R-2", "500000", on="2025-02-15"),  # dated before the tranche: the history is read
        ],
    )
    assert receipt.status_code == 202
    await drain(connection)
    items = await items_of(api, lender_id, receipt)
    assert [(i["status"], i["reason"]) for i in items] == [("applied", None)] * 3

    money = {"amount": "600000", "currency": "XOF"}
    for path, body in (
        ("repayments", {"amount": money, "value_date": "2025-03-20"}),
        ("disbursements", {"amount": {**money, "amount": "6000000"}, "value_date": "2025-03-01"}),
        ("repayments", {"amount": {**money, "amount": "500000"}, "value_date": "2025-02-15"}),
    ):
        response = await api.post(f"/api/v1/portfolio/loans/{staffed}/{path}", json=body, headers=MANAGER)
        assert response.status_code == 201, response.text

    def comparable(body: Any) -> Any:
        if isinstance(body, dict):
            skip = {"loan_id", "id", "transaction_id", "external_id", "source", "recorded_at", "push_id", "links"}
            return {k: comparable(v) for k, v in body.items() if k not in skip}
        if isinstance(body, list):
            return [comparable(v) for v in body]
        return body

    for view in ("position?as_of=2025-04-30", "schedule?as_of=2025-04-30", "transactions"):
        got, want = [
            (await api.get(f"/api/v1/portfolio/loans/{loan}/{view}", headers=MANAGER)).json() for loan in loans
        ]
        assert comparable(got) == comparable(want), view
    position = (await api.get(f"/api/v1/portfolio/loans/{pushed}/position?as_of=2025-04-30", headers=MANAGER)).json()
    assert position["disbursed"]["amount"] == "12000000"
