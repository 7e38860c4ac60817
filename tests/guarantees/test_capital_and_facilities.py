"""The guarantee capital ledger, the versioned guarantee policy, and facilities with versioned terms."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Role
from tests.guarantees.conftest import ADMIN, MANAGER, as_role
from tests.support import assert_problem

CAPITAL = "/api/v1/guarantees/capital"
FACILITIES = "/api/v1/guarantees/facilities"


def cad(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "CAD"}


async def entry(api: httpx.AsyncClient, kind: str, amount: str, on: str, **extra: Any) -> httpx.Response:
    body = {"kind": kind, "amount": cad(amount), "value_date": on, **extra}
    return await api.post(f"{CAPITAL}/entries", json=body, headers=MANAGER)


async def test_capital_available_is_the_sum_of_entries_up_to_a_date(api: httpx.AsyncClient) -> None:
    assert (await entry(api, "contribution", "3000000.00", "2001-01-15", reference="MRIF 2026-017")).status_code == 201
    assert (await entry(api, "contribution", "750000.00", "2001-03-01", reference="ICA pledges")).status_code == 201
    fix = await entry(api, "adjustment", "-0.01", "2001-03-02", comment="bank rounding on the ICA transfer")
    assert fix.status_code == 201
    on = {
        "2001-01-14": "0.00",
        "2001-01-15": "3000000.00",
        "2001-03-01": "3750000.00",
        "2001-12-31": "3749999.99",
    }
    for day, amount in on.items():
        body = (await api.get(CAPITAL, params={"as_of": day}, headers=as_role(Role.funder))).json()
        assert (day, body["capital_available"]["amount"]) == (day, amount)
    body = (await api.get(CAPITAL, params={"as_of": "2001-12-31"}, headers=MANAGER)).json()
    assert body["by_kind"]["contribution"]["amount"] == "3750000.00"
    assert body["by_kind"]["adjustment"]["amount"] == "-0.01"


async def test_bad_entries_are_refused_and_only_managers_write(api: httpx.AsyncClient) -> None:
    assert_problem(await entry(api, "contribution", "-5.00", "2001-01-15"), 422)
    assert_problem(await entry(api, "adjustment", "5.00", "2001-01-15"), 422)  # no reason given
    assert_problem(await entry(api, "claim_paid", "-5.00", "2001-01-15"), 422)  # written by the service itself
    assert_problem(await entry(api, "contribution", "0.00", "2001-01-15"), 422)
    assert_problem(await entry(api, "contribution", "1.005", "2001-01-15"), 422)
    body = {"kind": "contribution", "amount": {"amount": "5.00", "currency": "USD"}, "value_date": "2001-01-15"}
    assert_problem(await api.post(f"{CAPITAL}/entries", json=body, headers=MANAGER), 422)
    ok = {"kind": "contribution", "amount": cad("5.00"), "value_date": "2001-01-15"}
    for role in (Role.analyst, Role.lender, Role.ica, Role.funder):
        assert_problem(await api.post(f"{CAPITAL}/entries", json=ok, headers=as_role(role, uuid.uuid4())), 403)
    assert_problem(await api.get(CAPITAL, headers=as_role(Role.lender, uuid.uuid4())), 403)
    assert_problem(await api.get(CAPITAL), 401)
    listed = (await api.get(f"{CAPITAL}/entries", params={"limit": 500}, headers=MANAGER)).json()["items"]
    assert [e for e in listed if e["value_date"] == "2001-01-15"] == []  # nothing refused was recorded


def facility(lender: uuid.UUID, **terms: Any) -> dict[str, Any]:
    return {
        "lender_id": str(lender),
        "ceiling": cad("1500000.00"),
        "max_cover_per_loan": cad("125000.00"),
        "valid_from": "2026-01-01",
        "valid_to": "2028-12-31",
        **terms,
    }


async def test_a_facility_takes_the_policy_defaults_and_changes_make_versions(api: httpx.AsyncClient) -> None:
    lender = uuid.uuid4()
    created = await api.post(FACILITIES, json=facility(lender), headers=MANAGER)
    assert created.status_code == 201, created.text
    terms = created.json()["terms"]
    assert (terms["version"], terms["coverage_pct"], terms["fee_rate_pct"]) == (1, "50.00", "1.500")
    assert (terms["claim_trigger_dpd"], terms["claim_deadline_months"], terms["recoveries"]) == (90, 12, "pari_passu")
    assert_problem(await api.post(FACILITIES, json=facility(lender), headers=MANAGER), 409)
    changed = await api.put(
        f"{FACILITIES}/{created.json()['id']}",
        json={
            k: v
            for k, v in facility(lender, coverage_pct="60", comment="renegotiated 2027").items()
            if k != "lender_id"
        },
        headers=MANAGER,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["terms"]["version"] == 2 and changed.json()["terms"]["coverage_pct"] == "60.00"
    versions = (await api.get(f"{FACILITIES}/{created.json()['id']}/versions", headers=MANAGER)).json()
    assert [(v["version"], v["coverage_pct"]) for v in versions] == [(1, "50.00"), (2, "60.00")]


async def test_coverage_outside_the_policy_is_refused_and_the_policy_is_versioned(api: httpx.AsyncClient) -> None:
    refused = await api.post(FACILITIES, json=facility(uuid.uuid4(), coverage_pct="80"), headers=MANAGER)
    assert assert_problem(refused, 422)["errors"][0]["pointer"] == "#/coverage_pct"
    policy = (await api.get("/api/v1/guarantees/policy", headers=MANAGER)).json()
    assert (policy["leverage_max"], policy["per_lender_max_pct"], policy["per_country_max_pct"]) == (
        "3.00",
        "30.00",
        "40.00",
    )
    wider = {
        **{k: v for k, v in policy.items() if k not in ("version", "created_at", "comment")},
        "coverage_max_pct": "80",
        "comment": "board allows 80 % for agricultural campaigns",
    }
    assert_problem(await api.put("/api/v1/guarantees/policy", json=wider, headers=MANAGER), 403)
    published = await api.put("/api/v1/guarantees/policy", json=wider, headers=ADMIN)
    assert published.status_code == 200 and published.json()["version"] == policy["version"] + 1
    accepted = await api.post(FACILITIES, json=facility(uuid.uuid4(), coverage_pct="80"), headers=MANAGER)
    assert accepted.status_code == 201
    inverted = {**wider, "coverage_default_pct": "90"}
    assert_problem(await api.put("/api/v1/guarantees/policy", json=inverted, headers=ADMIN), 422)


async def test_a_lender_sees_its_own_facility_only(api: httpx.AsyncClient) -> None:
    mine, other = uuid.uuid4(), uuid.uuid4()
    own = (await api.post(FACILITIES, json=facility(mine), headers=MANAGER)).json()
    theirs = (await api.post(FACILITIES, json=facility(other), headers=MANAGER)).json()
    as_lender = as_role(Role.lender, mine)
    assert [f["id"] for f in (await api.get(FACILITIES, headers=as_lender)).json()] == [own["id"]]
    assert (await api.get(f"{FACILITIES}/{own['id']}", headers=as_lender)).status_code == 200
    assert_problem(await api.get(f"{FACILITIES}/{theirs['id']}", headers=as_lender), 404)
    assert_problem(await api.get(FACILITIES, headers=as_role(Role.ica, uuid.uuid4())), 403)
    assert_problem(await api.post(FACILITIES, json=facility(uuid.uuid4()), headers=as_lender), 403)
    bad = facility(uuid.uuid4(), max_cover_per_loan=cad("2000000.00"))
    assert_problem(await api.post(FACILITIES, json=bad, headers=MANAGER), 422)


async def test_every_capital_entry_is_announced_for_the_read_models(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    made = await entry(api, "contribution", "1250000.00", "2002-04-01", reference="social-finance partner")
    assert made.status_code == 201
    rows = await connection.execute(
        text("SELECT payload FROM guarantees.outbox WHERE type = 'capital.entry_recorded' AND aggregate_id = :id"),
        {"id": made.json()["id"]},
    )
    assert [r.payload for r in rows] == [
        {"entry_id": made.json()["id"], "kind": "contribution", "amount_cad": "1250000.00", "value_date": "2002-04-01"}
    ]
