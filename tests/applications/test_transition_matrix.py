"""Every action from every status, for every role: allowed (the new status), 409 (not from this status) or 403
(never for this role). The expectations are written out here, independently of the code's own table."""

from __future__ import annotations

import httpx
import pytest

from shared.auth import Role
from tests.applications.conftest import APPS, FakePeers, Ica, act, as_role, draft, setup_ica
from tests.applications.test_committee import ALICE, ANALYST, BOB, SCORES, vote

STATUSES = ["draft", "under_review", "returned", "committee", "approved", "rejected", "withdrawn"]
ACTIONS = ["submit", "withdraw", "return", "send-to-committee"]
ROLES = [Role.ica, Role.analyst, Role.committee, Role.admin, Role.fund_manager]

# what each role gets for each action, by status ("403": never for this role; "409": not from this status)
EXPECTED: dict[str, dict[Role, dict[str, str]]] = {
    "submit": {
        Role.ica: {"draft": "under_review", "returned": "under_review"},
        **{r: dict.fromkeys(STATUSES, "403") for r in (Role.analyst, Role.committee, Role.admin, Role.fund_manager)},
    },
    "withdraw": {
        Role.ica: {
            "draft": "withdrawn",
            "under_review": "withdrawn",
            "returned": "withdrawn",
            "committee": "withdrawn",
        },
        **{r: dict.fromkeys(STATUSES, "403") for r in (Role.analyst, Role.committee, Role.admin, Role.fund_manager)},
    },
    "return": {
        Role.analyst: {"under_review": "returned"},
        **{r: dict.fromkeys(STATUSES, "403") for r in (Role.ica, Role.committee, Role.admin, Role.fund_manager)},
    },
    "send-to-committee": {
        Role.analyst: {"under_review": "committee"},
        **{r: dict.fromkeys(STATUSES, "403") for r in (Role.ica, Role.committee, Role.admin, Role.fund_manager)},
    },
}


async def in_status(api: httpx.AsyncClient, status: str) -> tuple[Ica, str]:
    """A fresh application brought to `status` by the legitimate path."""
    if status == "rejected":
        ica, business_id = await setup_ica(api, country="FR")
    else:
        ica, business_id = await setup_ica(api)
    aid = (await draft(api, ica, business_id))["id"]
    if status == "draft":
        return ica, aid
    if status == "withdrawn":
        await act(api, aid, "withdraw", ica.headers)
        return ica, aid
    assert (await act(api, aid, "submit", ica.headers)).json()["status"] in ("under_review", "rejected")
    if status == "returned":
        await act(api, aid, "return", ANALYST, comment="more information please")
    if status in ("committee", "approved"):
        await api.post(f"{APPS}/{aid}/scorecard", json={"scores": SCORES}, headers=ANALYST)
        await api.post(f"{APPS}/{aid}/send-to-committee", json={}, headers=ANALYST)
    if status == "approved":
        await vote(api, aid, ALICE)
        await vote(api, aid, BOB)
    current = (await api.get(f"{APPS}/{aid}", headers=ANALYST)).json()["status"]
    assert current == status
    return ica, aid


def headers_for(role: Role, ica: Ica) -> dict[str, str]:
    if role == Role.ica:
        return ica.headers
    return ANALYST if role == Role.analyst else as_role(role)


@pytest.mark.parametrize("status", STATUSES)
async def test_every_action_from_every_status_for_every_role(
    api: httpx.AsyncClient, peers: FakePeers, status: str
) -> None:
    for action in ACTIONS:
        for role in ROLES:
            expected = EXPECTED[action].get(role, {}).get(status, "409")
            ica, aid = await in_status(api, status)
            if action == "send-to-committee" and status == "under_review":
                await api.post(f"{APPS}/{aid}/scorecard", json={"scores": SCORES}, headers=ANALYST)
            body = {"comment": "a reason"}
            response = await api.post(f"{APPS}/{aid}/{action}", json=body, headers=headers_for(role, ica))
            if expected in ("403", "409"):
                got = str(response.status_code)
                after = (await api.get(f"{APPS}/{aid}", headers=ANALYST)).json()["status"]
                assert got == expected and after == status, (action, role.value, got, after, response.text)
                if expected == "409":
                    problem = response.json()
                    assert problem["current_status"] == status and "allowed_actions" in problem
            else:
                assert response.status_code == 200, (action, role.value, response.text)
                after = (await api.get(f"{APPS}/{aid}", headers=ANALYST)).json()["status"]
                assert after == expected, (action, role.value, after)
