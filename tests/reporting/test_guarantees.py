"""The guarantee fund's figures on the fixed scenario, by hand: exposure, leverage, claims and the three rates."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.reporting.reports import guarantees as report
from shared.auth import Role
from shared.events.contracts import EventEnvelope
from tests.reporting.conftest import FUNDER, as_role
from tests.reporting.scenario import D1, D2, D3, I2, L1, L2


async def guarantees(api: httpx.AsyncClient, headers: dict[str, str] = FUNDER, **params: Any) -> dict[str, Any]:
    response = await api.get("/api/v1/reporting/guarantees", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_exposure_and_leverage_at_three_dates(api: httpx.AsyncClient, scenario: list[EventEnvelope]) -> None:
    # D1: G_A min(0.5 × 27,000, 12,000) = 12,000.00; G_C 0.6 × 40,000 USD × 1.35 = 32,400.00; G_D not issued yet
    d1 = (await guarantees(api, as_of=str(D1)))["total"]
    assert (d1["exposure_cad"], d1["capital_available_cad"], d1["leverage"]) == ("44400.00", "100000.00", "0.444000")
    # D2: G_A 12,000.00 (0.5 × 28,800 capped); G_C 0.6 × 49,000 = 29,400.00; G_D 0.5 × 16,000 = 8,000.00
    d2 = await guarantees(api, as_of=str(D2), group_by="lender")
    assert (d2["total"]["exposure_cad"], d2["total"]["leverage"]) == ("49400.00", "0.494000")
    assert {g["key"]["lender"]: g["exposure_cad"] for g in d2["groups"]} == {str(L1): "41400.00", str(L2): "8000.00"}
    # D3: G_C's claim was paid (08-20) and D repaid: only G_A, 12,000.00 (0.5 × 25,600 capped);
    # capital 100,000 − 29,400 + 3,000 = 73,600.00; leverage 12,000 / 73,600 = 0.163043
    d3 = (await guarantees(api, as_of=str(D3)))["total"]
    assert (d3["exposure_cad"], d3["capital_available_cad"], d3["leverage"]) == ("12000.00", "73600.00", "0.163043")


async def test_the_rates_priced_are_the_guarantees_currencies(
    api: httpx.AsyncClient, scenario: list[EventEnvelope]
) -> None:
    # the guarantees are in XOF (G_A, G_D) and USD (G_C): each priced once, XOF from EUR at the peg; loan B's HTG,
    # with no guarantee, is not (the currencies are read from the guarantees' own index, one probe each)
    rates = (await guarantees(api, as_of=str(D2)))["rates"]
    assert [(r["currency"], r["derived_from"]) for r in rates["used"]] == [("USD", None), ("XOF", "EUR")]
    assert rates["missing"] == []


async def test_claims_and_the_three_rates(api: httpx.AsyncClient, scenario: list[EventEnvelope]) -> None:
    d3 = (await guarantees(api, as_of=str(D3)))["total"]
    assert {k: d3[k] for k in ("claims_filed", "claims_filed_cad", "claims_paid", "claims_paid_cad")} == {
        "claims_filed": 1,
        "claims_filed_cad": "29400.00",
        "claims_paid": 1,
        "claims_paid_cad": "29400.00",
    }
    assert (d3["guarantees_issued"], d3["guarantees_issued_cad"], d3["recoveries_cad"]) == (3, "58500.00", "3000.00")
    assert d3["recovery_rate"] == "0.102041"  # 3,000 / 29,400
    assert d3["net_loss_rate"] == "0.451282"  # (29,400 − 3,000) / (12,000 + 39,000 + 7,500)
    # average exposure, at the month ends from 2025-10-31 to 2026-08-31 and on 09-30 (12 samples):
    # 0, 0, 0, 51,000 (01-31), 47,100 (02-28), 44,400, 47,850, 47,850, 49,400, 49,400 (07-31), 20,000, 12,000
    # = 369,000 / 12 = 30,750.00; claims rate = 29,400 / 30,750 = 0.956098
    assert (d3["average_exposure_cad"], d3["claims_rate"]) == ("30750.00", "0.956098")
    d2 = (await guarantees(api, as_of=str(D2)))["total"]
    assert (d2["claims_filed"], d2["claims_paid_cad"], d2["recovery_rate"]) == (0, "0.00", None)


async def test_an_ica_sees_its_partners_exposure_and_not_the_funds_leverage(
    api: httpx.AsyncClient, scenario: list[EventEnvelope]
) -> None:
    ica = (await guarantees(api, headers=as_role(Role.ica, I2), as_of=str(D2)))["total"]
    assert (ica["exposure_cad"], ica["leverage"], ica["capital_available_cad"]) == ("8000.00", None, None)
    sheet = await api.get(
        "/api/v1/reporting/guarantees", params={"as_of": str(D3), "group_by": "lender", "format": "csv"}, headers=FUNDER
    )
    assert sheet.text.splitlines() == [
        "lender,exposure_cad,guarantees_issued,guarantees_issued_cad,claims_filed,claims_filed_cad,claims_paid,"
        "claims_paid_cad,recoveries_cad,net_loss_rate,recovery_rate",
        f"{L1},12000.00,2,51000.00,1,29400.00,1,29400.00,3000.00,0.517647,0.102041",
        f"{L2},0.00,1,7500.00,0,0.00,0,0.00,0.00,0.000000,",
    ]


GROUPINGS = ("country", "currency", "sector", "legal_form", "lender", "ica", "region", "lender,country")


async def test_a_grouped_report_adds_up_to_the_ungrouped_one(
    api: httpx.AsyncClient, scenario: list[EventEnvelope], monkeypatch: pytest.MonkeyPatch
) -> None:
    # every grouping, with a filter or not, under an ICA's scope, at the three dates: the total is the ungrouped
    # report's (a grouped report computes it in the same pass as the groups), the groups' exposures add up to it,
    # and each group's is the report's filtered to that group; the month ends computed here give the same
    scopes: list[tuple[dict[str, str], dict[str, str]]] = [
        (FUNDER, {}),
        (FUNDER, {"country": "SN"}),
        (FUNDER, {"lender": str(L1)}),
        (as_role(Role.ica, I2), {}),
    ]
    for as_of in (D1, D2, D3):
        for headers, filters in scopes:
            whole = (await guarantees(api, headers=headers, as_of=str(as_of), **filters))["total"]
            for group_by in GROUPINGS:
                grouped = await guarantees(api, headers=headers, as_of=str(as_of), group_by=group_by, **filters)
                assert grouped["total"] == whole, (as_of, filters, group_by)
                exposures = [Decimal(g["exposure_cad"]) for g in grouped["groups"]]
                assert sum(exposures, Decimal(0)) == Decimal(whole["exposure_cad"]), (as_of, filters, group_by)
                if "," in group_by or group_by in filters:
                    continue
                for group in grouped["groups"]:
                    value = group["key"][group_by]
                    alone = await guarantees(api, headers=headers, as_of=str(as_of), **{**filters, group_by: value})
                    assert alone["total"]["exposure_cad"] == group["exposure_cad"], (as_of, filters, group_by, value)
                with monkeypatch.context() as patched:
                    patched.setattr(report, "USE_MONTH_ENDS", False)
                    detailed = await guarantees(api, headers=headers, as_of=str(as_of), group_by=group_by, **filters)
                assert detailed == grouped
