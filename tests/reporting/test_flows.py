"""Monthly flows over a period on the fixed scenario: each flow in CAD at the rate of its own value date."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Role
from shared.events.contracts import EventEnvelope
from tests.reporting.conftest import FUNDER, apply, as_role
from tests.reporting.scenario import D3, I1, I2, L2, LOAN_C, reversal
from tests.support import assert_problem

ZERO = {
    "disbursed": "0.00",
    "repaid_principal": "0.00",
    "repaid_interest": "0.00",
    "written_off": "0.00",
    "recovered": "0.00",
}


async def flows(api: httpx.AsyncClient, headers: dict[str, str] = FUNDER, **params: Any) -> dict[str, Any]:
    response = await api.get("/api/v1/reporting/flows", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_monthly_flows_at_the_rate_of_their_own_date(
    api: httpx.AsyncClient, connection: AsyncConnection, scenario: list[EventEnvelope]
) -> None:
    body = await flows(api, **{"from": "2026-01-01", "as_of": str(D3)})
    cad = {m["month"]: m["cad"] for m in body["total"]["months"]}
    assert cad == {
        # C 50,000 USD × 1.30 (01-01's rate on 01-10) + A 20,000 EUR worth × 1.45
        "2026-01": ZERO | {"disbursed": "94000.00"},
        # B's HTG has no rate (left out); principal C 5,000 × 1.30 + A 2,000 EUR × 1.45; interest C 500 × 1.30 +
        # A 131,191 XOF × 1.45 / 655.957 = 650 + 289.9991… = 940.00
        "2026-02": ZERO | {"repaid_principal": "9400.00", "repaid_interest": "940.00"},
        "2026-03": ZERO | {"repaid_principal": "6500.00", "repaid_interest": "585.00"},
        # D 10,000 EUR worth × 1.50 (03-31's rate on 04-01); C 5,000 and 400 USD × 1.35
        "2026-04": ZERO | {"disbursed": "15000.00", "repaid_principal": "6750.00", "repaid_interest": "540.00"},
        "2026-05": ZERO,
        "2026-06": ZERO,
        # A 2,000 EUR worth × 1.60; interest 200,000 XOF × 1.60 / 655.957 = 487.8368…
        "2026-07": ZERO | {"repaid_principal": "3200.00", "repaid_interest": "487.84"},
        "2026-08": ZERO | {"written_off": "49000.00"},  # C 35,000 USD × 1.40
        "2026-09": ZERO | {"repaid_principal": "16000.00"},  # D 10,000 EUR worth × 1.60 on 09-15
    }
    assert body["rates"] == {"stale": ["USD", "XOF"], "missing": ["HTG"]}
    february = next(m for m in body["total"]["months"] if m["month"] == "2026-02")
    assert {c["currency"]: c["disbursed"] for c in february["by_currency"]} == {
        "HTG": "1000000.00",
        "USD": "0.00",
        "XOF": "0",
    }
    # a period starting after the rate in force on its first days: D's 10,000 EUR worth on 04-01 still at 03-31's
    # 1.50, C's USD at 1.35; months before the period are not shown
    april = await flows(api, **{"from": "2026-04-01", "as_of": "2026-04-30"})
    assert [m["month"] for m in april["total"]["months"]] == ["2026-04"]
    assert april["total"]["months"][0]["cad"] == cad["2026-04"]
    # a lender's own loans only (B and D), one CSV row per month
    sheet = await api.get(
        "/api/v1/reporting/flows",
        params={"from": "2026-03-01", "as_of": "2026-04-30", "format": "csv"},
        headers=as_role(Role.lender, L2),
    )
    assert sheet.text.splitlines() == [
        "month,disbursed_cad,repaid_principal_cad,repaid_interest_cad,written_off_cad,recovered_cad",
        "2026-03,0.00,0.00,0.00,0.00,0.00",
        "2026-04,15000.00,0.00,0.00,0.00,0.00",
    ]
    # reversing C's repayment of 03-10 takes it out of March
    march = next(e for e in scenario if e.type == "loan.repayment_applied" and e.payload["value_date"] == "2026-03-10")
    await apply(connection, [reversal(LOAN_C, march, "the lender's cheque bounced")])
    again = await flows(api, **{"from": "2026-03-01", "as_of": "2026-03-31"})
    assert again["total"]["months"][0]["cad"] == ZERO


async def test_a_period_that_ends_before_it_starts_is_a_422(api: httpx.AsyncClient) -> None:
    body = assert_problem(
        await api.get("/api/v1/reporting/flows", params={"from": "2026-05-01", "as_of": "2026-04-30"}, headers=FUNDER),
        422,
    )
    assert body["errors"][0]["parameter"] == "from"


async def test_flows_grouped_by_two_dimensions_add_up_to_the_total(
    api: httpx.AsyncClient, scenario: list[EventEnvelope]
) -> None:
    """Each group is keyed by its dimensions' values, and the groups' months in CAD add up to the total's (each loan
    is in exactly one group of lender and country)."""
    body = await flows(api, **{"from": "2026-01-01", "as_of": str(D3), "group_by": "lender,country"})
    keys = [g["key"] for g in body["groups"]]
    assert len(keys) == len({(k["lender"], k["country"]) for k in keys}) >= 2
    assert {k["lender"] for k in keys} >= {str(L2)}
    for i, month in enumerate(body["total"]["months"]):
        for name, amount in month["cad"].items():
            parts = sum(Decimal(g["months"][i]["cad"][name]) for g in body["groups"])
            # each part is rounded to the cent on its own: they may differ from the total by a cent a group
            assert abs(parts - Decimal(amount)) <= Decimal("0.01") * len(keys), (month["month"], name)
    assert any(Decimal(g["months"][1]["cad"]["repaid_principal"]) > 0 for g in body["groups"])  # February's


async def test_flows_filtered_or_scoped_hold_only_the_loans_selected(
    api: httpx.AsyncClient, scenario: list[EventEnvelope]
) -> None:
    """Each filter and each key's scope reaches the one statement read through the driver (a list of codes, a list
    of organization ids, the caller's organization)."""
    params = {"from": "2026-01-01", "as_of": str(D3)}
    everything = await flows(api, **params)

    def currencies(body: dict[str, Any]) -> set[str]:
        return {c["currency"] for m in body["total"]["months"] for c in m["by_currency"]}

    assert currencies(everything) >= {"HTG", "USD", "XOF"}
    assert currencies(await flows(api, **params, currency="USD,XOF")) == {"USD", "XOF"}
    own = await flows(api, headers=as_role(Role.lender, L2), **params)
    by_lender = await flows(api, **params, lender=str(L2))
    assert own["total"] == by_lender["total"] and currencies(own) < currencies(everything)
    partners = await flows(api, headers=as_role(Role.ica, I1), **params)
    assert partners["total"] == (await flows(api, **params, ica=str(I1)))["total"]
    assert (await flows(api, headers=as_role(Role.ica, I1), **params, ica=str(I2)))["total"]["months"] == [
        {"month": m["month"], "cad": ZERO, "by_currency": []} for m in everything["total"]["months"]
    ]
