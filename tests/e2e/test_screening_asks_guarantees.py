"""Across real processes: screening a guarantee application asks the guarantees service for room (its facility,
capital and limits), which measures the amount in CAD with the portfolio's FX rate."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import httpx

from shared.auth import Role
from tests.applications.conftest import application_body, business_body
from tests.e2e.test_approval_opens_loan import platform, principal

__all__ = ["platform"]


def test_screening_finds_room_under_a_facility_and_none_without(platform: dict[str, str]) -> None:
    apps = httpx.Client(base_url=platform["applications"], timeout=10)
    portfolio = httpx.Client(base_url=platform["portfolio"], timeout=10)
    guarantees = httpx.Client(base_url=platform["guarantees"], timeout=10)
    today = datetime.now(UTC).date()
    rate = portfolio.post(
        "/api/v1/portfolio/fx-rates",
        json={"currency": "EUR", "rate_date": today.isoformat(), "cad_per_unit": "1.4712", "source": "BoC"},
        headers=principal("portfolio", Role.admin),
    )
    assert rate.status_code in (201, 409), rate.text
    manager = principal("guarantees", Role.fund_manager)
    capital = {"kind": "contribution", "amount": {"amount": "3000000.00", "currency": "CAD"}, "value_date": str(today)}
    assert guarantees.post("/api/v1/guarantees/capital/entries", json=capital, headers=manager).status_code == 201
    covered, uncovered = uuid.uuid4(), uuid.uuid4()
    facility = {
        "lender_id": str(covered),
        "ceiling": {"amount": "1500000.00", "currency": "CAD"},
        "max_cover_per_loan": {"amount": "125000.00", "currency": "CAD"},
        "valid_from": str(date(today.year - 1, 1, 1)),
        "valid_to": str(date(today.year + 2, 12, 31)),
    }
    created = guarantees.post("/api/v1/guarantees/facilities", json=facility, headers=manager)
    assert created.status_code == 201, created.text

    admin = principal("applications", Role.admin)
    ica = uuid.UUID(
        apps.post("/api/v1/applications/icas", json={"name": f"E2E {uuid.uuid4().hex[:6]}"}, headers=admin).json()["id"]
    )
    as_ica = principal("applications", Role.ica, ica)
    outcomes = {}
    for lender in (covered, uncovered):
        business = apps.post("/api/v1/applications/businesses", json=business_body(), headers=as_ica).json()
        body = application_body(business["id"], instruments=["guarantee"], lender_id=str(lender))
        draft = apps.post("/api/v1/applications/applications", json=body, headers=as_ica).json()
        screened = apps.post(f"/api/v1/applications/applications/{draft['id']}/submit", json={}, headers=as_ica)
        assert screened.status_code == 200, screened.text
        outcomes[lender] = screened.json()
    assert outcomes[covered]["status"] == "under_review"
    assert outcomes[uncovered]["status"] == "rejected"
    failed = [c for c in outcomes[uncovered]["screening"]["criteria"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["guarantee_room"] and "facility" in failed[0]["reason"]
