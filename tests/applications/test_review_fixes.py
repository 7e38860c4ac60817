"""Cases found by a second reading: stale scorecards, terms written two ways, who may change notifications,
and inputs that once reached a 500."""

from __future__ import annotations

import uuid

import httpx

from services.gateway.apikeys.schemas import ApiKeyCreate
from shared.auth import Role
from tests.applications.conftest import APPS, FakePeers, act, application_body, as_role, draft, new_ica, setup_ica
from tests.applications.test_committee import ALICE, ANALYST, BOB, SCORES, TERMS, in_committee, vote
from tests.support import assert_problem


async def test_a_scorecard_from_before_a_resubmission_does_not_count(api: httpx.AsyncClient, peers: FakePeers) -> None:
    ica, business_id = await setup_ica(api)
    aid = (await draft(api, ica, business_id))["id"]
    await act(api, aid, "submit", ica.headers)
    await api.post(f"{APPS}/{aid}/scorecard", json={"scores": {k: 4 for k in SCORES}}, headers=ANALYST)
    await act(api, aid, "return", ANALYST, comment="bigger amount?")
    await api.patch(
        f"{APPS}/{aid}", json={"requested": {"amount": "100000000", "currency": "XOF"}}, headers=ica.headers
    )
    assert (await act(api, aid, "submit", ica.headers)).json()["status"] == "under_review"
    refused = await api.post(
        f"{APPS}/{aid}/send-to-committee", json={}, headers=as_role(Role.analyst, holder="other@fisiq.example")
    )
    assert assert_problem(refused, 409)["type"] == "/problems/scorecard-required"
    assert_problem(await api.get(f"{APPS}/{aid}/scorecard", headers=ANALYST), 404)


async def test_the_same_terms_written_two_ways_make_one_quorum(api: httpx.AsyncClient, peers: FakePeers) -> None:
    aid, _ = await in_committee(api)
    await vote(api, aid, ALICE)
    same = {
        **TERMS,
        "fund_share_pct": "40.00",
        "guarantee_coverage_pct": "50.0",
        "instruments": ["guarantee", "co_financing"],
    }
    outcome = (await vote(api, aid, BOB, terms=same)).json()
    assert outcome["application_status"] == "approved", outcome


async def test_only_the_ica_itself_or_an_admin_changes_its_notification_endpoints(api: httpx.AsyncClient) -> None:
    ica = await new_ica(api)
    created = await api.post(
        "/api/v1/applications/notifications/endpoints",
        json={"url": "https://partner.example/hook"},
        headers=as_role(Role.ica, ica),
    )
    endpoint = created.json()["id"]
    for role in (Role.fund_manager, Role.analyst, Role.committee):
        assert_problem(
            await api.delete(f"/api/v1/applications/notifications/endpoints/{endpoint}", headers=as_role(role)), 403
        )
    assert (
        await api.delete(f"/api/v1/applications/notifications/endpoints/{endpoint}", headers=as_role(Role.admin))
    ).json()["active"] is False


async def test_inputs_that_once_reached_a_500(api: httpx.AsyncClient, peers: FakePeers) -> None:
    ica, business_id = await setup_ica(api)
    too_big = await api.post(
        APPS,
        json={**application_body(business_id), "requested": {"amount": "9999999999999999", "currency": "XOF"}},
        headers=ica.headers,
    )
    assert_problem(too_big, 422)
    first, second = await new_ica(api, "Alpha ICA"), await new_ica(api, "Beta ICA")
    assert_problem(
        await api.patch(f"/api/v1/applications/icas/{second}", json={"name": "Alpha ICA"}, headers=as_role(Role.admin)),
        409,
    )
    assert first != second
    assert_problem(await api.get("/api/v1/applications/policy/versions/99999999999", headers=ANALYST), 422)
    for moment in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2026-01-01T00:00:00"):
        assert_problem(await api.get(APPS, params={"created_from": moment}, headers=ANALYST), 422)
    assert_problem(await api.get(f"{APPS}/{uuid.uuid4()}", headers=ANALYST), 404)
    assert (
        await api.post(
            f"/api/v1/applications/businesses/{business_id}/conflicts", json={"reason": "board"}, headers=ALICE
        )
    ).status_code == 201
    again = await api.post(
        f"/api/v1/applications/businesses/{business_id}/conflicts", json={"reason": "board"}, headers=ALICE
    )
    assert again.status_code == 201


async def test_policy_changes_merge_nested_rules_with_the_version_in_force(api: httpx.AsyncClient) -> None:
    before = (await api.get("/api/v1/applications/policy", headers=ANALYST)).json()["rules"]["scorecard_weights"]
    change = {"gender_equality": before["gender_equality"] + 5, "environment": before["environment"] - 5}
    published = await api.post(
        "/api/v1/applications/policy",
        json={"note": "more weight to gender", "rules": {"scorecard_weights": change}},
        headers=as_role(Role.admin),
    )
    assert published.status_code == 201, published.text
    assert published.json()["rules"]["scorecard_weights"] == {**before, **change}


async def test_an_ica_sees_the_role_not_the_key_of_the_staff_who_moved_its_application(
    api: httpx.AsyncClient, peers: FakePeers
) -> None:
    ica, business_id = await setup_ica(api)
    aid = (await draft(api, ica, business_id))["id"]
    await act(api, aid, "submit", ica.headers)
    await act(api, aid, "return", ANALYST, comment="please add the statements")
    moves = (await api.get(f"{APPS}/{aid}/transitions", headers=ica.headers)).json()
    returned = next(m for m in moves if m["to_status"] == "returned")
    assert returned["actor_role"] == "analyst" and returned["actor_key_id"] is None
    staff_view = (await api.get(f"{APPS}/{aid}/transitions", headers=ANALYST)).json()
    assert next(m for m in staff_view if m["to_status"] == "returned")["actor_key_id"] is not None


def test_a_holder_is_one_person_however_it_is_typed() -> None:
    assert ApiKeyCreate(name="x", role=Role.committee, holder="  Ann@Fisiq.example ").holder == "ann@fisiq.example"
