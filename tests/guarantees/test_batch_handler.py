"""The portfolio feed's batch handler in the guarantees service does what the per-event handler does, whatever
the pages: the same guarantees (issued, refused, following, overdue, released) and the same events announced, in
the same order and numbered the same."""

from __future__ import annotations

import random
import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.guarantees.issuance.events import subscription
from shared.db import make_sessionmaker
from shared.events.contracts import EventEnvelope
from tests.guarantees.test_issuance import TODAY, loan_event, new_loan, opened, setup
from tests.guarantees.test_room import FakeFx
from tests.reporting.scenario import paid
from tests.support import handle_in_pages, service_app


def arrears(event_type: str, loan: dict[str, Any], outstanding: str, days: int) -> EventEnvelope:
    return loan_event(
        event_type,
        loan,
        outstanding_principal=outstanding,
        as_of=TODAY.isoformat(),
        days_past_due=days,
        bucket="31-60",
        policy_version=1,
    )


def feed(lender: uuid.UUID) -> list[EventEnvelope]:
    a, b, c, d = (new_loan(lender) for _ in range(4))
    events = [
        opened(a, principal="6500000"),
        opened(b, principal="6500000"),
        opened(c, coverage="99"),  # outside the policy: refused, and never follows its loan
        opened(a),  # delivered twice: one guarantee
        loan_event("loan.disbursed", a, outstanding_principal="26000000"),
        loan_event("loan.disbursed", b, outstanding_principal="13000000"),
        loan_event("loan.disbursed", c, outstanding_principal="26000000"),
        loan_event("loan.repayment_applied", a, outstanding_principal="25000000"),
        loan_event("loan.repayment_applied", a, outstanding_principal="25000000"),  # unchanged: nothing announced
        arrears("loan.in_arrears", b, "13000000", 35),
        loan_event("loan.repayment_applied", b, outstanding_principal="12000000"),
        arrears("loan.defaulted", b, "12000000", 95),  # overdue since the first crossing: kept
        # after the others moved: their exposures as they are now breach the lender's limit (as they were, would not)
        opened(d, principal="6500000"),
        loan_event("loan.disbursed", d, outstanding_principal="6500000"),
        arrears("loan.cured", b, "12000000", 0),
        arrears("loan.in_arrears", b, "12000000", 40),  # overdue again, since a later date
        loan_event("loan.repayment_applied", a, outstanding_principal="0"),
        loan_event("loan.repaid", a, outstanding_principal="0", status="repaid"),
        loan_event("loan.repayment_applied", d, outstanding_principal="6000000"),
        # interest only, in date order: the batch handler does not even look its guarantee up, and both leave it
        loan_event(
            "loan.repayment_applied", b, outstanding_principal="12000000", allocation=paid("0", "40000"), standing=[{}]
        ),
        loan_event("loan.repayment_applied", b, outstanding_principal="11500000", allocation=paid("500000", "0")),
        # interest only but backdated: replayed before a later payment, it took that one's interest, which then paid
        # principal: the outstanding moved (its standing is the steps from its date on)
        loan_event(
            "loan.repayment_applied",
            b,
            outstanding_principal="11400000",
            allocation=paid("0", "40000"),
            standing=[{}, {}],
        ),
        loan_event("loan.repaid", a, outstanding_principal="0", status="repaid"),  # released already
    ]
    return events


async def outcome(connection: AsyncConnection) -> tuple[list[Any], list[Any]]:
    guarantees = await connection.execute(
        text(
            "SELECT loan_id, status, refusal, coverage_pct, cap_cad, principal, outstanding_principal, overdue_since,"
            " issued_on, exposure_cad_at_issue FROM guarantees.guarantees ORDER BY loan_id"
        )
    )
    announced = await connection.execute(
        text(
            "SELECT o.type, o.aggregate_seq, g.loan_id, o.payload - 'guarantee_id' AS payload"
            " FROM guarantees.outbox o JOIN guarantees.guarantees g ON CAST(g.id AS text) = o.aggregate_id"
            " ORDER BY o.id"
        )
    )
    return [tuple(r) for r in guarantees], [tuple(r) for r in announced]


async def run(connection: AsyncConnection, events: list[EventEnvelope], sizes: list[int] | None) -> Any:
    """Apply `events` (per event, or in pages of `sizes` through the batch handler) in a savepoint; answers what
    they left, then undoes it."""
    handling = subscription(FakeFx())  # type: ignore[arg-type]
    savepoint = await connection.begin_nested()
    try:
        async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
            if sizes is None:
                for event in events:
                    await handling.handler(session, event)
            else:
                await handle_in_pages(session, handling.batch_handler, events, sizes)
            await session.commit()
        return await outcome(connection)
    finally:
        await savepoint.rollback()


async def test_the_batch_handler_does_what_the_per_event_handler_does(connection: AsyncConnection) -> None:
    app = service_app("guarantees", connection)
    app.state.peers = FakeFx()
    lender = uuid.uuid4()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guarantees") as api:
        await setup(api, lender, capital="25000.00")  # per lender: at most 22,500.00 CAD
    events = feed(lender)
    expected = await run(connection, events, None)
    guarantees, announced = expected
    assert sorted(g[1] for g in guarantees) == ["active", "refused", "refused", "released"]
    assert sum("per lender" in (g[2] or "") for g in guarantees) == 1  # d's
    assert [a[0] for a in announced].count("guarantee.exposure_changed") == 7
    assert [a[0] for a in announced].count("guarantee.released") == 1
    assert sum(g[7] is not None for g in guarantees) == 1  # b, in arrears again after it was cured
    rng = random.Random(7)
    layouts = [[1] * len(events), [2] * len(events), [5] * len(events), [len(events)]]
    layouts += [[rng.randint(1, 8) for _ in events] for _ in range(3)]
    for sizes in layouts:
        assert await run(connection, events, sizes) == expected, sizes[:4]
