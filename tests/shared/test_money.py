"""Money is exact: an amount with more decimals than its currency allows is refused, never rounded."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared.money import Money, format_amount, minor_units, round_money


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("1250.50", "CAD"), ("10", "XOF"), ("0", "XAF"), ("-3.25", "USD"), ("99.9", "EUR"), ("12.34", "HTG")],
)
def test_amounts_within_the_currency_minor_units_are_kept_exactly(amount: str, currency: str) -> None:
    money = Money.model_validate({"amount": amount, "currency": currency})
    assert money.amount == Decimal(amount)
    assert money.model_dump(mode="json") == {"amount": amount, "currency": currency}


@pytest.mark.parametrize(
    ("amount", "currency", "why"),
    [
        ("10.005", "CAD", "CAD allows 2 decimal places"),
        ("10.5", "XOF", "XOF allows 0 decimal places"),
        ("1.0", "XAF", "XAF allows 0"),
        (10.5, "CAD", "JSON string"),
        (10, "CAD", "JSON string"),
        ("1e3", "CAD", "no exponent"),
        ("NaN", "CAD", "no exponent"),
        ("12,50", "CAD", "no exponent"),
        ("", "CAD", "no exponent"),
        ("10", "cad", "upper-case"),
        ("10", "ABC", "not an ISO 4217"),
        ("10", "XAU", "no minor units"),
    ],
)
def test_bad_amounts_are_validation_errors(amount: object, currency: str, why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Money.model_validate({"amount": amount, "currency": currency})
    assert why in str(caught.value)


def test_minor_units_follow_iso_4217() -> None:
    assert {c: minor_units(c) for c in ("XOF", "XAF", "CAD", "USD", "EUR", "HTG", "PEN", "BOB", "JPY", "TND")} == {
        "XOF": 0,
        "XAF": 0,
        "CAD": 2,
        "USD": 2,
        "EUR": 2,
        "HTG": 2,
        "PEN": 2,
        "BOB": 2,
        "JPY": 0,
        "TND": 3,
    }


def test_rounding_is_half_even_to_the_currency() -> None:
    assert round_money(Decimal("2.345"), "CAD") == Decimal("2.34")
    assert round_money(Decimal("2.355"), "CAD") == Decimal("2.36")
    assert round_money(Decimal("1500.5"), "XOF") == Decimal("1500")
    assert round_money(Decimal("1501.5"), "XOF") == Decimal("1502")
    assert format_amount(Decimal("7"), "CAD") == "7.00"
    assert str(Money(amount=Decimal("7"), currency="CAD")) == "7.00 CAD"


def test_the_json_schema_says_amounts_are_strings() -> None:
    schema = Money.model_json_schema()
    assert schema["properties"]["amount"]["type"] == "string"
