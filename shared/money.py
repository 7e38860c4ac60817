"""Money: an exact Decimal amount with an ISO 4217 currency, never a float.

In JSON an amount is a string (`"1250.50"`). An amount with more decimals than its currency's ISO minor units
(`"10.005"` CAD, `"10.5"` XOF) is a validation error, never a silent rounding. Rounding that the fund's rules ask
for (interest, pro-rata splits) goes through `round_money`, half-even by default.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any

from iso4217 import Currency
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

# at most 15 integer digits (999 trillion, stored as numeric(20, 4)) and 8 decimals
# CFA francs are pegged to the euro: their CAD rate derives exactly from EUR's and is never entered
PEGGED_TO_EUR = {"XOF": Decimal("655.957"), "XAF": Decimal("655.957")}
_AMOUNT_RE = re.compile(r"^-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,8})?$")


@lru_cache(maxsize=512)
def minor_units(currency: str) -> int:
    """ISO 4217 minor units (exponent) of a currency: XOF 0, CAD 2, ... Raises ValueError when unknown."""
    try:
        exponent = Currency(currency).exponent
    except ValueError:
        raise ValueError(f"{currency!r} is not an ISO 4217 currency code") from None
    if exponent is None:
        raise ValueError(f"{currency!r} has no minor units (not a currency money can be held in)")
    return int(exponent)


def _check_currency(value: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{3}", value):
        raise ValueError("currency must be a three-letter upper-case ISO 4217 code, e.g. CAD")
    minor_units(value)
    return value


def _parse_amount(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        if not value.is_finite() or abs(value) >= Decimal("1e15"):
            raise ValueError("amount must be a finite number below 10^15")
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError('amount must be a JSON string of digits, e.g. "1250.50" (numbers lose precision)')
    if not _AMOUNT_RE.fullmatch(value):
        raise ValueError('amount must look like "1250.50": at most 15 digits before the point and 8 after, no exponent')
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the regex already guards this
        raise ValueError("amount is not a number") from None


def decimal_places(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


@lru_cache(maxsize=512)
def quantum(currency: str) -> Decimal:
    """The currency's smallest unit: 1 for XOF, 0.01 for CAD (made once: applying a pushed repayment rounds and
    formats about ten amounts)."""
    return Decimal(1).scaleb(-minor_units(currency))


def format_amount(amount: Decimal, currency: str) -> str:
    return str(amount.quantize(quantum(currency)))


def round_money(amount: Decimal, currency: str, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Round to the currency's minor units (banker's rounding unless told otherwise)."""
    return amount.quantize(quantum(currency), rounding=rounding)


CurrencyCode = Annotated[
    str,
    AfterValidator(_check_currency),
    Field(description="ISO 4217 currency code", examples=["CAD", "XOF"], min_length=3, max_length=3),
]

Amount = Annotated[
    Decimal,
    BeforeValidator(_parse_amount),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _AMOUNT_RE.pattern,
            "description": "exact decimal amount as a string, at most the currency's minor units",
            "examples": ["1250.50"],
        }
    ),
]


class Money(BaseModel):
    """An amount in a currency. `{"amount": "1250.50", "currency": "CAD"}`."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{"amount": "1250.50", "currency": "CAD"}]})

    amount: Amount
    currency: CurrencyCode

    @model_validator(mode="after")
    def _minor_units(self) -> Money:
        allowed = minor_units(self.currency)
        if decimal_places(self.amount) > allowed:
            raise ValueError(
                f"{self.currency} allows {allowed} decimal place{'s' if allowed != 1 else ''};"
                f" {self.amount} has {decimal_places(self.amount)}"
            )
        return self

    def __str__(self) -> str:
        return f"{format_amount(self.amount, self.currency)} {self.currency}"

    @classmethod
    def of(cls, amount: Decimal, currency: str) -> Money:
        """From a stored amount (e.g. `numeric(20, 4)`), shown with exactly the currency's minor units."""
        exact = amount.quantize(Decimal(1).scaleb(-minor_units(currency)))
        if exact != amount:
            raise ValueError(f"{amount} has more decimals than {currency} allows")
        return cls(amount=exact, currency=currency)


def _positive(money: Money) -> Money:
    if money.amount <= 0:
        raise ValueError("the amount must be positive")
    return money


PositiveMoney = Annotated[Money, AfterValidator(_positive)]
