"""Money that moved over a period, month by month: disbursed, repaid (principal, interest), written off,
recovered — per currency, and in CAD at the rate of each flow's own value date (DOMAIN.md: flows at the rate of
their date; a day with no rate takes the latest earlier one, reported stale; a currency with no rate at all by
then is reported missing and left out of the CAD sums). A reversed repayment counts nowhere.

The period runs from `from` to `as_of`, both included; months with nothing are shown with zeros.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Context, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.reporting.reports.common import (
    PEGGED,
    Selection,
    cad,
    driver_statement,
    group_columns,
    key_json,
    local,
    where,
)
from services.reporting.reports.portfolio import COLUMNS
from shared.auth import Principal
from shared.db import fetch_one_statement
from shared.money import PEGGED_TO_EUR

FLOWS = ("disbursed", "repaid_principal", "repaid_interest", "written_off", "recovered")
EXACT = Context(prec=50)  # CAD amounts: exact to 50 digits (`Rate.to_cad`)
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


def _monthly_sql(days_sql: str, sel: Selection) -> str:
    """Each day's rows (`days_sql`: the groups, value date, currency, the five flows) summed per group, month and
    currency, with the same sums in CAD at the rate of each day (exact: amount × CAD per unit, before the CFA peg's
    divisor, applied per row of the answer): the rate in force on a day is the latest recorded on or before it (stale
    when earlier), found by spreading each rate of the period over the days until the next one, then joining on the
    day. A currency without a rate on a day is `missing` there (its CAD sums leave that day out); CAD is 1."""
    names = [f"g_{g}" for g in sel.group_by]
    rate = "CASE WHEN d.currency = 'CAD' THEN 1 ELSE r.cad_per_unit END"
    sums = ",\n       ".join(f"sum(d.{f}) AS {f}, sum(d.{f} * {rate}) AS {f}_cad" for f in FLOWS)
    return f"""
WITH d AS (
    SELECT *, CASE WHEN currency = ANY(:pegged) THEN 'EUR' ELSE currency END AS base FROM ({days_sql}) days
), rates AS (
    -- each rate of the needed currencies in force on some day of the period: from the latest one by its first day
    SELECT x.currency, x.rate_date, x.cad_per_unit,
           lead(x.rate_date, 1, CAST(:as_of AS date) + 1) OVER (PARTITION BY x.currency ORDER BY x.rate_date) AS until
    FROM (SELECT DISTINCT base FROM d WHERE base <> 'CAD') b
    CROSS JOIN LATERAL (SELECT max(s.rate_date) AS seed FROM reporting.fx_rates s
                        WHERE s.currency = b.base AND s.rate_date <= :start) s
    JOIN reporting.fx_rates x ON x.currency = b.base
         AND x.rate_date >= coalesce(s.seed, :start) AND x.rate_date <= :as_of
), rate_days AS (
    SELECT currency, rate_date, cad_per_unit,
           CAST(generate_series(greatest(rate_date, :start), until - 1, interval '1 day') AS date) AS day
    FROM rates
)
SELECT {", ".join([*names, "to_char(d.value_date, 'YYYY-MM') AS month", "d.currency"])},
       {sums},
       coalesce(bool_or(r.rate_date < d.value_date), false) AS stale,
       coalesce(bool_or(d.currency <> 'CAD' AND r.rate_date IS NULL), false) AS missing
FROM d
LEFT JOIN rate_days r ON r.currency = d.base AND r.day = d.value_date
GROUP BY {", ".join([*names, str(len(names) + 1), "d.currency"])}
"""  # noqa: S608 - fixed fragments only; values are bound parameters


def months(start: date, end: date) -> list[str]:
    found, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


@dataclass
class Series:
    """One group's months: per currency (local) and in CAD (exact, rounded when shown)."""

    local: dict[str, dict[str, dict[str, Decimal]]] = field(default_factory=dict)  # month → currency → flow
    in_cad: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # month → flow

    def add(self, month: str, currency: str, amounts: dict[str, Decimal], in_cad: dict[str, Decimal] | None) -> None:
        per = self.local.setdefault(month, {}).setdefault(currency, dict.fromkeys(FLOWS, Decimal(0)))
        cad_month = self.in_cad.setdefault(month, dict.fromkeys(FLOWS, Decimal(0)))
        for name in FLOWS:
            per[name] = EXACT.add(per[name], amounts[name])
            if in_cad is not None:
                cad_month[name] = EXACT.add(cad_month[name], in_cad[name])

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
        # grouped: each group's months, none when no group has a loan; else the total's
        for key, series in groups if self.sel.group_by else [((), self.total)]:
            for month in series.json(self._months()):
                rows.append([*(None if k is None else str(k) for k in key), month["month"], *month["cad"].values()])
        return rows


async def flows_report(
    bind: AsyncEngine | AsyncConnection, sel: Selection, start: date, principal: Principal
) -> FlowsReport:
    """Read in one statement through the driver (`shared.db.fetch_one_statement`), whatever the selection: one
    statement sees one snapshot by itself. The rows are asyncpg records, read by name (a SQLAlchemy row's
    attributes cost ~1 µs each, ~1 ms of a year's report)."""
    clause, params = where(sel, principal, COLUMNS)
    whole = USE_DAY_TOTALS and clause == "true" and set(sel.group_by) <= {"currency"}  # every loan: day totals
    sql = _monthly_sql(_day_totals_sql(sel) if whole else _sql(sel, clause), sel)
    params |= {"start": start, "as_of": sel.as_of, "pegged": PEGGED}
    total = Series()
    groups: dict[tuple[Any, ...], Series] = defaultdict(Series)
    stale: set[str] = set()
    missing: set[str] = set()
    names = [f"g_{g}" for g in sel.group_by]
    for row in await fetch_one_statement(bind, driver_statement(sql), params):
        currency = row["currency"]
        if row["missing"]:
            missing.add(currency)
        if row["stale"]:
            stale.add(currency)
        amounts = {name: row[name] for name in FLOWS}
        divisor = PEGGED_TO_EUR.get(currency)
        in_cad = {name: row[f"{name}_cad"] for name in FLOWS}
        if in_cad["disbursed"] is None:  # no day of the month had a rate: nothing in CAD
            converted = None
        elif divisor is None:
            converted = in_cad
        else:
            converted = {name: EXACT.divide(amount, divisor) for name, amount in in_cad.items()}
        total.add(row["month"], currency, amounts, converted)
        if sel.group_by:
            groups[tuple(row[name] for name in names)].add(row["month"], currency, amounts, converted)
    return FlowsReport(sel, start, total, dict(groups), stale, missing)
