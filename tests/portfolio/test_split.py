"""Pro-rata splits between participants always sum exactly to the whole."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.portfolio.loans.split import split


def test_a_co_financed_repayment_is_split_40_60_with_the_residue_to_the_lender() -> None:
    assert split(Decimal("100.01"), "CAD", {"fund": Decimal(40), "lender": Decimal(60)}) == {
        "fund": Decimal("40.00"),
        "lender": Decimal("60.01"),
    }
    assert split(Decimal("1001"), "XOF", {"fund": Decimal("33.33"), "lender": Decimal("66.67")}) == {
        "fund": Decimal("334"),
        "lender": Decimal("667"),
    }
    assert split(Decimal("5.00"), "CAD", {"lender": Decimal(100)}) == {"lender": Decimal("5.00")}


@pytest.mark.parametrize(
    ("amount", "shares"),
    [
        (Decimal("1.00"), {"fund": Decimal(40), "lender": Decimal(50)}),
        (Decimal("1.00"), {"fund": Decimal(0), "lender": Decimal(100)}),
        (Decimal("1.005"), {"lender": Decimal(100)}),
    ],
)
def test_impossible_splits_are_refused(amount: Decimal, shares: dict[str, Decimal]) -> None:
    with pytest.raises(ValueError):
        split(amount, "CAD", shares)


@settings(max_examples=500, deadline=None)
@given(
    minor=st.integers(min_value=0, max_value=10**12),
    currency=st.sampled_from(["CAD", "XOF"]),
    fund_share=st.integers(min_value=1, max_value=9999),
)
def test_parts_sum_exactly_and_stay_within_a_minor_unit_of_the_exact_share(
    minor: int, currency: str, fund_share: int
) -> None:
    amount = Decimal(minor) if currency == "XOF" else Decimal(minor) / 100
    fund = Decimal(fund_share) / 100
    parts = split(amount, currency, {"fund": fund, "lender": 100 - fund})
    assert sum(parts.values()) == amount
    unit = Decimal(1) if currency == "XOF" else Decimal("0.01")
    for name, share in (("fund", fund), ("lender", 100 - fund)):
        assert abs(parts[name] - amount * share / 100) <= unit
        assert parts[name] >= 0
