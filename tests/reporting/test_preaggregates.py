"""The pre-aggregates the projections keep (`guarantee_month_ends`, `flow_days`) give exactly the figures the
detailed path computes from the dated rows, also after backdated events change a past month: a repayment with an
earlier value date, a reversal, a late rate for a past month end, a claim paid. And what the projections keep
incrementally equals a recomputation from scratch."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.readmodel import exposure
from services.reporting.readmodel.portfolio import FLOW_DAYS_CLEAR_SQL, FLOW_DAYS_SQL
from services.reporting.reports import flows, guarantees
from shared.db import make_sessionmaker
from shared.events.contracts import EventEnvelope
from tests.reporting.conftest import FUNDER, apply, rebuild_from
from tests.reporting.scenario import (
    D1,
    D2,
    D3,
    L1,
    LOAN_A,
    LOAN_C,
    applications_events,
    guarantees_events,
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
        patched.setattr(flows, "USE_DAY_TOTALS", False)
        detailed = await report(api, name, **params)
    assert kept == detailed
    return kept


async def kept_rows(connection: AsyncConnection) -> dict[str, list[tuple[Any, ...]]]:
    found = {}
    for table in ("guarantee_month_ends", "flow_days"):
        rows = await connection.execute(text(f"SELECT * FROM reporting.{table} ORDER BY 1, 2"))  # noqa: S608
        found[table] = [tuple(r) for r in rows]
    return found


async def recomputed(connection: AsyncConnection) -> dict[str, list[tuple[Any, ...]]]:
    """The pre-aggregates recomputed from scratch (every guarantee, every day), inside a savepoint undone after."""
    async with make_sessionmaker(connection, join_transaction_mode="create_savepoint")() as session:
        await session.execute(text("DELETE FROM reporting.guarantee_month_ends"))
        await exposure.refresh(session, everyone=True)
        days = [d for (d,) in await session.execute(text("SELECT DISTINCT value_date FROM reporting.loan_flows"))]
        await session.execute(text("DELETE FROM reporting.flow_days"))
        await session.execute(text(FLOW_DAYS_CLEAR_SQL), {"days": days})
        await session.execute(text(FLOW_DAYS_SQL), {"days": days})
        await session.flush()
        found = await kept_rows(connection)
        await session.rollback()
    return found


async def test_the_pre_aggregates_equal_the_detailed_path_after_backdated_events(
    api: httpx.AsyncClient, connection: AsyncConnection, scenario: list[EventEnvelope], monkeypatch: pytest.MonkeyPatch
) -> None:
    dates = {"as_of": str(D3)}
    before = await both_ways(api, monkeypatch, "guarantees", **dates)
    year = await both_ways(api, monkeypatch, "flows", **{"from": "2026-01-01", **dates})
    assert (await kept_rows(connection))["guarantee_month_ends"], "the scenario's month ends are kept"

    # backdated: a repayment of A valued 02-20 (its standing from then on), C's repayment of 03-10 reversed, and a
    # EUR rate for 04-30 recorded late (the month end had taken 03-31's)
    march = next(e for e in scenario if e.type == "loan.repayment_applied" and e.payload["value_date"] == "2026-03-10")
    late = [
        repaid(LOAN_A, "2026-02-20", "655957", "0", "11151269", "2026-03-15", "active"),
        reversal(LOAN_C, march, "the cheque bounced"),
        rate("EUR", date(2026, 4, 30), "1.70"),
    ]
    await apply(connection, late)
    after = await both_ways(api, monkeypatch, "guarantees", **dates)
    assert after["total"]["average_exposure_cad"] != before["total"]["average_exposure_cad"]
    moved = await both_ways(api, monkeypatch, "flows", **{"from": "2026-01-01", **dates})
    # February gains A's repayment of 02-20, March loses C's
    assert [m["cad"]["repaid_principal"] for m in moved["total"]["months"][1:3]] != [
        m["cad"]["repaid_principal"] for m in year["total"]["months"][1:3]
    ]
    assert moved["total"]["months"][2]["cad"]["repaid_principal"] == "0.00"
    for on in (D1, D2, date(2026, 4, 30), date(2026, 12, 31)):
        await both_ways(api, monkeypatch, "guarantees", as_of=str(on))
        await both_ways(api, monkeypatch, "guarantees", as_of=str(on), lender=str(L1))
        await both_ways(api, monkeypatch, "flows", **{"from": "2026-01-01", "as_of": str(on), "group_by": "currency"})
    assert await kept_rows(connection) == await recomputed(connection)


async def test_the_feeds_in_another_order_keep_the_same_pre_aggregates(
    api: httpx.AsyncClient, connection: AsyncConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the guarantees feed ahead of the portfolio's: guarantees on loans whose standing has not come yet
    await rebuild_from(connection, applications_events() + guarantees_events() + portfolio_events())
    assert await kept_rows(connection) == await recomputed(connection)
    answer = await both_ways(api, monkeypatch, "guarantees", as_of=str(D3))
    assert (answer["total"]["average_exposure_cad"], answer["total"]["claims_rate"]) == ("30750.00", "0.956098")
