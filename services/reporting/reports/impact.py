"""Social impact as of a date (DOMAIN.md, Impact), each figure with its IRIS+ code where one exists.

The businesses counted are those **financed** by the date: with at least one loan (within the filters and the
caller's scope) disbursed on or before it, repaid or written off since included. Their facts are the ones **in
force** at the date: the latest reported on or before it (a business with none yet is counted as financed, not
in the sums: `businesses_with_facts` says how many were summed).

- jobs created (PI3687) = Σ max(0, employees at the date − employees at the baseline); jobs maintained (PI5691) =
  Σ min(employees at the date, employees at the baseline); the baseline is the facts in force at the business's
  first disbursement (else its earliest report).
- women-led, 2X: ≥ 51 % women-owned, or ≥ 30 % women among senior managers, or ≥ 30 % women on the board.
- 2X share of the portfolio = gross loan portfolio (CAD, closing rates of the date) of loans to 2X businesses ÷
  gross loan portfolio.
- democratic governance: general assembly held in the last 12 months, board elected by members, one member one
  vote — all three (and each one counted apart); environmental practices: at least one reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from services.reporting.models import IMPACT_FIGURES
from services.reporting.reports.common import (
    PEGGED,
    Rates,
    Selection,
    cad,
    closing_rates,
    driver_statement,
    group_columns,
    key_json,
    key_of,
    rate_lookup,
    rates_from,
    ratio,
    statement,
    where,
)
from services.reporting.reports.portfolio import COLUMNS
from shared.auth import Principal
from shared.db import fetch_one_statement

# figure, IRIS+ code (None where IRIS+ has none the fund reports by)
COUNTED: tuple[tuple[str, str | None], ...] = (
    ("businesses_financed", None),
    ("members_total", None),
    ("members_women", None),
    ("jobs_created", "PI3687"),
    ("jobs_maintained", "PI5691"),
    ("employees_total", "OI8869"),
    ("employees_women", "OI6213"),
    ("board_seats_total", "OI1075"),
    ("board_seats_women", "OI8118"),
    ("women_led_2x", None),
    ("democratic_governance", None),
    ("general_assembly_held", None),
    ("board_elected_by_members", None),
    ("one_member_one_vote", None),
    ("environmental_practices", None),
)
TWO_X = """coalesce(
        coalesce(n.women_ownership_pct >= 51, false)
        OR (n.senior_managers_total > 0 AND n.senior_managers_women * 100 >= 30 * n.senior_managers_total)
        OR (n.board_seats_total > 0 AND n.board_seats_women * 100 >= 30 * n.board_seats_total), false)"""


USE_IMPACT_DAYS = True  # read `impact_days` when nothing narrows the loans (tests compare with the detailed path)
TOTALS_SQL = f"""
SELECT {", ".join(f"coalesce(sum({name}), 0) AS {name}" for name in IMPACT_FIGURES)}
FROM reporting.impact_days WHERE day <= :as_of
"""  # noqa: S608 - fixed names only
# the gross loan portfolio and its 2X part per currency with an active loan as of D
GLP_SQL = """
SELECT currency, sum(glp) AS glp, sum(two_x_glp) AS two_x_glp FROM reporting.impact_glp_days WHERE day <= :as_of
GROUP BY currency HAVING sum(active_loans) > 0
"""
# the whole fund's figures in one statement (one round trip, not three): the totals, the GLP per currency, and each
# currency's closing rate; one row per currency with a GLP (the totals on each), or one row without a currency
FUND_SQL = f"""
WITH totals AS ({TOTALS_SQL}), glp AS ({GLP_SQL})
SELECT t.*, g.currency, g.glp, g.two_x_glp, r.currency AS rate_currency, r.rate_date, r.cad_per_unit
FROM totals t
LEFT JOIN glp g ON true
LEFT JOIN {rate_lookup("g.currency", "CAST(:as_of AS date)")} r ON true
"""  # noqa: S608 - fixed fragments only
FUND_STATEMENT = driver_statement(FUND_SQL)


def _businesses_sql(sel: Selection, clause: str) -> str:
    groups = group_columns(sel, COLUMNS)
    names = [f"g_{g}" for g in sel.group_by]
    group_by = ", ".join(["l.business_id", *names])
    return f"""
WITH financed AS (
    SELECT {", ".join(["l.business_id", *groups])}, min(l.first_disbursed_on) AS first_on
    FROM reporting.loans l
    LEFT JOIN reporting.businesses b ON b.business_id = l.business_id
    WHERE l.first_disbursed_on <= :as_of AND {clause}
    GROUP BY {group_by}
), in_force AS (
    -- the report in force at D of every business: a filter on its dates, no sort
    SELECT x.* FROM reporting.business_facts x WHERE x.reported_on <= :as_of AND x.valid_to > :as_of
), measured AS (
    SELECT f.*, n.*, {TWO_X} AS two_x, base.employees_total AS base_employees
    FROM financed f
    LEFT JOIN in_force n ON n.business_id = f.business_id
    LEFT JOIN reporting.businesses fb ON fb.business_id = f.business_id
    -- the baseline: the report in force at the first disbursement, else the earliest one (by D); that is, the
    -- report in force at the later of the first disbursement and the earliest report, when that is by D
    LEFT JOIN reporting.business_facts base ON base.business_id = f.business_id
         AND base.reported_on <= greatest(f.first_on, fb.first_reported_on)
         AND base.valid_to > greatest(f.first_on, fb.first_reported_on)
         AND greatest(f.first_on, fb.first_reported_on) <= :as_of
)
SELECT {", ".join([*names, "count(*) AS businesses_financed"])},
       count(reported_on) AS businesses_with_facts,
       coalesce(sum(members_total), 0) AS members_total,
       coalesce(sum(members_women), 0) AS members_women,
       coalesce(sum(greatest(employees_total - base_employees, 0)), 0) AS jobs_created,
       coalesce(sum(least(employees_total, base_employees)), 0) AS jobs_maintained,
       coalesce(sum(employees_total), 0) AS employees_total,
       coalesce(sum(employees_women), 0) AS employees_women,
       coalesce(sum(board_seats_total), 0) AS board_seats_total,
       coalesce(sum(board_seats_women), 0) AS board_seats_women,
       count(*) FILTER (WHERE two_x) AS women_led_2x,
       count(*) FILTER (WHERE general_assembly_last_12_months AND board_elected_by_members AND one_member_one_vote)
           AS democratic_governance,
       count(*) FILTER (WHERE general_assembly_last_12_months) AS general_assembly_held,
       count(*) FILTER (WHERE board_elected_by_members) AS board_elected_by_members,
       count(*) FILTER (WHERE one_member_one_vote) AS one_member_one_vote,
       count(*) FILTER (WHERE cardinality(environmental_practices) > 0) AS environmental_practices
FROM measured
{"GROUP BY " + ", ".join(names) if names else ""}
"""  # noqa: S608 - fixed fragments only; values are bound parameters


def _portfolio_sql(sel: Selection, clause: str) -> str:
    groups = group_columns(sel, COLUMNS)
    names = [f"g_{g}" for g in sel.group_by]
    grouping = f"GROUPING({', '.join(names)})" if names else "0"
    sets = [f"({', '.join([*names, 'currency'])})", "(currency)"] if names else ["(currency)"]
    return f"""
WITH in_force AS (
    SELECT x.* FROM reporting.business_facts x WHERE x.reported_on <= :as_of AND x.valid_to > :as_of
), standing AS (
    SELECT {", ".join(["l.currency", *groups])}, st.outstanding_principal AS outstanding, {TWO_X} AS two_x
    FROM reporting.loan_standing st
    JOIN reporting.loans l ON l.loan_id = st.loan_id
    LEFT JOIN reporting.businesses b ON b.business_id = l.business_id
    LEFT JOIN in_force n ON n.business_id = l.business_id
    WHERE st.on <= :as_of AND st.valid_to > :as_of AND st.status = 'active' AND {clause}
)
SELECT {", ".join([*names, "currency"])}, {grouping} AS all_groups,
       sum(outstanding) AS glp, coalesce(sum(outstanding) FILTER (WHERE two_x), 0) AS two_x_glp
FROM standing
GROUP BY GROUPING SETS ({", ".join(sets)})
"""  # noqa: S608 - fixed fragments only; values are bound parameters


@dataclass
class Share:
    """The gross loan portfolio and its 2X part, per currency (local)."""

    by_currency: dict[str, tuple[Decimal, Decimal]]

    def in_cad(self, rates: Rates) -> tuple[Decimal, Decimal]:
        glp = two_x = Decimal(0)
        for currency, (amount, part) in self.by_currency.items():
            rate = rates.found.get(currency)
            if rate is not None:
                glp += rate.to_cad(amount)
                two_x += rate.to_cad(part)
        return glp, two_x


@dataclass
class ImpactReport:
    sel: Selection
    rates: Rates
    total: dict[str, int]
    total_share: Share
    groups: dict[tuple[Any, ...], dict[str, int]]
    shares: dict[tuple[Any, ...], Share]

    def figures_json(self, counts: dict[str, int], share: Share) -> dict[str, Any]:
        glp, two_x = share.in_cad(self.rates)
        return {
            **{name: {"value": counts[name], "iris": iris} for name, iris in COUNTED},
            "businesses_with_facts": counts["businesses_with_facts"],
            "two_x_portfolio_share": {
                "value": ratio(two_x, glp),
                "iris": None,
                "gross_loan_portfolio_cad": cad(glp),
                "two_x_gross_loan_portfolio_cad": cad(two_x),
            },
        }

    def _sorted_groups(self) -> list[tuple[tuple[Any, ...], dict[str, int]]]:
        return sorted(self.groups.items(), key=lambda kv: [str(k) for k in kv[0]])

    def json(self) -> dict[str, Any]:
        return {
            "report": "impact",
            "as_of": self.sel.as_of.isoformat(),
            "group_by": list(self.sel.group_by),
            "filters": self.sel.echo(),
            "rates": self.rates.json(),
            "total": self.figures_json(self.total, self.total_share),
            "groups": [
                {"key": key_json(self.sel, key), **self.figures_json(counts, self.shares.get(key, Share({})))}
                for key, counts in self._sorted_groups()
            ],
        }

    def csv_header(self) -> list[str]:
        figures = [f"{name}_{iris}" if iris else name for name, iris in COUNTED]
        return [*self.sel.group_by, *figures, "businesses_with_facts", "two_x_portfolio_share"]

    def csv_rows(self) -> list[list[Any]]:
        rows = []
        groups = self._sorted_groups() if self.sel.group_by else [((), self.total)]
        for key, counts in groups:
            share = self.shares.get(key, Share({})) if self.sel.group_by else self.total_share
            glp, two_x = share.in_cad(self.rates)
            row: list[Any] = [None if k is None else str(k) for k in key]
            rows.append(
                [*row, *(counts[name] for name, _ in COUNTED), counts["businesses_with_facts"], ratio(two_x, glp)]
            )
        return rows


def _counts(row: Any) -> dict[str, int]:
    """The counts of a row, read by name (an asyncpg record, or a SQLAlchemy row's `_mapping`)."""
    return {name: int(row[name]) for name, _ in (*COUNTED, ("businesses_with_facts", None))}


def _whole_fund(sel: Selection, clause: str) -> bool:
    """Nothing narrows the loans and nothing groups them: the report is read in one statement, from the totals by
    date."""
    return USE_IMPACT_DAYS and clause == "true" and not sel.group_by


def reads_in_one_statement(sel: Selection, principal: Principal) -> bool:
    """Whether the report is read in one statement, the whole fund's: its route reads it through the driver
    (`whole_fund_impact`), no session opened."""
    return _whole_fund(sel, where(sel, principal, COLUMNS)[0])


async def whole_fund_impact(bind: AsyncEngine | AsyncConnection, sel: Selection) -> ImpactReport:
    """The report when `reads_in_one_statement`: one statement, read through the driver (`fetch_one_statement`)."""
    return _fund_report(sel, await fetch_one_statement(bind, FUND_STATEMENT, {"as_of": sel.as_of, "pegged": PEGGED}))


def _fund_report(sel: Selection, rows: Sequence[Any]) -> ImpactReport:
    """The whole fund's report from `FUND_SQL`'s rows, read by name (asyncpg records or SQLAlchemy mappings)."""
    share = Share(
        {r["currency"]: (Decimal(r["glp"]), Decimal(r["two_x_glp"])) for r in rows if r["currency"] is not None}
    )
    latest = {r["rate_currency"]: r for r in rows if r["rate_currency"] is not None}
    return ImpactReport(sel, rates_from(share.by_currency, latest, sel.as_of), _counts(rows[0]), share, {}, {})


async def impact_report(session: AsyncSession, sel: Selection, principal: Principal) -> ImpactReport:
    """The report read in a session (a snapshot): any selection, the whole fund's included."""
    clause, params = where(sel, principal, COLUMNS)
    params |= {"as_of": sel.as_of}
    if _whole_fund(sel, clause):  # the whole fund: one statement
        rows = (await session.execute(statement(FUND_SQL), {**params, "pegged": PEGGED})).mappings().all()
        return _fund_report(sel, rows)
    # the total is counted apart: a business financed by two lenders is one business, though in two groups
    if USE_IMPACT_DAYS and clause == "true":  # every loan: the totals by date the projections keep
        total = _counts((await session.execute(statement(TOTALS_SQL), params)).mappings().one())
    else:
        total_sel = Selection(sel.as_of, (), sel.filters)
        total = _counts((await session.execute(statement(_businesses_sql(total_sel, clause)), params)).mappings().one())
    groups: dict[tuple[Any, ...], dict[str, int]] = {}
    if sel.group_by:
        for row in await session.execute(statement(_businesses_sql(sel, clause)), params):
            groups[key_of(sel, row)] = _counts(row._mapping)
    total_share = Share({})
    shares: dict[tuple[Any, ...], Share] = defaultdict(lambda: Share({}))
    for row in await session.execute(statement(_portfolio_sql(sel, clause)), params):
        target = total_share if row.all_groups or not sel.group_by else shares[key_of(sel, row)]
        target.by_currency[row.currency] = (Decimal(row.glp), Decimal(row.two_x_glp))
    rates = await closing_rates(session, total_share.by_currency, sel.as_of)
    return ImpactReport(sel, rates, total, total_share, groups, dict(shares))
