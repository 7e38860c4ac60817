"""The fund's limits on guarantees (DOMAIN.md, Guarantees), as a pure function of the figures in CAD.

Capacity = capital available × the policy's maximum leverage. A new exposure X passes when, for each limit,
current + X ≤ maximum (exactly at the maximum passes):
- leverage: total exposure ≤ capacity;
- facility ceiling: the lender's exposure ≤ its facility's ceiling;
- per lender: the lender's exposure ≤ per_lender_max_pct of capacity;
- per country: the country's exposure ≤ per_country_max_pct of capacity;
- per borrower: the borrower's exposure ≤ per_borrower_max_pct of capacity.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from shared.money import round_money

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Exposures:
    """Current guaranteed exposures in CAD."""

    total: Decimal
    lender: Decimal
    country: Decimal
    borrower: Decimal


@dataclass(frozen=True)
class Limits:
    capital: Decimal
    leverage_max: Decimal
    ceiling: Decimal
    per_lender_pct: Decimal
    per_country_pct: Decimal
    per_borrower_pct: Decimal

    @property
    def capacity(self) -> Decimal:
        return round_money(self.capital * self.leverage_max, "CAD")

    def share(self, pct: Decimal) -> Decimal:
        return round_money(self.capacity * pct / HUNDRED, "CAD")


@dataclass(frozen=True)
class Breach:
    limit: str  # leverage | facility_ceiling | per_lender | per_country | per_borrower
    current: Decimal  # the exposure with the new one
    maximum: Decimal

    def describe(self) -> str:
        return f"{self.limit.replace('_', ' ')}: {self.current:,.2f} CAD would exceed the maximum of {self.maximum:,.2f} CAD"


def breaches(new: Decimal, now: Exposures, limits: Limits) -> list[Breach]:
    checks = [
        ("leverage", now.total + new, limits.capacity),
        ("facility_ceiling", now.lender + new, limits.ceiling),
        ("per_lender", now.lender + new, limits.share(limits.per_lender_pct)),
        ("per_country", now.country + new, limits.share(limits.per_country_pct)),
        ("per_borrower", now.borrower + new, limits.share(limits.per_borrower_pct)),
    ]
    return [Breach(name, current, maximum) for name, current, maximum in checks if current > maximum]


def new_exposure(amount_cad: Decimal, coverage_pct: Decimal, cap_cad: Decimal) -> Decimal:
    """min(coverage × a CAD amount, cap), rounded half-even to the cent: a guarantee's exposure, a claim's payout
    (with the payout left to recoup as the cap, a recovery's share). Pass the CAD amount unrounded."""
    return min(round_money(amount_cad * coverage_pct / HUNDRED, "CAD"), cap_cad)
