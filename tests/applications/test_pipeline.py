"""Financing applications: the lifecycle per role, screening against the policy, tenancy, idempotency, events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Role
from tests.applications.conftest import APPS, LENDER, FakePeers, act, application_body, as_role, draft, setup_ica
from tests.support import assert_problem


async def test_a_clean_application_is_screened_through_to_review(
    api: httpx.AsyncClient, peers: FakePeers, connection: AsyncConnection
) -> None:
    ica, business = await setup_ica(api)
    application = await draft(api, ica, business)
    assert application["status"] == "draft" and application["requested"] == {"amount": "15000000", "currency": "XOF"}
    assert application["allowed_actions"] == ["submit", "withdraw"]
    submitted = await act(api, application["id"], "submit", ica.headers)
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert body["status"] == "under_review"
    assert body["screening"]["passed"] is True and body["screening"]["policy_version"] >= 1
    names = {c["name"] for c in body["screening"]["criteria"]}
    assert names == {
        "active_member",
        "registered_partner",
        "collective_legal_form",
        "eligible_region",
        "not_a_start_up",
        "eligible_purpose",
        "term_within_range",
        "amount_within_range",
        "guarantee_room",
    }
    amount = next(c for c in body["screening"]["criteria"] if c["name"] == "amount_within_range")
    assert amount["reason"].startswith("15000000 XOF = 31500.00 CAD at 0.0021 CAD per XOF of ")
    moves = (await api.get(f"{APPS}/{application['id']}/transitions", headers=ica.headers)).json()
    assert [(m["from_status"], m["to_status"], m["actor_role"]) for m in moves] == [
        (None, "draft", "ica"),
        ("draft", "submitted", "ica"),
        ("submitted", "screening", "platform"),
        ("screening", "under_review", "platform"),
    ]
    events = (
        (
            await connection.execute(
                text("SELECT type FROM applications.outbox WHERE aggregate_id = :a ORDER BY aggregate_seq"),
                {"a": application["id"]},
            )
        )
        .scalars()
        .all()
    )
    assert events == ["application.submitted", "application.screened"]


@pytest.mark.parametrize(
    ("business", "application", "criterion"),
    [
        ({"legal_form": "private_company"}, {}, "collective_legal_form"),
        ({"country": "CA"}, {}, "eligible_region"),
        ({"year_founded": datetime.now(UTC).year - 1}, {}, "not_a_start_up"),
        ({}, {"purpose": "working_capital"}, "eligible_purpose"),
        ({}, {"requested": {"amount": "4999.99", "currency": "CAD"}}, "amount_within_range"),
        ({}, {"requested": {"amount": "250000.01", "currency": "CAD"}}, "amount_within_range"),
        ({}, {"requested": {"amount": "1000000", "currency": "XOF"}}, "amount_within_range"),
        ({}, {"requested": {"amount": "1000", "currency": "EUR"}}, "amount_within_range"),
        ({}, {"term_months": 2}, "term_within_range"),
        ({}, {"term_months": 61}, "term_within_range"),
    ],
)
async def test_each_criterion_failing_alone_rejects_listing_exactly_it(
    api: httpx.AsyncClient, peers: FakePeers, business: dict[str, Any], application: dict[str, Any], criterion: str
) -> None:
    ica, business_id = await setup_ica(api, **business)
    created = await draft(api, ica, business_id, **application)
    body = (await act(api, created["id"], "submit", ica.headers)).json()
    assert body["status"] == "rejected", body
    failed = [c["name"] for c in body["screening"]["criteria"] if not c["passed"]]
    assert failed == [criterion]
    assert body["decided_at"] is not None and body["allowed_actions"] == []


async def test_no_guarantee_room_and_an_inactive_member_are_criteria_too(
    api: httpx.AsyncClient, peers: FakePeers
) -> None:
    ica, business_id = await setup_ica(api)
    peers.room = False
    body = (await act(api, (await draft(api, ica, business_id))["id"], "submit", ica.headers)).json()
    assert [c["name"] for c in body["screening"]["criteria"] if not c["passed"]] == ["guarantee_room"]
    assert "ceiling" in next(c["reason"] for c in body["screening"]["criteria"] if c["name"] == "guarantee_room")
    peers.room = True
    # co-financing alone does not ask the guarantees service
    peers.calls.clear()
    only_cofinancing = await draft(api, ica, business_id, instruments=["co_financing"])
    assert (await act(api, only_cofinancing["id"], "submit", ica.headers)).json()["status"] == "under_review"
    assert "room" not in peers.calls
    late = await draft(api, ica, business_id)
    await api.patch(f"/api/v1/applications/icas/{ica.id}", json={"active": False}, headers=as_role(Role.admin))
    body = (await act(api, late["id"], "submit", ica.headers)).json()
    assert [c["name"] for c in body["screening"]["criteria"] if not c["passed"]] == ["active_member"]


@pytest.mark.parametrize(
    ("country", "passes"),
    [("SN", True), ("HT", True), ("PE", True), ("BO", True), ("KH", True), ("CA", False), ("FR", False), ("US", False)],
)
async def test_the_region_rule(api: httpx.AsyncClient, peers: FakePeers, country: str, passes: bool) -> None:
    ica, business_id = await setup_ica(api, country=country)
    body = (await act(api, (await draft(api, ica, business_id))["id"], "submit", ica.headers)).json()
    region = next(c for c in body["screening"]["criteria"] if c["name"] == "eligible_region")
    assert region["passed"] is passes, region


async def test_screening_that_cannot_reach_a_service_changes_nothing(api: httpx.AsyncClient, peers: FakePeers) -> None:
    ica, business_id = await setup_ica(api)
    created = await draft(api, ica, business_id)
    peers.reachable = False
    assert_problem(await act(api, created["id"], "submit", ica.headers), 503)
    again = (await api.get(f"{APPS}/{created['id']}", headers=ica.headers)).json()
    assert again["status"] == "draft" and again["screening"] is None
    peers.reachable = True
    assert (await act(api, created["id"], "submit", ica.headers)).json()["status"] == "under_review"


async def test_the_lifecycle_per_role(api: httpx.AsyncClient, peers: FakePeers) -> None:
    ica, business_id = await setup_ica(api)
    analyst, committee, admin = as_role(Role.analyst), as_role(Role.committee), as_role(Role.admin)
    app = await draft(api, ica, business_id)
    aid = app["id"]
    # draft: only the ICA submits or withdraws; staff cannot submit for it
    for headers in (analyst, committee, admin):
        assert_problem(await act(api, aid, "submit", headers), 403)
    assert_problem(await act(api, aid, "return", analyst, comment="not yet submitted"), 409)
    assert (await act(api, aid, "submit", ica.headers)).json()["status"] == "under_review"
    # under review: the ICA cannot submit again; the analyst returns it with a comment
    problem = assert_problem(await act(api, aid, "submit", ica.headers), 409)
    assert problem["current_status"] == "under_review" and problem["allowed_actions"] == ["withdraw"]
    assert_problem(await act(api, aid, "return", analyst), 422)  # the comment is required
    assert_problem(await act(api, aid, "return", ica.headers, comment="self-return"), 403)
    returned = await act(api, aid, "return", analyst, comment="add the 2025 financial statements")
    assert returned.json()["status"] == "returned"
    # returned: the ICA edits and re-submits; it is screened again
    edited = await api.patch(f"{APPS}/{aid}", json={"term_months": 36}, headers=ica.headers)
    assert edited.status_code == 200 and edited.json()["term_months"] == 36
    resubmitted = (await act(api, aid, "submit", ica.headers)).json()
    assert resubmitted["status"] == "under_review"
    assert len((await api.get(f"{APPS}/{aid}/screenings", headers=analyst)).json()) == 2
    # under review again: not editable; the ICA withdraws
    assert_problem(await api.patch(f"{APPS}/{aid}", json={"term_months": 12}, headers=ica.headers), 409)
    withdrawn = (await act(api, aid, "withdraw", ica.headers, comment="financed elsewhere")).json()
    assert withdrawn["status"] == "withdrawn" and withdrawn["allowed_actions"] == []
    # nothing moves a withdrawn application
    for action, headers in (("submit", ica.headers), ("withdraw", ica.headers), ("return", analyst)):
        assert_problem(await act(api, aid, action, headers, comment="again"), 409)
    moves = [
        (m["from_status"], m["to_status"]) for m in (await api.get(f"{APPS}/{aid}/transitions", headers=admin)).json()
    ]
    assert moves[-1] == ("under_review", "withdrawn") and ("under_review", "returned") in moves


async def test_a_rejected_application_cannot_be_withdrawn_or_resubmitted(
    api: httpx.AsyncClient, peers: FakePeers
) -> None:
    ica, business_id = await setup_ica(api, country="FR")
    aid = (await draft(api, ica, business_id))["id"]
    assert (await act(api, aid, "submit", ica.headers)).json()["status"] == "rejected"
    assert_problem(await act(api, aid, "submit", ica.headers), 409)
    assert_problem(await act(api, aid, "withdraw", ica.headers), 409)


async def test_another_icas_application_is_404_for_reading_and_changing(
    api: httpx.AsyncClient, peers: FakePeers
) -> None:
    a, business_a = await setup_ica(api)
    b, _ = await setup_ica(api)
    aid = (await draft(api, a, business_a))["id"]
    assert_problem(await api.get(f"{APPS}/{aid}", headers=b.headers), 404)
    assert_problem(await api.patch(f"{APPS}/{aid}", json={"term_months": 12}, headers=b.headers), 404)
    assert_problem(await act(api, aid, "submit", b.headers), 404)
    assert_problem(await act(api, aid, "withdraw", b.headers), 404)
    assert_problem(await api.get(f"{APPS}/{aid}/transitions", headers=b.headers), 404)
    # nor may B apply for A's partner
    assert_problem(await api.post(APPS, json=application_body(business_a), headers=b.headers), 404)
    assert (await api.get(APPS, headers=b.headers)).json()["items"] == []
    assert_problem(await api.get(APPS, headers=as_role(Role.funder)), 403)
    assert_problem(await api.get(f"{APPS}/{aid}", headers=as_role(Role.lender, LENDER)), 403)


async def test_the_same_submission_twice_with_one_key_creates_one_application(
    api: httpx.AsyncClient, peers: FakePeers, connection: AsyncConnection
) -> None:
    ica, business_id = await setup_ica(api)
    headers = {**ica.headers, "Idempotency-Key": "sub-2026-11-27-0001"}
    first = await api.post(APPS, json=application_body(business_id), headers=headers)
    second = await api.post(APPS, json=application_body(business_id), headers=headers)
    assert first.status_code == second.status_code == 201 and first.json()["id"] == second.json()["id"]
    other = await api.post(APPS, json=application_body(business_id, term_months=12), headers=headers)
    assert_problem(other, 422)
    count = await connection.scalar(
        text("SELECT count(*) FROM applications.applications WHERE business_id = :b"), {"b": business_id}
    )
    assert count == 1


@pytest.mark.parametrize(
    ("overrides", "pointer"),
    [
        ({"requested": {"amount": "100.005", "currency": "CAD"}}, "#/requested"),
        ({"requested": {"amount": "1500.5", "currency": "XOF"}}, "#/requested"),
        ({"requested": {"amount": "1000", "currency": "ABC"}}, "#/requested/currency"),
        ({"requested": {"amount": "-1000.00", "currency": "CAD"}}, "#/requested"),
        ({"requested": {"amount": 1000, "currency": "CAD"}}, "#/requested/amount"),
        ({"term_months": 0}, "#/term_months"),
        ({"purpose": "yacht"}, "#/purpose"),
        ({"instruments": []}, "#/instruments"),
        ({"lender_share_pct": "120"}, "#/lender_share_pct"),
        ({"support_plan": None}, "#/support_plan"),
    ],
)
async def test_bad_input_is_422_with_a_pointer_and_nothing_stored(
    api: httpx.AsyncClient, peers: FakePeers, connection: AsyncConnection, overrides: dict[str, Any], pointer: str
) -> None:
    ica, business_id = await setup_ica(api)
    body = application_body(business_id, **overrides)
    problem = assert_problem(await api.post(APPS, json=body, headers=ica.headers), 422)
    assert pointer in [e.get("pointer") for e in problem["errors"]], problem["errors"]
    assert (
        await connection.scalar(
            text("SELECT count(*) FROM applications.applications WHERE business_id = :b"), {"b": business_id}
        )
        == 0
    )


async def test_lists_filter_by_status(api: httpx.AsyncClient, peers: FakePeers) -> None:
    ica, business_id = await setup_ica(api)
    kept = await draft(api, ica, business_id)
    sent = await draft(api, ica, business_id)
    await act(api, sent["id"], "submit", ica.headers)
    drafts = (await api.get(f"{APPS}?status=draft", headers=ica.headers)).json()["items"]
    assert [a["id"] for a in drafts] == [kept["id"]]
    reviewing = (await api.get(f"{APPS}?status=under_review&limit=1", headers=as_role(Role.analyst))).json()
    assert len(reviewing["items"]) == 1
    other, haiti_business = await setup_ica(api, country="HT")
    haitian = await draft(api, other, haiti_business)
    by_country = (await api.get(f"{APPS}?country=HT", headers=as_role(Role.analyst))).json()["items"]
    assert haitian["id"] in [a["id"] for a in by_country] and kept["id"] not in [a["id"] for a in by_country]
