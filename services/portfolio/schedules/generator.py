"""Repayment schedules (DOMAIN.md, Portfolio), as pure functions of the loan's terms.

- Each period's interest = balance × annual rate ÷ periods per year (30/360), rounded to the currency's minor
  units with banker's rounding (half-even, Fineract's default).
- `annuity`: A = P·r / (1 − (1+r)^−n), rounded; principal part = A − interest.
- `equal_principal`: principal P/n rounded, interest on the balance.
- `flat`: interest P × annual rate × years ÷ n every period; principal P/n rounded.
- `bullet`: interest every period, all the principal at maturity.
- Grace periods on principal come first and pay interest only; the principal is then repaid over the rest.
- The last instalment absorbs the rounding residue, so the principal parts sum exactly to P.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from dateutil.relativedelta import relativedelta

from shared.money import minor_units


class Method(StrEnum):
    annuity = "annuity"
    equal_principal = "equal_principal"
    flat = "flat"
    bullet = "bullet"


class Frequency(StrEnum):
    monthly = "monthly"
    quarterly = "quarterly"
    semi_annual = "semi_annual"
    annual = "annual"

    @property
    def months(self) -> int:
        return {"monthly": 1, "quarterly": 3, "semi_annual": 6, "annual": 12}[self.value]

    @property
    def per_year(self) -> int:
        return 12 // self.months


@dataclass(frozen=True)
class Terms:
    principal: Decimal
    currency: str
    annual_rate: Decimal  # 0.12 for 12 %
    term_months: int
    frequency: Frequency
    method: Method
    first_due_date: date
    grace_periods: int = 0  # interest-only periods at the start


@dataclass(frozen=True)
class Instalment:
    number: int
    due_date: date
    principal: Decimal
    interest: Decimal
    balance_after: Decimal

    @property
    def total(self) -> Decimal:
        return self.principal + self.interest


def _round(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_EVEN)


def periods(terms: Terms) -> int:
    if terms.term_months % terms.frequency.months:
        raise ValueError(
            f"a term of {terms.term_months} months is not a whole number of {terms.frequency.value} periods"
        )
    return terms.term_months // terms.frequency.months


def generate(terms: Terms) -> list[Instalment]:
    n = periods(terms)
    if terms.principal <= 0:
        raise ValueError("the principal must be positive")
    if terms.annual_rate < 0:
        raise ValueError("the rate cannot be negative")
    if not 0 <= terms.grace_periods < n:
        raise ValueError(f"grace periods must leave at least one period to repay ({n} in all)")
    if _round(terms.principal, terms.currency) != terms.principal:
        raise ValueError(f"the principal has more decimals than {terms.currency} allows")
    cur = terms.currency
    r = terms.annual_rate / terms.frequency.per_year
    repaying = n - terms.grace_periods
    if terms.method == Method.annuity:
        level = (
            _round(terms.principal / repaying, cur)
            if r == 0
            else _round(terms.principal * r / (1 - (1 + r) ** -repaying), cur)
        )
    flat_interest = _round(terms.principal * terms.annual_rate * Decimal(terms.term_months) / 12 / n, cur)
    equal_part = _round(terms.principal / repaying, cur)

    balance = terms.principal
    out: list[Instalment] = []
    for k in range(1, n + 1):
        due = terms.first_due_date + relativedelta(months=terms.frequency.months * (k - 1))
        interest = flat_interest if terms.method == Method.flat else _round(balance * r, cur)
        if k <= terms.grace_periods:
            principal = Decimal(0)
        elif k == n:
            principal = balance  # the last instalment absorbs every rounding residue
        elif terms.method == Method.annuity:
            principal = min(balance, max(Decimal(0), level - interest))
        elif terms.method == Method.bullet:
            principal = Decimal(0)
        else:
            principal = min(balance, equal_part)
        balance -= principal
        out.append(Instalment(k, due, principal, interest, balance))
    return out
