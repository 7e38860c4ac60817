"""Money that moved over a period, month by month: disbursed, repaid (principal, interest), written off,
recovered — per currency, and in CAD at the rate of each flow's own value date (DOMAIN.md: flows at the rate of
their date; a day with no rate takes the latest earlier one, reported stale; a currency with no rate at all by
then is reported missing and left out of the CAD sums). A reversed repayment counts nowhere.

The period runs from `from` to `as_of`, both included; months with nothing are shown with zeros.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.reports.common import (
    Rate,
    Selection,
    cad,
    for_reports,
    group_columns,
    key_json,
    key_of,
    local,
    where,
)
from services.reporting.reports.portfolio import COLUMNS
from shared.auth import Principal
from shared.money import PEGGED_TO_EUR

FLOWS = ("disbursed", "repaid_principal", "repaid_interest", "written_off", "recovered")
USE_DAY_TOTALS = True  # read `flow_days` when nothing narrows the loans (tests compare with the detailed path)


def _sql(sel: Selection, clause: str) -> str:
    groups = group_columns(sel, COLUMNS)
    names = [f"g_{g}" for g in sel.group_by]
    return f"""
SELECT {", ".join([*groups, "f.value_date", "l.currency"])},
       coalesce(sum(f.amount) FILTER (WHERE f.kind = 'disbursed'), 0) AS disbursed,
       coalesce(sum(f.principal) FILTER (WHERE f.kind = 'repaid'), 0) AS repaid_principal,
       coalesce(sum(f.interest) FILTER (WHERE f.kind = 'repaid'), 0) AS repaid_interest,
       coalesce(sum(f.amount) FILTER (WHERE f.kind = 'written_off'), 0) AS written_off,
       coalesce(sum(f.amount) FILTER (WHERE f.kind = 'recovered'), 0) AS recovered
FROM reporting.loan_flows f
JOIN reporting.loans l ON l.loan_id = f.loan_id
LEFT JOIN reporting.businesses b ON b.business_id = l.business_id
WHERE f.value_date >= :start AND f.value_date <= :as_of AND NOT f.reversed AND {clause}
GROUP BY {", ".join([*names, "f.value_date", "l.currency"])}
"""  # noqa: S608 - fixed fragments only; values are bound parameters


def _day_totals_sql(sel: Selection) -> str:
    """The same rows from the day totals the projection keeps (`flow_days`): when nothing narrows the loans."""
    groups = ["currency AS g_currency"] if sel.group_by else []
    return f"""
SELECT {", ".join([*groups, "value_date", "currency"])}, disbursed, repaid_principal, repaid_interest, written_off,
       recovered
FROM reporting.flow_days
WHERE value_date >= :start AND value_date <= :as_of
"""  # noqa: S608 - fixed fragments only; values are bound parameters


def months(start: date, end: date) -> list[str]:
    found, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


class RateHistory:
    """Every recorded rate of the currencies needed, up to the period's end: the rate of any day by bisection."""

    def __init__(self, rows: list[Any]) -> None:
        self.dates: dict[str, list[date]] = defaultdict(list)
        self.values: dict[str, list[Decimal]] = defaultdict(list)
        for row in rows:  # ordered by currency, rate_date
            self.dates[row.currency].append(row.rate_date)
            self.values[row.currency].append(Decimal(row.cad_per_unit))

    def on(self, currency: str, day: date) -> Rate | None:
        if currency == "CAD":
            return Rate("CAD", Decimal(1), Decimal(1), day, False)
        base = "EUR" if currency in PEGGED_TO_EUR else currency
        i = bisect.bisect_right(self.dates[base], day) - 1
        if i < 0:
            return None
        rate_date = self.dates[base][i]
        derived = base if base != currency else None
        divisor = PEGGED_TO_EUR.get(currency, Decimal(1))
        return Rate(currency, self.values[base][i], divisor, rate_date, rate_date < day, derived)


@dataclass
class Series:
    """One group's months: per currency (local) and in CAD (exact, rounded when shown)."""

    local: dict[str, dict[str, dict[str, Decimal]]] = field(default_factory=dict)  # month → currency → flow
    in_cad: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # month → flow

    def add(self, month: str, currency: str, amounts: dict[str, Decimal], rate: Rate | None) -> None:
        per = self.local.setdefault(month, {}).setdefault(currency, dict.fromkeys(FLOWS, Decimal(0)))
        cad_month = self.in_cad.setdefault(month, dict.fromkeys(FLOWS, Decimal(0)))
        for name in FLOWS:
            per[name] += amounts[name]
            if rate is not None:
                cad_month[name] += rate.to_cad(amounts[name])

    def json(self, all_months: list[str]) -> list[dict[str, Any]]:
        zero = dict.fromkeys(FLOWS, Decimal(0))
        return [
            {
                "month": month,
                "cad": {name: cad(self.in_cad.get(month, zero)[name]) for name in FLOWS},
                "by_currency": [
                    {"currency": c, **{name: local(v, c) for name, v in amounts.items()}}
                    for c, amounts in sorted(self.local.get(month, {}).items())
                ],
            }
            for month in all_months
        ]


@dataclass
class FlowsReport:
    sel: Selection
    start: date
    total: Series
    groups: dict[tuple[Any, ...], Series]
    stale: set[str]
    missing: set[str]

    def _months(self) -> list[str]:
        return months(self.start, self.sel.as_of)

    def json(self) -> dict[str, Any]:
        return {
            "report": "flows",
            "from": self.start.isoformat(),
            "to": self.sel.as_of.isoformat(),
            "group_by": list(self.sel.group_by),
            "filters": self.sel.echo(),
            "rates": {"stale": sorted(self.stale), "missing": sorted(self.missing)},
            "total": {"months": self.total.json(self._months())},
            "groups": [
                {"key": key_json(self.sel, key), "months": series.json(self._months())}
                for key, series in sorted(self.groups.items(), key=lambda kv: [str(k) for k in kv[0]])
            ],
        }

    def csv_header(self) -> list[str]:
        return [*self.sel.group_by, "month", *(f"{name}_cad" for name in FLOWS)]

    def csv_rows(self) -> list[list[Any]]:
        rows = []
        groups = sorted(self.groups.items(), key=lambda kv: [str(k) for k in kv[0]]) if self.sel.group_by else []
        for key, series in groups or [((), self.total)]:
            for month in series.json(self._months()):
                rows.append([*(None if k is None else str(k) for k in key), month["month"], *month["cad"].values()])
        return rows


async def flows_report(session: AsyncSession, sel: Selection, start: date, principal: Principal) -> FlowsReport:
    await for_reports(session)
    clause, params = where(sel, principal, COLUMNS)
    whole = USE_DAY_TOTALS and clause == "true" and set(sel.group_by) <= {"currency"}  # every loan: day totals
    sql = _day_totals_sql(sel) if whole else _sql(sel, clause)
    rows = (await session.execute(text(sql), {**params, "start": start, "as_of": sel.as_of})).all()
    currencies = {r.currency for r in rows}
    lookup = sorted({"EUR" if c in PEGGED_TO_EUR else c for c in currencies if c != "CAD"})
    history = RateHistory(
        list(
            await session.execute(
                text(
                    "SELECT currency, rate_date, cad_per_unit FROM reporting.fx_rates"
                    " WHERE currency = ANY(:currencies) AND rate_date <= :as_of ORDER BY currency, rate_date"
                ),
                {"currencies": lookup, "as_of": sel.as_of},
            )
        )
    )
    total = Series()
    groups: dict[tuple[Any, ...], Series] = defaultdict(Series)
    stale: set[str] = set()
    missing: set[str] = set()
    for row in rows:
        rate = history.on(row.currency, row.value_date)
        if rate is None:
            missing.add(row.currency)
        elif rate.stale:
            stale.add(row.currency)
        amounts = {name: Decimal(getattr(row, name)) for name in FLOWS}
        month = row.value_date.strftime("%Y-%m")
        total.add(month, row.currency, amounts, rate)
        if sel.group_by:
            groups[key_of(sel, row)].add(month, row.currency, amounts, rate)
    return FlowsReport(sel, start, total, dict(groups), stale, missing)
