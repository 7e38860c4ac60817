"""Schedule versions: the first at the first disbursement, a new one at a later tranche or a restructuring.

A new version keeps every instalment already due on its effective date exactly as it was (what was overdue stays
overdue: a restructuring never makes arrears disappear) and regenerates the later ones so that the principal
parts of the whole version sum exactly to the principal disbursed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from dateutil.relativedelta import relativedelta

from services.portfolio.loans.ledger import Due
from services.portfolio.schedules.generator import Frequency, Method, Terms, generate


@dataclass(frozen=True)
class ScheduleTerms:
    annual_rate: Decimal
    frequency: Frequency
    method: Method
    grace_periods: int

    def as_json(self) -> dict[str, str | int]:
        return {
            "annual_rate": format(self.annual_rate.normalize(), "f"),
            "frequency": self.frequency.value,
            "method": self.method.value,
            "grace_periods": self.grace_periods,
        }


class ScheduleError(ValueError):
    pass


def _dues(terms: Terms, offset: int) -> list[Due]:
    try:
        lines = generate(terms)
    except ValueError as exc:
        raise ScheduleError(str(exc)) from None
    return [Due(line.number + offset, line.due_date, line.principal, line.interest) for line in lines]


def first_schedule(
    terms: ScheduleTerms,
    *,
    principal: Decimal,
    currency: str,
    term_months: int,
    disbursed_on: date,
    first_due: date | None,
) -> list[Due]:
    first = first_due or disbursed_on + relativedelta(months=terms.frequency.months)
    if first <= disbursed_on:
        raise ScheduleError(f"the first due date {first} must come after the disbursement on {disbursed_on}")
    return _dues(
        Terms(
            principal,
            currency,
            terms.annual_rate,
            term_months,
            terms.frequency,
            terms.method,
            first,
            terms.grace_periods,
        ),
        0,
    )


def after_tranche(
    current: Sequence[Due], terms: ScheduleTerms, *, disbursed_total: Decimal, currency: str, on: date
) -> list[Due]:
    """A tranche on `on`: the instalments due by then stay; the later ones are regenerated, to the same maturity,
    over the principal disbursed so far that they do not already carry."""
    kept = [d for d in current if d.due_date <= on]
    later = [d for d in current if d.due_date > on]
    if not later:
        raise ScheduleError(f"every instalment is due by {on}: a tranche can no longer be scheduled")
    principal = disbursed_total - sum((d.principal for d in kept), Decimal(0))
    grace = min(max(0, terms.grace_periods - len(kept)), len(later) - 1)
    generated = _dues(
        Terms(
            principal,
            currency,
            terms.annual_rate,
            len(later) * terms.frequency.months,
            terms.frequency,
            terms.method,
            later[0].due_date,
            grace,
        ),
        len(kept),
    )
    return [*kept, *generated]


def restructured(
    current: Sequence[Due],
    terms: ScheduleTerms,
    *,
    disbursed_total: Decimal,
    currency: str,
    on: date,
    periods: int,
    first_due: date,
) -> list[Due]:
    """A restructuring on `on` with new terms over `periods` new instalments from `first_due`: the instalments due
    by then stay as they were (paid or not); the principal they do not carry is rescheduled."""
    if first_due <= on:
        raise ScheduleError(f"the first new due date {first_due} must come after the restructuring on {on}")
    kept = [d for d in current if d.due_date <= on]
    principal = disbursed_total - sum((d.principal for d in kept), Decimal(0))
    if principal <= 0:
        raise ScheduleError("every instalment carrying principal is already due: there is nothing to reschedule")
    generated = _dues(
        Terms(
            principal,
            currency,
            terms.annual_rate,
            periods * terms.frequency.months,
            terms.frequency,
            terms.method,
            first_due,
            terms.grace_periods,
        ),
        len(kept),
    )
    return [*kept, *generated]
