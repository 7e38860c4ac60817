"""The pipeline on the fixed scenario: statuses as of a date, approval rate, median days to decision, by hand."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.readmodel.applications import SUBSCRIPTION as APPLICATIONS
from shared.auth import Role
from shared.events.contracts import EventEnvelope
from tests.reporting.conftest import FUNDER, apply, as_role
from tests.reporting.scenario import D1, D3, I1, L2, application_event


async def pipeline(api: httpx.AsyncClient, headers: dict[str, str] = FUNDER, **params: Any) -> dict[str, Any]:
    response = await api.get("/api/v1/reporting/pipeline", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_pipeline_at_three_dates(api: httpx.AsyncClient, scenario: list[EventEnvelope]) -> None:
    # days from first submission to decision: app1 20, app2 20, app3 30, app4 42 (returned 02-10, resubmitted
    # 02-20, approved 03-15), app5 10 (rejected); app6 withdrawn, app7 under review
    early = await pipeline(api, as_of="2026-02-15")  # app4 is back with its ICA; 3 decided: 20, 20, 30
    assert early["total"] == {
        "applications": 4,
        "by_status": {"approved": 3, "returned": 1},
        "approved": 3,
        "rejected": 0,
        "approval_rate": "1.000000",
        "median_days_to_decision": "20",
    }
    d1 = await pipeline(api, as_of=str(D1))  # 20, 20, 30, 42: median 25
    assert (d1["total"]["by_status"], d1["total"]["median_days_to_decision"]) == ({"approved": 4}, "25")
    d3 = await pipeline(api, as_of=str(D3))  # 10, 20, 20, 30, 42: median 20; 4 approved of 5 decided
    assert d3["total"] == {
        "applications": 7,
        "by_status": {"approved": 4, "rejected": 1, "under_review": 1, "withdrawn": 1},
        "approved": 4,
        "rejected": 1,
        "approval_rate": "0.800000",
        "median_days_to_decision": "20",
    }
    assert (await pipeline(api, as_of=str(date(2025, 10, 31))))["total"]["applications"] == 0


async def test_an_application_sent_to_committee_is_counted_in_committee(
    api: httpx.AsyncClient, scenario: list[EventEnvelope], connection: AsyncConnection
) -> None:
    sent = application_event("application.sent_to_committee", 7, "2026-10-05", "under_review", "committee", score="72")
    assert sent.type in APPLICATIONS.types  # the read model subscribes to it
    await apply(connection, [sent])
    before = await pipeline(api, as_of=str(D3))
    assert before["total"]["by_status"] == {"approved": 4, "rejected": 1, "under_review": 1, "withdrawn": 1}
    after = await pipeline(api, as_of="2026-10-05")
    assert after["total"]["by_status"] == {"approved": 4, "committee": 1, "rejected": 1, "withdrawn": 1}
    assert after["total"]["applications"] == 7 and after["total"]["approval_rate"] == "0.800000"


async def test_pipeline_grouped_and_scoped(api: httpx.AsyncClient, scenario: list[EventEnvelope]) -> None:
    by_sector = await pipeline(api, as_of=str(D3), group_by="sector")
    found = {g["key"]["sector"]: g for g in by_sector["groups"]}
    # agriculture: apps 1, 3, 5, 7 (B1, B3): 2 approved, 1 rejected: 0.666667; median of 20, 30, 10 = 20
    assert (found["agriculture"]["approval_rate"], found["agriculture"]["median_days_to_decision"]) == (
        "0.666667",
        "20",
    )
    assert found["crafts"]["by_status"] == {"approved": 1, "withdrawn": 1}  # apps 2 and 6
    ica = await pipeline(api, as_of=str(D3), headers=as_role(Role.ica, I1))  # apps 1, 3, 5, 7
    assert ica["total"]["applications"] == 4 and ica["total"]["approval_rate"] == "0.666667"
    lender = await pipeline(api, as_of=str(D3), headers=as_role(Role.lender, L2))  # apps 2, 4, 6: 20 and 42
    assert (lender["total"]["applications"], lender["total"]["median_days_to_decision"]) == (3, "31")
    sheet = await api.get("/api/v1/reporting/pipeline", params={"as_of": str(D3), "format": "csv"}, headers=FUNDER)
    assert sheet.text.splitlines() == [
        "applications,status_approved,status_rejected,status_under_review,status_withdrawn,approval_rate,"
        "median_days_to_decision",
        "7,4,1,1,1,0.800000,20",
    ]
