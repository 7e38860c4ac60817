"""Impact figures on the fixed scenario, computed by hand at three dates (facts in force at each date)."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Role
from shared.events.contracts import EventEnvelope
from tests.reporting.conftest import FUNDER, apply, as_role
from tests.reporting.scenario import B2, D1, D2, D3, I2, business, facts


async def impact(api: httpx.AsyncClient, headers: dict[str, str] = FUNDER, **params: Any) -> dict[str, Any]:
    response = await api.get("/api/v1/reporting/impact", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def values(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: v["value"] if isinstance(v, dict) else v for k, v in figures.items() if k != "key"}


async def test_impact_at_three_dates_equals_the_hand_computed_figures(
    api: httpx.AsyncClient, scenario: list[EventEnvelope]
) -> None:
    # D1: B1, B2, B3 financed (D's first disbursement is 04-01). In force: B1 2025-12-01, B2 2026-01-10, B3 2025-11-01,
    # which are also their baselines (reports before their first disbursement): no job created, 10 + 6 + 20 kept.
    # 2X: B1 58 % women-owned, B3 3/9 board seats = 33 %; B2 1/5 board, 0/2 managers: no.
    # Governance: B2's board is not elected. 2X share: A 27,000 + C 54,000 of 81,000 (HTG has no rate).
    d1 = await impact(api, as_of=str(D1))
    assert values(d1["total"]) == {
        "businesses_financed": 3,
        "members_total": 460,  # 120 + 40 + 300
        "members_women": 170,  # 70 + 10 + 90
        "jobs_created": 0,
        "jobs_maintained": 36,
        "employees_total": 36,
        "employees_women": 11,  # 4 + 2 + 5
        "board_seats_total": 21,  # 7 + 5 + 9
        "board_seats_women": 8,  # 4 + 1 + 3
        "women_led_2x": 2,
        "democratic_governance": 2,
        "general_assembly_held": 3,
        "board_elected_by_members": 2,
        "one_member_one_vote": 3,
        "environmental_practices": 2,
        "businesses_with_facts": 3,
        "two_x_portfolio_share": "1.000000",
    }
    assert d1["total"]["jobs_created"]["iris"] == "PI3687" and d1["total"]["board_seats_women"]["iris"] == "OI8118"

    # D2: B4 financed too (report of 03-01: 8 employees, baseline and now). B1's report of 05-01 is in force:
    # 14 employees (10 at its first disbursement: 4 created, 10 kept), 130 members (75 women), 6 women employees.
    # 2X share: A 28,800 + C 49,000 of 93,800 = 0.829424
    d2 = await impact(api, as_of=str(D2))
    assert values(d2["total"]) == values(d1["total"]) | {
        "businesses_financed": 4,
        "members_total": 530,  # 130 + 40 + 300 + 60
        "members_women": 195,  # 75 + 10 + 90 + 20
        "jobs_created": 4,
        "jobs_maintained": 44,  # 10 + 6 + 20 + 8
        "employees_total": 48,  # 14 + 6 + 20 + 8
        "employees_women": 16,  # 6 + 2 + 5 + 3
        "board_seats_total": 27,
        "board_seats_women": 9,
        "board_elected_by_members": 3,
        "one_member_one_vote": 4,
        "businesses_with_facts": 4,
        "two_x_portfolio_share": "0.829424",
    }
    assert d2["total"]["two_x_portfolio_share"]["two_x_gross_loan_portfolio_cad"] == "77800.00"

    # D3: B3's report of 07-01 (18 employees, 20 at baseline: none created, 18 kept); C written off and D repaid
    # stay financed. 2X share: only A is left in the portfolio (25,600.00), B1 is 2X.
    d3 = await impact(api, as_of=str(D3))
    assert values(d3["total"]) == values(d2["total"]) | {
        "jobs_created": 4,
        "jobs_maintained": 42,  # 10 + 6 + 18 + 8
        "employees_total": 46,
        "two_x_portfolio_share": "1.000000",
    }


async def test_impact_grouped_and_scoped(api: httpx.AsyncClient, scenario: list[EventEnvelope]) -> None:
    by_sector = await impact(api, as_of=str(D2), group_by="sector")
    found = {g["key"]["sector"]: values(g) for g in by_sector["groups"]}
    # agriculture: B1 and B3; crafts: B2; services: B4
    assert {s: (f["businesses_financed"], f["employees_total"]) for s, f in found.items()} == {
        "agriculture": (2, 34),
        "crafts": (1, 6),
        "services": (1, 8),
    }
    assert found["agriculture"]["two_x_portfolio_share"] == "1.000000"
    assert found["crafts"]["two_x_portfolio_share"] is None  # HTG only: no CAD portfolio to divide by
    # I2's partners: B2 and B4
    ica = await impact(api, as_of=str(D2), headers=as_role(Role.ica, I2))
    assert values(ica["total"])["businesses_financed"] == 2 and values(ica["total"])["members_total"] == 100
    # D (16,000.00) is I2's only CAD-convertible loan and B4 is not 2X
    assert values(ica["total"])["two_x_portfolio_share"] == "0.000000"
    sheet = await api.get("/api/v1/reporting/impact", params={"as_of": str(D2), "group_by": "country"}, headers={
        **FUNDER, "Accept": "text/csv"})  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(sheet.text)))
    assert [(r["country"], r["businesses_financed"], r["jobs_created_PI3687"]) for r in rows] == [
        ("HT", "1", "0"),
        ("PE", "1", "0"),
        ("SN", "2", "4"),
    ]


async def test_a_business_first_reporting_after_its_first_disbursement_has_its_earliest_report_as_baseline(
    api: httpx.AsyncClient, connection: AsyncConnection, scenario: list[EventEnvelope]
) -> None:
    # B2 (the only business in HT, disbursed 02-01) with no report until 03-15 (4 employees), then 9 on 06-01
    await connection.execute(text("DELETE FROM reporting.business_facts WHERE business_id = :b"), {"b": B2})
    await apply(
        connection,
        [
            business("business.updated", B2, facts("2026-03-15", employees_total=4)),
            business("business.updated", B2, facts("2026-06-01", employees_total=9)),
        ],
    )

    async def haiti(on: str) -> dict[str, Any]:
        body = await impact(api, as_of=on, group_by="country")
        return next(values(g) for g in body["groups"] if g["key"] == {"country": "HT"})

    before = await haiti("2026-03-01")  # financed, nothing reported yet
    assert (before["businesses_with_facts"], before["jobs_created"], before["jobs_maintained"]) == (0, 0, 0)
    first = await haiti(str(D1))  # the 03-15 report is both in force and the baseline
    assert (first["jobs_created"], first["jobs_maintained"]) == (0, 4)
    later = await haiti(str(D2))  # 9 now against 4 at the baseline
    assert (later["jobs_created"], later["jobs_maintained"], later["employees_total"]) == (5, 4, 9)
