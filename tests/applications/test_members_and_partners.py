"""Member ICAs and their partner businesses: who may see and change what, validation, dated facts, events."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Role
from tests.applications.conftest import PROFILE, as_role, business_body, new_ica
from tests.support import assert_problem

ICAS = "/api/v1/applications/icas"
BUSINESSES = "/api/v1/applications/businesses"


async def count(connection: AsyncConnection, sql: str) -> int:
    return int(await connection.scalar(text(sql)) or 0)


async def test_admin_registers_icas_and_an_ica_sees_only_itself(api: httpx.AsyncClient) -> None:
    a, b = await new_ica(api, "SUCO"), await new_ica(api, "SOCODEVI")
    own = await api.get(f"{ICAS}/{a}", headers=as_role(Role.ica, a))
    assert own.status_code == 200 and own.json()["name"] == "SUCO" and own.json()["active"] is True
    assert_problem(await api.get(f"{ICAS}/{b}", headers=as_role(Role.ica, a)), 404)
    assert_problem(await api.get(ICAS, headers=as_role(Role.ica, a)), 403)
    assert_problem(await api.post(ICAS, json={"name": "Rogue"}, headers=as_role(Role.ica, a)), 403)
    assert_problem(await api.get(f"{ICAS}/{a}", headers=as_role(Role.funder)), 403)
    assert_problem(await api.get(f"{ICAS}/{a}", headers=as_role(Role.lender, uuid.uuid4())), 403)
    duplicate = await api.post(ICAS, json={"name": "SUCO"}, headers=as_role(Role.admin))
    assert_problem(duplicate, 409)
    listed = await api.get(ICAS, headers=as_role(Role.analyst))
    assert {i["name"] for i in listed.json()} >= {"SUCO", "SOCODEVI"}


async def test_an_ica_registers_a_partner_with_its_facts_and_announces_it_once(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    ica = await new_ica(api)
    created = await api.post(BUSINESSES, json=business_body(), headers=as_role(Role.ica, ica))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["ica_id"] == str(ica) and body["country"] == "SN" and body["profile"]["members_women"] == 268
    events = (
        await connection.execute(
            text("SELECT type, aggregate_id, payload FROM applications.outbox WHERE aggregate_id = :b"),
            {"b": body["id"]},
        )
    ).all()
    assert [e.type for e in events] == ["business.registered"]
    assert events[0].payload["facts"]["board_seats_women"] == 5 and events[0].payload["ica_id"] == str(ica)


async def test_another_icas_partner_does_not_exist_for_you(api: httpx.AsyncClient) -> None:
    a, b = await new_ica(api), await new_ica(api)
    theirs = (await api.post(BUSINESSES, json=business_body(name="Theirs"), headers=as_role(Role.ica, b))).json()
    mine = (await api.post(BUSINESSES, json=business_body(name="Mine"), headers=as_role(Role.ica, a))).json()
    as_a = as_role(Role.ica, a)
    assert_problem(await api.get(f"{BUSINESSES}/{theirs['id']}", headers=as_a), 404)
    assert_problem(await api.patch(f"{BUSINESSES}/{theirs['id']}", json={"sector": "x-y"}, headers=as_a), 404)
    assert_problem(await api.post(f"{BUSINESSES}/{theirs['id']}/facts", json=PROFILE, headers=as_a), 404)
    listed = (await api.get(BUSINESSES, headers=as_a)).json()["items"]
    assert [x["id"] for x in listed] == [mine["id"]]
    # an ICA cannot register a partner for another ICA either
    assert_problem(await api.post(BUSINESSES, json=business_body(ica_id=str(b)), headers=as_a), 403)
    # staff see both
    staff = (await api.get(BUSINESSES, headers=as_role(Role.analyst))).json()["items"]
    assert {theirs["id"], mine["id"]} <= {x["id"] for x in staff}


async def test_bad_facts_are_422_with_a_pointer_each_and_nothing_is_stored(
    api: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    ica = await new_ica(api)
    headers = as_role(Role.ica, ica)
    before = await count(connection, "SELECT count(*) FROM applications.businesses")
    cases = [
        (business_body(country="XX"), "#/country"),
        (business_body(country="sn"), "#/country"),
        (business_body(legal_form="llc"), "#/legal_form"),
        (business_body(year_founded=2999), "#"),
        (business_body(profile={**PROFILE, "members_women": 500}), "#/profile"),
        (business_body(profile={**PROFILE, "employees_total": -1}), "#/profile/employees_total"),
    ]
    for body, pointer in cases:
        response = await api.post(BUSINESSES, json=body, headers=headers)
        problem = assert_problem(response, 422)
        assert pointer in [e.get("pointer") for e in problem["errors"]], (pointer, problem["errors"])
    missing = business_body()
    del missing["profile"]["general_assembly_last_12_months"]
    del missing["sector"]
    problem = assert_problem(await api.post(BUSINESSES, json=missing, headers=headers), 422)
    assert {"#/sector", "#/profile/general_assembly_last_12_months"} <= {e["pointer"] for e in problem["errors"]}
    assert await count(connection, "SELECT count(*) FROM applications.businesses") == before


async def test_facts_are_dated_and_their_history_is_kept(api: httpx.AsyncClient, connection: AsyncConnection) -> None:
    ica = await new_ica(api)
    headers = as_role(Role.ica, ica)
    business = (await api.post(BUSINESSES, json=business_body(), headers=headers)).json()
    later = {**PROFILE, "reported_on": "2026-09-30", "members_total": 450, "members_women": 300}
    reported = await api.post(f"{BUSINESSES}/{business['id']}/facts", json=later, headers=headers)
    assert reported.status_code == 201
    assert (await api.get(f"{BUSINESSES}/{business['id']}", headers=headers)).json()["profile"]["members_total"] == 450
    as_of = await api.get(f"{BUSINESSES}/{business['id']}?as_of=2026-07-31", headers=headers)
    assert as_of.json()["profile"]["members_total"] == 412
    before_any = await api.get(f"{BUSINESSES}/{business['id']}?as_of=2020-01-01", headers=headers)
    assert before_any.json()["profile"] is None
    history = (await api.get(f"{BUSINESSES}/{business['id']}/facts", headers=headers)).json()
    assert [h["members_total"] for h in history] == [412, 450]
    types = (
        (
            await connection.execute(
                text("SELECT type FROM applications.outbox WHERE aggregate_id = :b ORDER BY aggregate_seq"),
                {"b": business["id"]},
            )
        )
        .scalars()
        .all()
    )
    assert types == ["business.registered", "business.updated"]


async def test_an_inactive_member_cannot_register_partners(api: httpx.AsyncClient) -> None:
    ica = await new_ica(api)
    assert (await api.patch(f"{ICAS}/{ica}", json={"active": False}, headers=as_role(Role.admin))).json()[
        "active"
    ] is False
    assert_problem(await api.post(BUSINESSES, json=business_body(), headers=as_role(Role.ica, ica)), 409)


async def test_one_idempotency_key_registers_one_business(api: httpx.AsyncClient, connection: AsyncConnection) -> None:
    ica = await new_ica(api)
    key_id = uuid.uuid4()
    headers = {**as_role(Role.ica, ica, key_id=key_id), "Idempotency-Key": "partner-system-123"}
    first = await api.post(BUSINESSES, json=business_body(name="Once"), headers=headers)
    again = await api.post(BUSINESSES, json=business_body(name="Once"), headers=headers)
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await api.post(BUSINESSES, json=business_body(name="Other"), headers=headers)
    assert_problem(other, 422)
    assert await count(connection, "SELECT count(*) FROM applications.businesses WHERE name IN ('Once', 'Other')") == 1


async def test_lists_page_with_a_cursor_without_gaps_or_repeats(api: httpx.AsyncClient) -> None:
    ica = await new_ica(api)
    headers = as_role(Role.ica, ica)
    for i in range(5):
        assert (await api.post(BUSINESSES, json=business_body(name=f"Coop {i}"), headers=headers)).status_code == 201
    seen: list[str] = []
    cursor = None
    for _ in range(4):
        url = f"{BUSINESSES}?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.get(url, headers=headers)).json()
        seen += [b["name"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"Coop {i}" for i in range(5)] and len(seen) == 5
    assert_problem(await api.get(f"{BUSINESSES}?cursor=garbage!", headers=headers), 422)
