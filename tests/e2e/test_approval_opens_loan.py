"""Across real processes: an ICA's application, screened with the portfolio's FX rate, scored and approved by the
committee in the applications service, opens its loan in the portfolio service through the event table."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from deploy.run import command
from deploy.topology import ROOT, SERVICES
from shared.auth import PRINCIPAL_HEADER, Principal, Role, mint_principal_token
from tests.applications.conftest import application_body, business_body
from tests.conftest import INTERNAL_SECRET
from tests.support import free_port

SPECS = {s.name: s for s in SERVICES}


def principal(service: str, role: Role, org: uuid.UUID | None = None, holder: str | None = None) -> dict[str, str]:
    p = Principal(
        key_id=uuid.uuid5(uuid.NAMESPACE_DNS, f"{role}:{org}:{holder}"), role=role, organization_id=org, holder=holder
    )
    return {PRINCIPAL_HEADER: mint_principal_token(p, secret=INTERNAL_SECRET, audience=service)}


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    ports = {name: free_port() for name in ("applications", "portfolio", "guarantees")}
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        INTERNAL_SECRET=INTERNAL_SECRET,
        APPLICATIONS_LOG_LEVEL="WARNING",
        PORTFOLIO_LOG_LEVEL="WARNING",
        GUARANTEES_LOG_LEVEL="WARNING",
    )
    for name, port in ports.items():
        env[f"{name.upper()}_URL"] = f"http://127.0.0.1:{port}"
    procs = []
    try:
        for name, port in ports.items():
            log = (tmp_path / f"{name}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    shlex.split(command(SPECS[name], "127.0.0.1", port)), cwd=ROOT, env=env, stdout=log, stderr=log
                )
            )
        for name, port in ports.items():
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / f"{name}.log").read_text()[-2000:]
                time.sleep(0.2)
        yield {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                # a slow shutdown is not what these tests check (tests/deploy/test_make_run.py does): stop it
                proc.kill()
                proc.wait(5)


def test_an_approved_application_opens_its_loan_in_the_portfolio(platform: dict[str, str]) -> None:
    apps = httpx.Client(base_url=platform["applications"], timeout=10)
    portfolio = httpx.Client(base_url=platform["portfolio"], timeout=10)
    admin = principal("applications", Role.admin)
    today = datetime.now(UTC).date().isoformat()
    rate = portfolio.post(
        "/api/v1/portfolio/fx-rates",
        json={"currency": "EUR", "rate_date": today, "cad_per_unit": "1.4712", "source": "BoC"},
        headers=principal("portfolio", Role.admin),
    )
    assert rate.status_code in (201, 409), rate.text
    ica = uuid.UUID(
        apps.post("/api/v1/applications/icas", json={"name": f"E2E {uuid.uuid4().hex[:6]}"}, headers=admin).json()["id"]
    )
    as_ica = principal("applications", Role.ica, ica)
    business = apps.post("/api/v1/applications/businesses", json=business_body(), headers=as_ica).json()
    body = application_body(business["id"], instruments=["co_financing"])
    draft = apps.post("/api/v1/applications/applications", json=body, headers=as_ica).json()
    screened = apps.post(f"/api/v1/applications/applications/{draft['id']}/submit", json={}, headers=as_ica).json()
    assert screened["status"] == "under_review", screened
    analyst = principal("applications", Role.analyst, holder="analyst@fisiq.example")
    scores = {
        "gender_equality": 4,
        "democratic_governance": 3,
        "environment": 2,
        "decent_income_social_responsibility": 3,
        "partnership_strength": 3,
    }
    assert (
        apps.post(
            f"/api/v1/applications/applications/{draft['id']}/scorecard", json={"scores": scores}, headers=analyst
        ).status_code
        == 201
    )
    assert (
        apps.post(
            f"/api/v1/applications/applications/{draft['id']}/send-to-committee", json={}, headers=analyst
        ).status_code
        == 200
    )
    terms = {
        "amount": {"amount": "12000000", "currency": "XOF"},
        "term_months": 24,
        "instruments": ["co_financing"],
        "lender_id": body["lender_id"],
        "fund_share_pct": "40",
        "conditions": [],
    }
    for member in ("alice@fisiq.example", "bob@fisiq.example"):
        voted = apps.post(
            f"/api/v1/applications/applications/{draft['id']}/votes",
            json={"decision": "approve", "comment": "sound", "terms": terms},
            headers=principal("applications", Role.committee, holder=member),
        )
        assert voted.status_code == 201, voted.text
    assert voted.json()["application_status"] == "approved"

    staff = principal("portfolio", Role.fund_manager)
    deadline = time.monotonic() + 20
    loan = None
    while loan is None and time.monotonic() < deadline:
        loans = portfolio.get("/api/v1/portfolio/loans", headers=staff).json()["items"]
        loan = next((x for x in loans if x["application_id"] == draft["id"]), None)
        time.sleep(0.2)
    assert loan is not None, "the approval did not reach the portfolio"
    assert loan["principal"] == {"amount": "12000000", "currency": "XOF"} and loan["country"] == "SN"
    assert {p["participant"]: p["share_pct"] for p in loan["participants"]} == {"fund": "40.00", "lender": "60.00"}
    lag = portfolio.get(
        "/api/v1/portfolio/admin/events/subscriptions", headers=principal("portfolio", Role.admin)
    ).json()
    assert lag[0]["name"] == "loans-from-approvals" and lag[0]["parked"] == 0
