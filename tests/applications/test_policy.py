"""The origination policy is data: versioned, published by an admin, never edited in place."""

from __future__ import annotations

import uuid

import httpx

from shared.auth import Role
from tests.applications.conftest import as_role
from tests.support import assert_problem

POLICY = "/api/v1/applications/policy"


async def test_version_1_holds_the_funds_defaults(api: httpx.AsyncClient) -> None:
    policy = (await api.get(POLICY, headers=as_role(Role.analyst))).json()
    rules = policy["rules"]
    assert policy["version"] >= 1
    v1 = (await api.get(f"{POLICY}/versions/1", headers=as_role(Role.analyst))).json()["rules"]
    assert v1["eligible_m49_regions"] == ["002", "142", "419"]
    assert v1["minimum_age_years"] == 2 and v1["term_min_months"] == 3 and v1["term_max_months"] == 60
    assert v1["amount_min_cad"] == "5000" and v1["amount_max_cad"] == "250000"
    assert v1["minimum_score"] == 50 and v1["committee_quorum"] == 2
    assert sum(v1["scorecard_weights"].values()) == 100
    assert set(rules) == set(v1)


async def test_an_admin_publishes_a_new_version_that_keeps_what_it_does_not_change(api: httpx.AsyncClient) -> None:
    before = (await api.get(POLICY, headers=as_role(Role.analyst))).json()
    published = await api.post(
        POLICY, json={"note": "quorum of 3", "rules": {"committee_quorum": 3}}, headers=as_role(Role.admin)
    )
    assert published.status_code == 201, published.text
    after = published.json()
    assert after["version"] == before["version"] + 1
    assert after["rules"]["committee_quorum"] == 3
    assert {k: v for k, v in after["rules"].items() if k != "committee_quorum"} == {
        k: v for k, v in before["rules"].items() if k != "committee_quorum"
    }
    # the older version is still there, unchanged
    old = (await api.get(f"{POLICY}/versions/{before['version']}", headers=as_role(Role.ica, uuid.uuid4()))).json()
    assert old["rules"] == before["rules"]
    assert (await api.get(POLICY, headers=as_role(Role.analyst))).json()["version"] == after["version"]


async def test_invalid_rules_and_outsiders_are_refused(api: httpx.AsyncClient) -> None:
    bad = await api.post(
        POLICY,
        json={"note": "oops", "rules": {"scorecard_weights": {"gender_equality": 90}}},
        headers=as_role(Role.admin),
    )
    problem = assert_problem(bad, 422)
    assert problem["errors"][0]["pointer"].startswith("#/rules/scorecard_weights")
    unknown = await api.post(POLICY, json={"note": "oops", "rules": {"no_such_rule": 1}}, headers=as_role(Role.admin))
    assert assert_problem(unknown, 422)["errors"][0]["pointer"] == "#/rules/no_such_rule"
    assert_problem(await api.post(POLICY, json={"note": "mine", "rules": {}}, headers=as_role(Role.analyst)), 403)
    assert_problem(await api.get(POLICY, headers=as_role(Role.funder)), 403)
    assert_problem(await api.get(f"{POLICY}/versions/999", headers=as_role(Role.analyst)), 404)
