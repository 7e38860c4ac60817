"""Portfolio quality as of a date (DOMAIN.md, Portfolio): loans and borrowers, gross loan portfolio, PAR30 and
PAR90 (amount and ratio), arrears aging, defaults and write-offs, in CAD at the as-of date's closing rates and per
currency.

Each loan's standing as of D is its `loan_standing` row with on <= D < valid_to (`common.standing_on`). Days past due =
D − overdue_from when overdue_from < D, else 0. A loan is in the portfolio (counted, and in the GLP) when its
standing is `active`: repaid and written-off loans are out, a loan not yet disbursed owes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.reports.common import (
    Columns,
    Rates,
    Selection,
    after_every_latest_step,
    cad,
    closing_rates,
    group_columns,
    key_json,
    key_of,
    local,
    ratio,
    standing_on,
    statement,
    where,
)
from shared.auth import Principal

COLUMNS = Columns(
    dimensions={
        "country": "l.country",
        "region": "l.region",
        "lender": "l.lender_id",
        "ica": "l.ica_id",
        "sector": "b.sector",
        "legal_form": "b.legal_form",
        "currency": "l.currency",
    },
    ica="l.ica_id",
    lender="l.lender_id",
)
# arrears aging buckets by days past due (DOMAIN.md): name, lowest DPD, highest DPD (None: no end)
BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("current", 0, 0),
    ("1-30", 1, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("91-180", 91, 180),
    ("over_180", 181, None),
)


def _sql_name(bucket: str) -> str:
    return bucket.replace("-", "_")


DEFAULT_DPD = 90  # the portfolio's policy default threshold (DPD >= 90 is in default)
AMOUNTS = (
    "gross_loan_portfolio",
    "par30",
    "par90",
    "defaults",
    "written_off",
    *(f"aging_{_sql_name(b)}" for b, *_ in BUCKETS),
)
COUNTS = (
    "loans",
    "borrowers",
    "defaults_loans",
    "written_off_loans",
    *(f"aging_{_sql_name(b)}_loans" for b, *_ in BUCKETS),
)


def _bucket_filter(low: int, high: int | None) -> str:
    return f"dpd >= {low}" + (f" AND dpd <= {high}" if high is not None else "")


def _sql(sel: Selection, clause: str, latest: bool = False) -> str:
    """The report's one statement. With `latest` (D on or after every loan's latest standing step: `_reads_latest`),
    the loans active on D are read from each loan's copy of that step (`loans.latest_*`), not from the standing
    steps in force joined to the loans."""
    groups = group_columns(sel, COLUMNS)
    names = [f"g_{g}" for g in sel.group_by]
    buckets = ",\n".join(
        f"coalesce(sum(outstanding) FILTER (WHERE active AND {_bucket_filter(low, high)}), 0) AS aging_{_sql_name(name)},"
        f" count(*) FILTER (WHERE active AND {_bucket_filter(low, high)}) AS aging_{_sql_name(name)}_loans"
        for name, low, high in BUCKETS
    )
    sets = [f"({', '.join([*names, 'currency'])})", f"({', '.join(names)})"]
    if names:
        sets += ["(currency)", "()"]
    grouping = f"GROUPING({', '.join(names)})" if names else "0"
    if latest:
        outstanding, overdue = "l.latest_outstanding", "l.latest_overdue_from"
        active = "FROM reporting.loans l"
        clause_active = f"l.latest_status = 'active' AND l.latest_on <= CAST(:as_of AS date) AND {clause}"
    else:
        outstanding, overdue = "st.outstanding_principal", "st.overdue_from"
        active = f"FROM {standing_on(active_only=True)} st\n    JOIN reporting.loans l ON l.loan_id = st.loan_id"
        clause_active = clause
    # only fixed fragments are interpolated (dimension columns, bucket bounds); values are bound parameters
    return f"""
WITH standing AS (
    -- the loans active on D: every figure but the write-offs
    SELECT l.loan_id, l.business_id, l.currency, {", ".join([*groups, "true AS _"])},
           {outstanding} AS outstanding,
           true AS active,
           CASE WHEN {overdue} < CAST(:as_of AS date) THEN CAST(:as_of AS date) - {overdue} ELSE 0 END AS dpd,
           CASE WHEN l.written_off_on <= :as_of THEN l.written_off_principal END AS written_off
    {active}
    LEFT JOIN reporting.businesses b ON b.business_id = l.business_id
    WHERE {clause_active}
    UNION ALL
    -- the loans written off by D and not active then: their write-off only. A loan neither active nor written off
    -- on D (repaid, most of them on a current date) counts in no figure: it is not read
    SELECT l.loan_id, l.business_id, l.currency, {", ".join([*groups, "true AS _"])},
           st.outstanding_principal AS outstanding, false AS active, 0 AS dpd, l.written_off_principal AS written_off
    FROM reporting.loans l
    JOIN LATERAL (
        SELECT s.outstanding_principal, s.valid_to, s.status FROM reporting.loan_standing s
        WHERE s.loan_id = l.loan_id AND s."on" <= CAST(:as_of AS date) ORDER BY s."on" DESC LIMIT 1
    ) st ON st.valid_to > CAST(:as_of AS date) AND st.status <> 'active'
    LEFT JOIN reporting.businesses b ON b.business_id = l.business_id
    WHERE l.written_off_on <= :as_of AND {clause}
)
SELECT {", ".join([*names, "currency"])},
       {grouping} AS all_groups, GROUPING(currency) AS all_currencies,
       count(*) FILTER (WHERE active) AS loans,
       count(DISTINCT business_id) FILTER (WHERE active) AS borrowers,
       coalesce(sum(outstanding) FILTER (WHERE active), 0) AS gross_loan_portfolio,
       coalesce(sum(outstanding) FILTER (WHERE active AND dpd > 30), 0) AS par30,
       coalesce(sum(outstanding) FILTER (WHERE active AND dpd > 90), 0) AS par90,
       coalesce(sum(outstanding) FILTER (WHERE active AND dpd >= :default_dpd), 0) AS defaults,
       count(*) FILTER (WHERE active AND dpd >= :default_dpd) AS defaults_loans,
       coalesce(sum(written_off), 0) AS written_off,
       count(written_off) AS written_off_loans,
       {buckets}
FROM standing
GROUP BY GROUPING SETS ({", ".join(sets)})
"""  # noqa: S608


@dataclass
class Figures:
    """One group's figures: counts over every currency, amounts per currency (local), converted to CAD."""

    counts: dict[str, int] = field(default_factory=dict)
    by_currency: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    currency_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def in_cad(self, rates: Rates) -> dict[str, Decimal]:
        """Σ over currencies with a rate of amount × rate, exact (rounded only when shown)."""
        totals = dict.fromkeys(AMOUNTS, Decimal(0))
        for currency, amounts in self.by_currency.items():
            rate = rates.found.get(currency)
            if rate is None:
                continue
            for name in AMOUNTS:
                totals[name] += rate.to_cad(amounts[name])
        return totals


def _amounts_json(amounts: dict[str, Decimal], show: Any) -> dict[str, Any]:
    return {
        "gross_loan_portfolio": show(amounts["gross_loan_portfolio"]),
        "par30": show(amounts["par30"]),
        "par30_ratio": ratio(amounts["par30"], amounts["gross_loan_portfolio"]),
        "par90": show(amounts["par90"]),
        "par90_ratio": ratio(amounts["par90"], amounts["gross_loan_portfolio"]),
        "defaults": show(amounts["defaults"]),
        "written_off": show(amounts["written_off"]),
        "aging": {name: show(amounts[f"aging_{_sql_name(name)}"]) for name, *_ in BUCKETS},
    }


def _counts_json(counts: dict[str, int]) -> dict[str, Any]:
    return {
        "loans": counts["loans"],
        "borrowers": counts["borrowers"],
        "defaults_loans": counts["defaults_loans"],
        "written_off_loans": counts["written_off_loans"],
        "aging_loans": {name: counts[f"aging_{_sql_name(name)}_loans"] for name, *_ in BUCKETS},
    }


@dataclass
class PortfolioReport:
    sel: Selection
    rates: Rates
    total: Figures
    groups: dict[tuple[Any, ...], Figures]

    def figures_json(self, figures: Figures) -> dict[str, Any]:
        return {
            **_counts_json(figures.counts),
            "cad": _amounts_json(figures.in_cad(self.rates), cad),
            "by_currency": [
                {
                    "currency": currency,
                    **_counts_json(figures.currency_counts[currency]),
                    **_amounts_json(amounts, lambda a, c=currency: local(a, c)),
                }
                for currency, amounts in sorted(figures.by_currency.items())
            ],
        }

    def json(self) -> dict[str, Any]:
        return {
            "report": "portfolio",
            "as_of": self.sel.as_of.isoformat(),
            "group_by": list(self.sel.group_by),
            "filters": self.sel.echo(),
            "default_dpd": DEFAULT_DPD,
            "rates": self.rates.json(),
            "total": self.figures_json(self.total),
            "groups": [
                {"key": key_json(self.sel, key), **self.figures_json(figures)}
                for key, figures in sorted(self.groups.items(), key=lambda kv: [str(k) for k in kv[0]])
            ],
        }

    def csv_header(self) -> list[str]:
        header = [*self.sel.group_by, "loans", "borrowers"]
        header += ["gross_loan_portfolio_cad", "par30_cad", "par30_ratio", "par90_cad", "par90_ratio"]
        header += [f"aging_{_sql_name(name)}_cad" for name, *_ in BUCKETS]
        header += ["defaults_loans", "defaults_cad", "written_off_loans", "written_off_cad"]
        if "currency" in self.sel.group_by:
            header += [
                "gross_loan_portfolio_local",
                "par30_local",
                "par90_local",
                "defaults_local",
                "written_off_local",
            ]
        return header

    def csv_rows(self) -> list[list[Any]]:
        rows = []
        groups = sorted(self.groups.items(), key=lambda kv: [str(k) for k in kv[0]]) if self.sel.group_by else []
        # grouped: one row per group, none when no group has a loan; else the total's one row
        for key, figures in groups if self.sel.group_by else [((), self.total)]:
            amounts = figures.in_cad(self.rates)
            currency = str(key[self.sel.group_by.index("currency")]) if "currency" in self.sel.group_by else None
            # a currency with no rate at all: its CAD cells are unknown (empty), never zero
            known = currency is None or currency in self.rates.found

            def show(name: str) -> str | None:
                return cad(amounts[name]) if known else None  # noqa: B023 - used within this iteration

            def share(name: str) -> str | None:
                return ratio(amounts[name], amounts["gross_loan_portfolio"]) if known else None  # noqa: B023

            row: list[Any] = [None if k is None else str(k) for k in key]
            row += [figures.counts["loans"], figures.counts["borrowers"]]
            row += [show("gross_loan_portfolio"), show("par30"), share("par30"), show("par90"), share("par90")]
            row += [show(f"aging_{_sql_name(name)}") for name, *_ in BUCKETS]
            row += [figures.counts["defaults_loans"], show("defaults")]
            row += [figures.counts["written_off_loans"], show("written_off")]
            if currency is not None:
                local_amounts = figures.by_currency.get(currency, {})
                row += [
                    local(local_amounts.get(name, Decimal(0)), currency)
                    for name in ("gross_loan_portfolio", "par30", "par90", "defaults", "written_off")
                ]
            rows.append(row)
        return rows


USE_LATEST_STANDING = True  # read the loans' copy of their latest step when it serves (tests compare)


async def _reads_latest(session: AsyncSession, day: date) -> bool:
    """Whether the loans active on `day` may be read from each loan's copy of its latest standing step."""
    starts = "SELECT max(latest_on) FROM reporting.loans"
    return USE_LATEST_STANDING and await after_every_latest_step(session, day, starts)


async def portfolio_report(session: AsyncSession, sel: Selection, principal: Principal) -> PortfolioReport:
    clause, params = where(sel, principal, COLUMNS)
    sql = _sql(sel, clause, latest=await _reads_latest(session, sel.as_of))
    rows = (await session.execute(statement(sql), {**params, "as_of": sel.as_of, "default_dpd": DEFAULT_DPD})).all()
    total = Figures()
    groups: dict[tuple[Any, ...], Figures] = defaultdict(Figures)
    for row in rows:
        target = total if (sel.group_by and row.all_groups) or not sel.group_by else groups[key_of(sel, row)]
        counts = {name: int(getattr(row, name)) for name in COUNTS}
        if row.all_currencies:
            target.counts = counts
        else:
            target.by_currency[row.currency] = {name: Decimal(getattr(row, name)) for name in AMOUNTS}
            target.currency_counts[row.currency] = counts
    if not total.counts:
        total.counts = dict.fromkeys(COUNTS, 0)
    rates = await closing_rates(session, total.by_currency, sel.as_of)
    return PortfolioReport(sel, rates, total, dict(groups))
