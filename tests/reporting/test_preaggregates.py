"""The pre-aggregates the projections keep (`guarantee_month_ends`, each guarantee's copy of its loan's latest
standing step, `flow_days`, `impact_changes` and `impact_days`) give exactly the figures the detailed path computes from the dated rows, also after backdated events
change a past month: a repayment with an earlier value date, a reversal, a late rate for a past month end, a claim
paid, a business reporting new figures later or backdated, an earlier disbursement, a write-off. And what the
projections keep incrementally equals a recomputation from scratch, whatever the order of the feeds."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.readmodel import exposure, impact
from services.reporting.readmodel.applications import SUBSCRIPTION as APPLICATIONS
from services.reporting.readmodel.portfolio import FLOW_DAYS_CLEAR_SQL, FLOW_DAYS_SQL
from services.reporting.readmodel.portfolio import SUBSCRIPTION as PORTFOLIO
from services.reporting.reports import flows, guarantees
from services.reporting.reports import impact as impact_report
from services.reporting.reports import portfolio as portfolio_report
from shared.db import make_sessionmaker
from shared.events.contracts import EventEnvelope
from tests.reporting.conftest import FUNDER, apply, rebuild_from
from tests.reporting.scenario import (
    B1,
    B1_2026,
    B4,
    B4_2026,
    D1,
    D2,
    D3,
    L1,
    LOAN_A,
    LOAN_C,
    applications_events,
    business,
    guarantees_events,
    loan_event,
    portfolio_events,
    rate,
    repaid,
    reversal,
)


async def report(api: httpx.AsyncClient, name: str, **params: Any) -> dict[str, Any]:
    response = await api.get(f"/api/v1/reporting/{name}", params=params, headers=FUNDER)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def both_ways(api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, name: str, **params: Any) -> dict:
    """The report from the pre-aggregate, and from the detailed path: they must be equal."""
    kept = await report(api, name, **params)
    with monkeypatch.context() as patched:
        patched.setattr(guarantees, "USE_MONTH_ENDS", False)
        patched.setattr(guarantees, "USE_LATEST_STANDING", False)
        patched.setattr(portfolio_report, "USE_LATEST_STANDING", False)
        patched.setattr(flows, "USE_DAY_TOTALS", False)
        patched.setattr(impact_report, "USE_IMPACT_DAYS", False)
        detailed = await report(api, name, **params)
    assert kept == detailed
    return kept


async def kept_rows(connection: AsyncConnection) -> dict[str, list[tuple[Any, ...]]]:
    found = {}
    tables = (
        "guarantee_month_ends",
        "guarantee_month_end_totals",
        "guarantee_standing",
        "flow_days",
        "impact_changes",
        "impact_days",
        "impact_glp_changes",
        "impact_glp_days",
    )
    for table in tables:
        rows = await connection.execute(text(f"SELECT * FROM reporting.{table} ORDER BY 1, 2"))  # noqa: S608
        found[table] = [tuple(r) for r in rows]
    rows = await connection.execute(text(f"SELECT {LOANS_LATEST} FROM reporting.loans ORDER BY loan_id"))  # noqa: S608
    found["loans' latest step"] = [tuple(r) for r in rows]
    return found


LOANS_LATEST = "loan_id, latest_on, latest_outstanding, latest_overdue_from, latest_status"
# each loan's latest standing step, from the steps themselves
LOANS_LATEST_SQL = """
UPDATE reporting.loans l SET (latest_on, latest_outstanding, latest_overdue_from, latest_status) = (
    SELECT s."on", s.outstanding_principal, s.overdue_from, s.status FROM reporting.loan_standing s
    WHERE s.loan_id = l.loan_id ORDER BY s."on" DESC LIMIT 1)
"""


async def recomputed(connection: AsyncConnection) -> dict[str, list[tuple[Any, ...]]]:
    """The pre-aggregates recomputed from scratch (every guarantee, every day), inside a savepoint undone after."""
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        await session.execute(text("DELETE FROM reporting.guarantee_month_ends"))
        await session.execute(text("DELETE FROM reporting.guarantee_month_end_totals"))
        await session.execute(text("DELETE FROM reporting.guarantee_standing"))
        await session.execute(text(LOANS_LATEST_SQL))
        await exposure.refresh(session, everyone=True)
        days = [d for (d,) in await session.execute(text("SELECT DISTINCT value_date FROM reporting.loan_flows"))]
        await session.execute(text("DELETE FROM reporting.flow_days"))
        await session.execute(text(FLOW_DAYS_CLEAR_SQL), {"days": days})
        await session.execute(text(FLOW_DAYS_SQL), {"days": days})
        await impact.rebuild(session)
        await session.flush()
        found = await kept_rows(connection)
        await session.rollback()
    return found


async def month_end_totals(connection: AsyncConnection) -> list[tuple[Any, ...]]:
    """The month-end totals kept, after checking that they are the sums of the month-end rows kept."""
    kept = [tuple(r) for r in await connection.execute(text("SELECT * FROM reporting.guarantee_month_end_totals"))]
    summed = await connection.execute(
        text("SELECT month_end, sum(exposure_cad), count(*) FROM reporting.guarantee_month_ends GROUP BY month_end")
    )
    assert sorted(kept) == sorted(tuple(r) for r in summed)
    return sorted(kept)


async def test_the_pre_aggregates_equal_the_detailed_path_after_backdated_events(
    api: httpx.AsyncClient, connection: AsyncConnection, scenario: list[EventEnvelope], monkeypatch: pytest.MonkeyPatch
) -> None:
    dates = {"as_of": str(D3)}
    before = await both_ways(api, monkeypatch, "guarantees", **dates)
    year = await both_ways(api, monkeypatch, "flows", **{"from": "2026-01-01", **dates})
    assert (await kept_rows(connection))["guarantee_month_ends"], "the scenario's month ends are kept"
    totals_before = await month_end_totals(connection)
    assert len(totals_before) >= 8

    # backdated: a repayment of A valued 02-20 (its standing from then on), C's repayment of 03-10 reversed, and a
    # EUR rate for 04-30 recorded late (the month end had taken 03-31's)
    march = next(e for e in scenario if e.type == "loan.repayment_applied" and e.payload["value_date"] == "2026-03-10")
    late = [
        repaid(LOAN_A, "2026-02-20", "655957", "0", "11151269", "2026-03-15", "active"),
        reversal(LOAN_C, march, "the cheque bounced"),
        rate("EUR", date(2026, 4, 30), "1.70"),
    ]
    await apply(connection, late)
    totals_after = await month_end_totals(connection)
    assert totals_after != totals_before  # February to April moved
    after = await both_ways(api, monkeypatch, "guarantees", **dates)
    assert after["total"]["average_exposure_cad"] != before["total"]["average_exposure_cad"]
    moved = await both_ways(api, monkeypatch, "flows", **{"from": "2026-01-01", **dates})
    # February gains A's repayment of 02-20, March loses C's
    assert [m["cad"]["repaid_principal"] for m in moved["total"]["months"][1:3]] != [
        m["cad"]["repaid_principal"] for m in year["total"]["months"][1:3]
    ]
    assert moved["total"]["months"][2]["cad"]["repaid_principal"] == "0.00"
    # the copies of the latest steps are read on D3 and after (every latest step began by then), not before
    starts = await connection.execute(
        text(
            "SELECT (SELECT max(latest_on) FROM reporting.loans), (SELECT max(standing_on) FROM reporting.guarantee_standing)"
        )
    )
    assert all(D2 < start <= D3 for start in starts.one())
    for on in (D1, D2, D3, date(2026, 4, 30), date(2026, 12, 31)):
        await both_ways(api, monkeypatch, "guarantees", as_of=str(on))
        await both_ways(api, monkeypatch, "guarantees", as_of=str(on), lender=str(L1))
        # the loans' copies of their latest step (read on and after 09-15, the latest step's start) and the standing
        await both_ways(api, monkeypatch, "portfolio", as_of=str(on))
        await both_ways(api, monkeypatch, "portfolio", as_of=str(on), group_by="currency", lender=str(L1))
        await both_ways(api, monkeypatch, "flows", **{"from": "2026-01-01", "as_of": str(on), "group_by": "currency"})
    assert await kept_rows(connection) == await recomputed(connection)


async def test_the_feeds_in_another_order_keep_the_same_pre_aggregates(
    api: httpx.AsyncClient, connection: AsyncConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the guarantees feed ahead of the portfolio's: guarantees on loans whose standing has not come yet
    await rebuild_from(connection, applications_events() + guarantees_events() + portfolio_events())
    assert await kept_rows(connection) == await recomputed(connection)
    in_order = await month_end_totals(connection)
    # the portfolio's feed replayed from the start alone (its tables and the month ends emptied, the guarantees kept)
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        assert PORTFOLIO.reset is not None
        await PORTFOLIO.reset(session, 0)
        await session.commit()
    assert await month_end_totals(connection) == []
    # the replay's rates first: no loan's standing back yet, so no exposure (the guarantees' copies of their loan's
    # latest step emptied with the standing)
    rates = [e for e in portfolio_events() if e.type.startswith("fx.")]
    await apply(connection, rates)
    emptied = await both_ways(api, monkeypatch, "guarantees", as_of=str(D3))
    assert (emptied["total"]["exposure_cad"], emptied["rates"]["missing"]) == ("0.00", [])
    await apply(connection, [e for e in portfolio_events() if not e.type.startswith("fx.")])
    assert await month_end_totals(connection) == in_order
    answer = await both_ways(api, monkeypatch, "guarantees", as_of=str(D3))
    assert (answer["total"]["average_exposure_cad"], answer["total"]["claims_rate"]) == ("30750.00", "0.956098")


async def test_the_impact_totals_by_date_equal_the_detailed_path_after_later_and_backdated_reports(
    api: httpx.AsyncClient, connection: AsyncConnection, scenario: list[EventEnvelope], monkeypatch: pytest.MonkeyPatch
) -> None:
    dates = (date(2025, 12, 31), D1, D2, D3, date(2026, 12, 31))
    before = {on: await both_ways(api, monkeypatch, "impact", as_of=str(on)) for on in dates}
    late = [
        # B1 reports again on 08-01: 20 employees (14 before), owned 10 % by women, 1 woman of 7 on the board, none
        # among its senior managers: no longer 2X (its loan A leaves the 2X part of the portfolio)
        business(
            "business.updated",
            B1,
            B1_2026
            | {
                "reported_on": "2026-08-01",
                "employees_total": 20,
                "women_ownership_pct": 10,
                "board_seats_women": 1,
                "senior_managers_women": 0,
            },
        ),
        # B4 (first disbursed 04-01, first report 03-01) sends a report dated 03-25, before its first disbursement:
        # the new baseline (5 employees), in force until further notice
        business("business.updated", B4, B4_2026 | {"reported_on": "2026-03-25", "employees_total": 5}),
        # C (B3's loan) turns out to have had a first tranche on 2025-12-20: B3 financed from then on
        loan_event(
            "loan.disbursed",
            LOAN_C,
            "2025-12-20",
            [],
            transaction_id=str(uuid.uuid4()),
            amount="1000.00",
            value_date="2025-12-20",
            split={"lender": "1000.00"},
            disbursed_total="1000.00",
            schedule_version=1,
        ),
    ]
    await apply(connection, late)
    after = {on: await both_ways(api, monkeypatch, "impact", as_of=str(on)) for on in dates}

    def figure(body: dict[str, Any], name: str) -> int:
        value: int = body["total"][name]["value"]
        return value

    # B3 financed by 2025-12-31 (nobody was): its 20 employees in force then, all maintained from its baseline
    assert [figure(before[dates[0]], n) for n in ("businesses_financed", "jobs_maintained")] == [0, 0]
    assert [figure(after[dates[0]], n) for n in ("businesses_financed", "jobs_maintained")] == [1, 20]
    # D3: B1's 20 employees against its 10 at the baseline (+6 created), B4's 5 against 5 (8 before: 0 created, 5
    # maintained instead of 8)
    assert figure(after[D3], "employees_total") == figure(before[D3], "employees_total") + 6 - 3
    assert figure(after[D3], "jobs_created") == figure(before[D3], "jobs_created") + 6
    assert figure(after[D3], "jobs_maintained") == figure(before[D3], "jobs_maintained") - 3
    assert figure(after[D3], "women_led_2x") == figure(before[D3], "women_led_2x") - 1
    share = [body["total"]["two_x_portfolio_share"] for body in (before[D3], after[D3])]
    assert share[1]["gross_loan_portfolio_cad"] == share[0]["gross_loan_portfolio_cad"]
    assert Decimal(share[1]["two_x_gross_loan_portfolio_cad"]) < Decimal(share[0]["two_x_gross_loan_portfolio_cad"])
    assert after[D1] == before[D1]  # B3 financed earlier, from the same report; B4 not yet financed
    for on in dates:  # filters, a scope and groups on the detailed path, the total from the days when unfiltered
        await both_ways(api, monkeypatch, "impact", as_of=str(on), group_by="lender,country")
        await both_ways(api, monkeypatch, "impact", as_of=str(on), country="SN")
    assert await kept_rows(connection) == await recomputed(connection)


async def test_the_impact_totals_by_date_whatever_the_order_of_the_feeds_and_after_a_replay(
    api: httpx.AsyncClient, connection: AsyncConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    dates = (D1, D2, D3)
    await rebuild_from(connection, applications_events() + portfolio_events() + guarantees_events())
    expected = {on: await both_ways(api, monkeypatch, "impact", as_of=str(on)) for on in dates}
    assert expected[D3]["total"]["businesses_financed"]["value"] == 4
    kept = await kept_rows(connection)
    # the loans ahead of the businesses' reports: financed first, their facts coming after
    await rebuild_from(connection, portfolio_events() + guarantees_events() + applications_events())
    assert await kept_rows(connection) == kept
    assert {on: await both_ways(api, monkeypatch, "impact", as_of=str(on)) for on in dates} == expected
    # the applications feed replayed from the start alone (its tables emptied, the loans kept)
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        assert APPLICATIONS.reset is not None
        await APPLICATIONS.reset(session, 0)
        await session.commit()
    emptied = await both_ways(api, monkeypatch, "impact", as_of=str(D3))
    assert (emptied["total"]["businesses_financed"]["value"], emptied["total"]["members_total"]["value"]) == (4, 0)
    await apply(connection, applications_events())
    assert await kept_rows(connection) == kept
    assert {on: await both_ways(api, monkeypatch, "impact", as_of=str(on)) for on in dates} == expected
