"""Schedules: the DOMAIN.md formulas, banker's rounding, grace, and principal parts that always sum exactly."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.portfolio.schedules.generator import Frequency, Method, Terms, generate


def terms(**kw: object) -> Terms:
    base: dict[str, object] = {
        "principal": Decimal("10000.00"),
        "currency": "CAD",
        "annual_rate": Decimal("0.12"),
        "term_months": 12,
        "frequency": Frequency.monthly,
        "method": Method.annuity,
        "first_due_date": date(2026, 1, 31),
    }
    base.update(kw)
    return Terms(**base)  # type: ignore[arg-type]


def test_an_annuity_has_equal_instalments_but_the_last() -> None:
    schedule = generate(terms())
    # A = 10000 × 0.01 / (1 − 1.01^−12) = 888.4878… → 888.49
    assert {i.total for i in schedule[:-1]} == {Decimal("888.49")}
    assert schedule[0].interest == Decimal("100.00") and schedule[0].principal == Decimal("788.49")
    assert sum(i.principal for i in schedule) == Decimal("10000.00")
    assert schedule[-1].balance_after == 0
    assert [i.due_date for i in schedule[:3]] == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)]


def test_equal_principal_flat_and_bullet() -> None:
    equal = generate(terms(method=Method.equal_principal, principal=Decimal("1000.00"), term_months=3))
    assert [i.principal for i in equal] == [Decimal("333.33"), Decimal("333.33"), Decimal("333.34")]
    assert [i.interest for i in equal] == [Decimal("10.00"), Decimal("6.67"), Decimal("3.33")]
    flat = generate(terms(method=Method.flat, principal=Decimal("1200.00"), term_months=12))
    # 1200 × 12 % × 1 year ÷ 12 = 12.00 every month, whatever the balance
    assert {i.interest for i in flat} == {Decimal("12.00")} and {i.principal for i in flat} == {Decimal("100.00")}
    bullet = generate(terms(method=Method.bullet, frequency=Frequency.quarterly))
    assert [i.principal for i in bullet] == [0, 0, 0, Decimal("10000.00")]
    assert {i.interest for i in bullet} == {Decimal("300.00")}


def test_grace_periods_pay_interest_only_first() -> None:
    schedule = generate(terms(method=Method.equal_principal, grace_periods=3, term_months=12))
    assert [i.principal for i in schedule[:3]] == [0, 0, 0]
    assert [i.interest for i in schedule[:3]] == [Decimal("100.00")] * 3
    assert schedule[3].principal == Decimal("1111.11")
    assert sum(i.principal for i in schedule) == Decimal("10000.00")


def test_zero_decimal_currencies_and_half_even_rounding() -> None:
    schedule = generate(
        terms(currency="XOF", principal=Decimal("1000000"), method=Method.equal_principal, term_months=3)
    )
    assert [i.principal for i in schedule] == [Decimal("333333"), Decimal("333333"), Decimal("333334")]
    assert all(i.interest == i.interest.to_integral_value() for i in schedule)
    # 250.5 rounds to the even 250, 251.5 to 252: banker's rounding, as Fineract
    half = generate(
        terms(
            currency="XOF", principal=Decimal("25050"), annual_rate=Decimal("0.12"), method=Method.bullet, term_months=1
        )
    )
    assert half[0].interest == Decimal("250")
    half = generate(
        terms(
            currency="XOF", principal=Decimal("25150"), annual_rate=Decimal("0.12"), method=Method.bullet, term_months=1
        )
    )
    assert half[0].interest == Decimal("252")


@pytest.mark.parametrize(
    "bad",
    [
        {"term_months": 10, "frequency": Frequency.quarterly},
        {"grace_periods": 12},
        {"principal": Decimal("0")},
        {"principal": Decimal("100.005")},
        {"annual_rate": Decimal("-0.01")},
    ],
)
def test_impossible_terms_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        generate(terms(**bad))


@settings(max_examples=300, deadline=None)
@given(
    principal=st.integers(min_value=1, max_value=10**9),
    currency=st.sampled_from(["CAD", "XOF", "HTG"]),
    rate=st.integers(min_value=0, max_value=4000),
    frequency=st.sampled_from(list(Frequency)),
    method=st.sampled_from(list(Method)),
    periods=st.integers(min_value=1, max_value=60),
    grace=st.integers(min_value=0, max_value=12),
)
def test_principal_parts_always_sum_exactly_and_never_go_negative(
    principal: int, currency: str, rate: int, frequency: Frequency, method: Method, periods: int, grace: int
) -> None:
    amount = Decimal(principal) if currency == "XOF" else Decimal(principal) / 100
    schedule = generate(
        Terms(
            principal=amount,
            currency=currency,
            annual_rate=Decimal(rate) / 10000,
            term_months=periods * frequency.months,
            frequency=frequency,
            method=method,
            first_due_date=date(2026, 1, 15),
            grace_periods=min(grace, periods - 1),
        )
    )
    assert len(schedule) == periods
    assert sum(i.principal for i in schedule) == amount
    assert all(i.principal >= 0 and i.interest >= 0 and i.balance_after >= 0 for i in schedule)
    assert schedule[-1].balance_after == 0
