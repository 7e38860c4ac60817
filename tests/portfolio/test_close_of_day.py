"""The close of day: thresholds crossed are announced once, re-running a date changes nothing, history is kept."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.portfolio.loans.daily import close_yesterday
from services.portfolio.loans.service import today
from shared.auth import Role
from tests.portfolio.books import MANAGER, disbursed_loan, events_of, pay
from tests.portfolio.conftest import ADMIN, as_role
from tests.support import assert_problem

ARREARS = ("loan.in_arrears", "loan.defaulted", "loan.cured")


async def close(api: httpx.AsyncClient, day: str) -> dict[str, int]:
    response = await api.post("/api/v1/portfolio/admin/close-of-day", json={"as_of": day}, headers=MANAGER)
    assert response.status_code == 200, response.text
    body: dict[str, int] = response.json()
    return body


async def arrears_events(connection: AsyncConnection, loan_id: str) -> list[tuple[str, str, int]]:
    return [(t, p["as_of"], p["days_past_due"]) for t, p in await events_of(connection, loan_id) if t in ARREARS]


async def test_thresholds_are_announced_once_as_they_are_crossed(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    loan_id = await disbursed_loan(api, connection)  # first instalment due 2025-02-15, nothing paid
    await close(api, "2025-02-15")  # due today: not yet overdue
    assert await arrears_events(connection, loan_id) == []
    await close(api, "2025-02-16")
    assert await arrears_events(connection, loan_id) == [("loan.in_arrears", "2025-02-16", 1)]
    again = await close(api, "2025-02-16")
    assert again["runs"] == 2 and await arrears_events(connection, loan_id) == [("loan.in_arrears", "2025-02-16", 1)]
    await close(api, "2025-05-15")  # 89 days
    await close(api, "2025-05-16")  # 90 days: in default (policy default)
    assert (await arrears_events(connection, loan_id))[-1] == ("loan.defaulted", "2025-05-16", 90)
    # paying everything due by then cures it
    assert (await pay(api, loan_id, "3553.96", "2025-05-20")).status_code == 201
    await close(api, "2025-05-20")
    assert (await arrears_events(connection, loan_id))[-1] == ("loan.cured", "2025-05-20", 0)
    # an earlier date closed late is recorded as it stood, and announces nothing
    await close(api, "2025-03-01")
    assert len(await arrears_events(connection, loan_id)) == 3
    history = (await api.get(f"/api/v1/portfolio/loans/{loan_id}/arrears", headers=MANAGER)).json()
    assert [(h["as_of"], h["days_past_due"], h["state"]) for h in history] == [
        ("2025-05-20", 0, "current"),
        ("2025-05-16", 90, "defaulted"),
        ("2025-05-15", 89, "in_arrears"),
        ("2025-03-01", 14, "in_arrears"),
        ("2025-02-16", 1, "in_arrears"),
        ("2025-02-15", 0, "current"),
    ]
    loan = (await api.get(f"/api/v1/portfolio/loans/{loan_id}", headers=MANAGER)).json()
    assert loan["arrears_state"] == "current"


async def test_the_default_threshold_is_policy_and_versioned(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    loan_id = await disbursed_loan(api, connection)
    changed = await api.put(
        "/api/v1/portfolio/policy",
        json={"arrears_dpd": 1, "default_dpd": 60, "comment": "board decision: stricter default"},
        headers=ADMIN,
    )
    assert changed.status_code == 200 and changed.json()["version"] >= 2
    await close(api, "2025-04-16")  # 60 days late
    events = await arrears_events(connection, loan_id)
    assert events == [("loan.in_arrears", "2025-04-16", 60), ("loan.defaulted", "2025-04-16", 60)]
    payload = next(p for t, p in await events_of(connection, loan_id) if t == "loan.defaulted")
    assert payload["policy_version"] == changed.json()["version"]
    assert (await api.get(f"/api/v1/portfolio/loans/{loan_id}/position?as_of=2025-04-16", headers=MANAGER)).json()[
        "in_default"
    ]


async def test_only_managers_close_a_day_and_not_one_still_running(api: httpx.AsyncClient) -> None:
    body = {"as_of": "2025-02-16"}
    for role in (Role.analyst, Role.lender, Role.ica, Role.funder):
        assert_problem(await api.post("/api/v1/portfolio/admin/close-of-day", json=body, headers=as_role(role)), 403)
    assert_problem(
        await api.post("/api/v1/portfolio/admin/close-of-day", json={"as_of": "2999-01-01"}, headers=ADMIN), 422
    )
    bad_policy = {"arrears_dpd": 30, "default_dpd": 10, "comment": "inverted thresholds"}
    assert_problem(await api.put("/api/v1/portfolio/policy", json=bad_policy, headers=ADMIN), 422)
    assert_problem(await api.put("/api/v1/portfolio/policy", json=bad_policy, headers=MANAGER), 403)


async def test_the_daily_job_closes_yesterday_once(engine: AsyncEngine) -> None:
    await close_yesterday(engine)  # closes it, unless an earlier run of the suite already did
    assert await close_yesterday(engine) is False  # never twice
    async with engine.connect() as connection:
        runs = await connection.scalar(
            text("SELECT runs FROM portfolio.close_of_day_runs WHERE as_of = :d"), {"d": today() - timedelta(days=1)}
        )
    assert runs == 1
