"""Each limit, breached alone, is named with its figures; at exactly the limit it passes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.guarantees.limits import Exposures, Limits, breaches, new_exposure

D = Decimal
# capital 1,000,000 × leverage 3 → capacity 3,000,000; per lender 30 % = 900,000; per country 40 % = 1,200,000;
# per borrower 10 % = 300,000; the facility's ceiling 800,000
LIMITS = Limits(
    capital=D("1000000.00"),
    leverage_max=D("3.0"),
    ceiling=D("800000.00"),
    per_lender_pct=D("30"),
    per_country_pct=D("40"),
    per_borrower_pct=D("10"),
)
WIDE_CEILING = Limits(**{**LIMITS.__dict__, "ceiling": D("5000000.00")})


@pytest.mark.parametrize(
    ("limit", "now", "limits", "maximum"),
    [
        ("leverage", Exposures(D("2900000"), D("0"), D("0"), D("0")), LIMITS, "3000000.00"),
        ("facility_ceiling", Exposures(D("700000"), D("700000"), D("700000"), D("0")), LIMITS, "800000.00"),
        ("per_lender", Exposures(D("800000"), D("800000"), D("800000"), D("0")), WIDE_CEILING, "900000.00"),
        ("per_country", Exposures(D("1100000"), D("0"), D("1100000"), D("0")), LIMITS, "1200000.00"),
        ("per_borrower", Exposures(D("200000"), D("0"), D("200000"), D("200000")), LIMITS, "300000.00"),
    ],
)
def test_each_limit_alone(limit: str, now: Exposures, limits: Limits, maximum: str) -> None:
    assert breaches(D("100000.00"), now, limits) == []  # exactly at the limit: passes
    found = breaches(D("100000.01"), now, limits)
    assert [(b.limit, b.maximum) for b in found] == [(limit, D(maximum))]
    assert found[0].current == D(maximum) + D("0.01")
    assert maximum[:3] in found[0].describe().replace(",", "")


def test_no_capital_means_no_room() -> None:
    broke = Limits(**{**LIMITS.__dict__, "capital": D("0")})
    assert "leverage" in [b.limit for b in breaches(D("0.01"), Exposures(D(0), D(0), D(0), D(0)), broke)]


def test_new_exposure_is_coverage_times_amount_capped() -> None:
    assert new_exposure(D("150000.00"), D("50"), D("125000.00")) == D("75000.00")
    assert new_exposure(D("300000.00"), D("50"), D("125000.00")) == D("125000.00")
    assert new_exposure(D("0.03"), D("50"), D("125000.00")) == D("0.02")  # half-even: 0.015 → 0.02
