"""Who sees what (an ICA its partners' figures, a lender its own loans, an outsider nothing), nobody writes, bad
input is a problem, and the CSV form of a report."""

from __future__ import annotations

import csv
import io
import uuid

import httpx
import pytest

from shared.auth import Role
from shared.events.contracts import EventEnvelope
from tests.reporting.conftest import ANALYST, FUNDER, as_role
from tests.reporting.scenario import D2, I1, I2, L1, L2
from tests.support import assert_problem

PATHS = (
    "/api/v1/reporting/portfolio",
    "/api/v1/reporting/impact",
    "/api/v1/reporting/pipeline",
    "/api/v1/reporting/flows",
    "/api/v1/reporting/guarantees",
)


async def test_an_ica_sees_its_partners_and_a_lender_its_loans_only(
    api: httpx.AsyncClient, scenario: list[EventEnvelope]
) -> None:
    params = {"as_of": str(D2), "group_by": "lender"}
    # I1's partners hold A (28,800.00, PAR90) and C (49,000.00, DPD 51)
    ica = (await api.get("/api/v1/reporting/portfolio", params=params, headers=as_role(Role.ica, I1))).json()
    assert (ica["total"]["loans"], ica["total"]["cad"]["gross_loan_portfolio"]) == (2, "77800.00")
    assert [g["key"]["lender"] for g in ica["groups"]] == [str(L1)]
    # L2 lent B (HTG, no rate) and D (16,000.00)
    lender = (await api.get("/api/v1/reporting/portfolio", params=params, headers=as_role(Role.lender, L2))).json()
    assert (lender["total"]["loans"], lender["total"]["cad"]["gross_loan_portfolio"]) == (2, "16000.00")
    assert {c["currency"] for c in lender["total"]["by_currency"]} == {"HTG", "XOF"}
    # asking for another ICA's figures by filter gives nothing: the scope and the filter both apply
    other = await api.get(
        "/api/v1/reporting/portfolio", params={**params, "ica": str(I2)}, headers=as_role(Role.ica, I1)
    )
    assert other.json()["total"]["loans"] == 0 and other.json()["groups"] == []


@pytest.mark.parametrize("role", [Role.ica, Role.lender])
async def test_an_outsider_sees_nothing_of_others(
    api: httpx.AsyncClient, scenario: list[EventEnvelope], role: Role
) -> None:
    headers = as_role(role, uuid.uuid4())
    portfolio = (await api.get(PATHS[0], params={"as_of": str(D2), "group_by": "country"}, headers=headers)).json()
    assert portfolio["total"]["loans"] == 0 and portfolio["total"]["cad"]["gross_loan_portfolio"] == "0.00"
    assert portfolio["total"]["by_currency"] == [] and portfolio["groups"] == []
    impact = (await api.get(PATHS[1], params={"as_of": str(D2)}, headers=headers)).json()
    assert impact["total"]["businesses_financed"]["value"] == 0
    pipeline = (await api.get(PATHS[2], params={"as_of": str(D2)}, headers=headers)).json()
    assert pipeline["total"]["applications"] == 0
    guaranteed = (await api.get(PATHS[4], params={"as_of": str(D2)}, headers=headers)).json()
    assert guaranteed["total"]["exposure_cad"] == "0.00" and guaranteed["total"]["leverage"] is None
    flowed = (await api.get(PATHS[3], params={"as_of": str(D2), "group_by": "country"}, headers=headers)).json()
    assert flowed["groups"] == [] and all(not m["by_currency"] for m in flowed["total"]["months"])
    assert {v for m in flowed["total"]["months"] for v in m["cad"].values()} == {"0.00"}
    listed = (await api.get(PATHS[0], params={"as_of": str(D2), "format": "csv"}, headers=headers)).text
    assert listed.splitlines()[1].startswith("0,0,0.00,0.00,")


@pytest.mark.parametrize("path", PATHS)
async def test_nobody_writes_and_a_caller_needs_a_key(api: httpx.AsyncClient, path: str) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert_problem(await api.request(method, path, headers=FUNDER, json={}), 405)
    assert_problem(await api.get(path), 401)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"as_of": "2026-02-30"}, "as_of"),
        ({"as_of": "soon"}, "as_of"),
        ({"as_of": ""}, "as_of"),
        ({"group_by": "country,colour"}, "group_by"),
        ({"group_by": "country,country"}, "group_by"),
        ({"country": "XX"}, "country"),
        ({"region": "999"}, "region"),
        ({"lender": "not-a-uuid"}, "lender"),
        ({"currency": "ABC"}, "currency"),
        ({"format": "xml"}, "format"),
    ],
)
async def test_a_bad_date_or_filter_is_a_422_problem(
    api: httpx.AsyncClient, params: dict[str, str], parameter: str
) -> None:
    for path in PATHS:
        body = assert_problem(await api.get(path, params=params, headers=ANALYST), 422)
        assert parameter in str(body["errors"]), body


async def test_csv_has_a_header_row_then_one_row_per_group_with_plain_amounts(
    api: httpx.AsyncClient, scenario: list[EventEnvelope]
) -> None:
    response = await api.get(
        "/api/v1/reporting/portfolio",
        params={"as_of": str(D2), "group_by": "currency", "format": "csv"},
        headers=FUNDER,
    )
    assert response.status_code == 200 and response.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="portfolio-2026-06-30.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == [
        "currency", "loans", "borrowers", "gross_loan_portfolio_cad", "par30_cad", "par30_ratio", "par90_cad",
        "par90_ratio", "aging_current_cad", "aging_1_30_cad", "aging_31_60_cad", "aging_61_90_cad",
        "aging_91_180_cad", "aging_over_180_cad", "defaults_loans", "defaults_cad", "written_off_loans",
        "written_off_cad", "gross_loan_portfolio_local", "par30_local", "par90_local", "defaults_local",
        "written_off_local",
    ]  # fmt: skip
    assert rows[1:] == [
        # HTG has no rate: its CAD cells are empty, never 0; B is 121 days late (PAR30, PAR90, in default)
        ["HTG", "1", "1", "", "", "", "", "", "", "", "", "", "", "", "1", "", "0", "",
         "1000000.00", "1000000.00", "1000000.00", "1000000.00", "0.00"],
        ["USD", "1", "1", "49000.00", "49000.00", "1.000000", "0.00", "0.000000", "0.00", "0.00", "49000.00",
         "0.00", "0.00", "0.00", "0", "0.00", "0", "0.00", "35000.00", "35000.00", "0.00", "0.00", "0.00"],
        ["XOF", "2", "2", "44800.00", "28800.00", "0.642857", "28800.00", "0.642857", "16000.00", "0.00", "0.00",
         "0.00", "28800.00", "0.00", "1", "28800.00", "0", "0.00", "18366796", "11807226", "11807226", "11807226",
         "0"],
    ]  # fmt: skip
    by_accept = await api.get(
        "/api/v1/reporting/portfolio", params={"as_of": str(D2)}, headers={**FUNDER, "Accept": "text/csv"}
    )
    lines = by_accept.text.splitlines()
    assert len(lines) == 2 and lines[1].startswith("4,4,93800.00,77800.00,0.829424,28800.00,0.307036,")


async def test_a_grouped_csv_with_no_group_is_its_header_alone(
    api: httpx.AsyncClient, scenario: list[EventEnvelope]
) -> None:
    # filtered to a lender with no loan: no group, so no row under the header (not the total's row, whose cells
    # would sit under the group's columns, nor a 500)
    nobody = str(uuid.uuid4())
    for path in PATHS:
        for group in ("country", "currency"):
            params = {"as_of": str(D2), "group_by": group, "lender": nobody, "format": "csv"}
            grouped = await api.get(path, params=params, headers=FUNDER)
            assert grouped.status_code == 200, (path, group, grouped.text)
            rows = list(csv.reader(io.StringIO(grouped.text)))
            assert len(rows) == 1 and rows[0][0] == group, (path, group, rows)


async def test_the_openapi_describes_each_report_s_selection(api: httpx.AsyncClient) -> None:
    """The selection is read from the query string by the reports themselves: its parameters are still described
    to a partner, each once, beside the routes' own (`format`, the flows' `from`)."""
    spec = (await api.get("/openapi.json")).json()
    for path in PATHS:
        parameters = spec["paths"][path]["get"]["parameters"]
        by_name = {p["name"]: p for p in parameters}
        assert len(by_name) == len(parameters), path
        assert by_name["as_of"]["schema"] == {"type": "string", "format": "date"}
        for name in ("group_by", "country", "region", "lender", "ica", "sector", "legal_form", "currency"):
            assert by_name[name]["in"] == "query" and by_name[name]["schema"]["type"] == "array", (path, name)
            assert by_name[name]["description"], (path, name)
        assert "format" in by_name
    assert "from" in {p["name"] for p in spec["paths"]["/api/v1/reporting/flows"]["get"]["parameters"]}
