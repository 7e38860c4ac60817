"""Scorecard and committee: the minimum score, maker-checker, conflicts of interest, quorum, the approval event."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Role
from tests.applications.conftest import APPS, LENDER, FakePeers, act, as_role, draft, setup_ica
from tests.support import assert_problem

SCORES = {
    "gender_equality": 4,
    "democratic_governance": 3,
    "environment": 2,
    "decent_income_social_responsibility": 3,
    "partnership_strength": 3,
}
TERMS: dict[str, Any] = {
    "amount": {"amount": "12000000", "currency": "XOF"},
    "term_months": 24,
    "instruments": ["co_financing", "guarantee"],
    "lender_id": str(LENDER),
    "fund_share_pct": "40",
    "guarantee_coverage_pct": "50",
    "conditions": ["quarterly reports to the ICA"],
}


def staff(role: Role, holder: str) -> dict[str, str]:
    return as_role(role, key_id=uuid.uuid5(uuid.NAMESPACE_DNS, f"{role}:{holder}"), holder=holder)


ANALYST = staff(Role.analyst, "amina@fisiq.example")
ALICE = staff(Role.committee, "alice@fisiq.example")
BOB = staff(Role.committee, "bob@fisiq.example")
CAROL = staff(Role.committee, "carol@fisiq.example")
AMINA_ON_COMMITTEE = staff(Role.committee, "amina@fisiq.example")  # the reviewing analyst's committee key


async def in_committee(api: httpx.AsyncClient, scores: dict[str, int] | None = None) -> tuple[str, str]:
    ica, business_id = await setup_ica(api)
    aid = (await draft(api, ica, business_id))["id"]
    assert (await act(api, aid, "submit", ica.headers)).json()["status"] == "under_review"
    card = await api.post(f"{APPS}/{aid}/scorecard", json={"scores": scores or SCORES}, headers=ANALYST)
    assert card.status_code == 201, card.text
    sent = await api.post(f"{APPS}/{aid}/send-to-committee", json={"comment": "ready"}, headers=ANALYST)
    assert sent.status_code == 200, sent.text
    return aid, business_id


async def vote(
    api: httpx.AsyncClient, aid: str, headers: dict[str, str], decision: str = "approve", **kw: Any
) -> httpx.Response:
    body: dict[str, Any] = {"decision": decision, "comment": "sound project", **kw}
    if decision == "approve" and "terms" not in kw:
        body["terms"] = TERMS
    return await api.post(f"{APPS}/{aid}/votes", json=body, headers=headers)


async def test_the_score_is_weighted_and_below_the_minimum_blocks_committee(
    api: httpx.AsyncClient, peers: FakePeers
) -> None:
    ica, business_id = await setup_ica(api)
    aid = (await draft(api, ica, business_id))["id"]
    await act(api, aid, "submit", ica.headers)
    card = (await api.post(f"{APPS}/{aid}/scorecard", json={"scores": SCORES}, headers=ANALYST)).json()
    # 4/4*25 + 3/4*25 + 2/4*20 + 3/4*15 + 3/4*15 = 25 + 18.75 + 10 + 11.25 + 11.25
    assert card["score"] == "76.25" and card["sufficient"] is True and card["minimum_score"] == 50
    low = {k: 1 for k in SCORES}
    card = (await api.post(f"{APPS}/{aid}/scorecard", json={"scores": low}, headers=ANALYST)).json()
    assert card["score"] == "25.00" and card["sufficient"] is False
    problem = assert_problem(await api.post(f"{APPS}/{aid}/send-to-committee", json={}, headers=ANALYST), 409)
    assert problem["minimum_score"] == 50 and problem["score"] == "25.00"
    assert_problem(
        await api.post(f"{APPS}/{aid}/scorecard", json={"scores": {**SCORES, "environment": 5}}, headers=ANALYST), 422
    )
    assert_problem(await api.post(f"{APPS}/{aid}/scorecard", json={"scores": SCORES}, headers=ALICE), 403)
    assert_problem(await api.post(f"{APPS}/{aid}/send-to-committee", json={}, headers=ALICE), 403)


async def test_unscored_applications_do_not_go_to_committee(api: httpx.AsyncClient, peers: FakePeers) -> None:
    ica, business_id = await setup_ica(api)
    aid = (await draft(api, ica, business_id))["id"]
    await act(api, aid, "submit", ica.headers)
    assert (
        assert_problem(await api.post(f"{APPS}/{aid}/send-to-committee", json={}, headers=ANALYST), 409)["type"]
        == "/problems/scorecard-required"
    )


async def test_the_reviewer_and_a_conflicted_member_cannot_vote(api: httpx.AsyncClient, peers: FakePeers) -> None:
    aid, business_id = await in_committee(api)
    assert_problem(await vote(api, aid, AMINA_ON_COMMITTEE), 403)
    declared = await api.post(
        f"/api/v1/applications/businesses/{business_id}/conflicts", json={"reason": "I sit on its board"}, headers=BOB
    )
    assert declared.status_code == 201
    assert "conflict" in assert_problem(await vote(api, aid, BOB), 403)["detail"]
    assert_problem(await vote(api, aid, ANALYST), 403)  # not a committee key at all
    assert (await api.get(f"{APPS}/{aid}", headers=ALICE)).json()["status"] == "committee"


async def test_one_vote_of_two_leaves_it_in_committee_and_the_second_approves_once(
    api: httpx.AsyncClient, peers: FakePeers, connection: AsyncConnection
) -> None:
    aid, _ = await in_committee(api)
    sent = (
        await connection.execute(
            text(
                "SELECT payload FROM applications.outbox WHERE aggregate_id = :a AND type = 'application.sent_to_committee'"
            ),
            {"a": aid},
        )
    ).scalar_one()  # the move to committee is announced (reports and reconciliation count `committee`)
    assert (sent["from_status"], sent["to_status"], sent["comment"]) == ("under_review", "committee", "ready")
    first = await vote(api, aid, ALICE)
    assert first.status_code == 201 and first.json()["application_status"] == "committee"
    assert first.json()["approvals"] == 1 and first.json()["quorum"] == 2
    assert_problem(await vote(api, aid, ALICE), 409)  # one vote per member
    assert_problem(await vote(api, aid, BOB, comment=""), 422)  # a comment is required
    assert_problem(await vote(api, aid, BOB, terms=None), 422)  # an approval carries the terms
    second = await vote(api, aid, BOB)
    assert second.json()["application_status"] == "approved", second.text
    assert_problem(await vote(api, aid, CAROL), 409)  # decided: no more votes
    events = (
        await connection.execute(
            text(
                "SELECT type, payload FROM applications.outbox WHERE aggregate_id = :a AND type = 'application.approved'"
            ),
            {"a": aid},
        )
    ).all()
    assert len(events) == 1
    payload = events[0].payload
    assert payload["terms"]["amount"] == "12000000" and payload["terms"]["currency"] == "XOF"
    assert payload["terms"]["fund_share_pct"] == "40.00" and payload["terms"]["guarantee_coverage_pct"] == "50.00"
    assert payload["business"]["country"] == "SN" and payload["business"]["facts"]["board_seats_women"] == 5
    moves = (await api.get(f"{APPS}/{aid}/transitions", headers=ALICE)).json()
    assert (moves[-1]["from_status"], moves[-1]["to_status"], moves[-1]["actor_role"]) == (
        "committee",
        "approved",
        "platform",
    )


async def test_different_terms_do_not_make_a_quorum_and_rejections_do(api: httpx.AsyncClient, peers: FakePeers) -> None:
    aid, _ = await in_committee(api)
    await vote(api, aid, ALICE)
    other_terms = {**TERMS, "term_months": 36}
    assert (await vote(api, aid, BOB, terms=other_terms)).json()["application_status"] == "committee"
    assert (await vote(api, aid, CAROL, terms=other_terms)).json()["application_status"] == "approved"

    rejected, _ = await in_committee(api)
    await vote(api, rejected, ALICE, decision="reject", comment="the lender's share is too thin")
    outcome = (await vote(api, rejected, BOB, decision="reject", comment="weak cash flow")).json()
    assert outcome["application_status"] == "rejected" and outcome["rejections"] == 2


async def test_bad_terms_are_refused(api: httpx.AsyncClient, peers: FakePeers) -> None:
    aid, _ = await in_committee(api)
    cases = [
        {**TERMS, "guarantee_coverage_pct": "80"},
        {**TERMS, "fund_share_pct": None},
        {**TERMS, "amount": {"amount": "1000.50", "currency": "CAD"}},
        {**TERMS, "amount": {"amount": "10.5", "currency": "XOF"}},
    ]
    for terms in cases:
        assert_problem(await vote(api, aid, ALICE, terms=terms), 422)
    assert (await api.get(f"{APPS}/{aid}/votes", headers=ALICE)).json() == []
