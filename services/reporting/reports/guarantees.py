"""The guarantee fund as of a date (DOMAIN.md, Guarantees), in CAD.

- **exposure** of a guarantee live on D (issued on or before D, not expired by D, no claim paid by D) =
  min(coverage × the loan's outstanding principal at D × D's closing rate, cap), rounded half-even to the cent —
  the guarantees service's formula, computed here from the loan's standing;
- **leverage** = total exposure ÷ capital available (the sum of the capital ledger's entries dated on or before
  D); shown to staff and funders only (an ICA or a lender sees its own exposure, not the fund's leverage);
- **claims**: filed by D (count, payout claimed), paid by D (count, payout); **recoveries**: the fund's share of
  recoveries by D;
- **claims rate** = claims paid over the 12 months to D ÷ the average exposure (at each month end within them and
  on D); **net loss rate** = (claims paid − recoveries) ÷ cumulative exposure at issue of the guarantees issued by
  D; **recovery rate** = recoveries ÷ claims paid.

- **ceiling utilisation** per lender = the lender's whole exposure on D ÷ the ceiling of its facility's terms in
  force on D (the latest version announced by D, `facility.terms_set`); filters other than `lender` do not narrow
  it (a ceiling caps the lender's whole exposure). Staff and funders see every lender's, a lender key its own, an
  ICA key none.

Grouped by `lender`, `exposure` is each lender's guaranteed exposure (within the filters).
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.readmodel.exposure import HALF_EVEN
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
    ratio,
    standing_on,
    statement,
    where,
)
from services.reporting.reports.portfolio import COLUMNS
from shared.auth import Principal, Role

USE_MONTH_ENDS = True  # read the month ends the projections keep (tests compare with computing every one here)


def _month_ends_sql(clause: str) -> str:
    """Exposure at the month ends the projections kept (`guarantee_month_ends`, up to the latest rate date; their
    totals `guarantee_month_end_totals` when nothing narrows the guarantees)."""
    if clause == "true":  # the whole fund: each month end's total, kept with the rows
        return """
SELECT t.month_end AS day, t.exposure_cad AS exposure FROM reporting.guarantee_month_end_totals t
WHERE t.month_end = ANY(CAST(:month_ends AS date[]))
"""
    return f"""
SELECT e.month_end AS day, sum(e.exposure_cad) AS exposure
FROM reporting.guarantee_month_ends e
JOIN reporting.guarantees g ON g.guarantee_id = e.guarantee_id
JOIN reporting.loans l ON l.loan_id = g.loan_id
LEFT JOIN reporting.businesses b ON b.business_id = l.business_id
WHERE e.month_end = ANY(CAST(:month_ends AS date[])) AND {clause}
GROUP BY e.month_end
"""  # noqa: S608 - fixed fragments only; values are bound parameters


def _covered(sel: Selection, clause: str) -> tuple[str, list[str]]:
    """The FROM of the guarantees a report covers, and its group columns. The loan's dimensions (and the business's)
    are joined only when a filter, the caller's scope or a group other than the lender needs them: the whole fund
    reads the guarantees alone, grouped by lender with the guarantee's own `lender_id` (the lender of its loan),
    not joined to every loan (about a third of the claims' statement and of the exposure's on the reference
    load)."""
    if clause == "true" and set(sel.group_by) <= {"lender"}:
        return "reporting.guarantees g", ["g.lender_id AS g_lender" for _ in sel.group_by]
    joined = """reporting.guarantees g
    JOIN reporting.loans l ON l.loan_id = g.loan_id
    LEFT JOIN reporting.businesses b ON b.business_id = l.business_id"""
    return joined, group_columns(sel, COLUMNS)


def _exposure_sql(sel: Selection, clause: str) -> str:
    """Exposure per day (and group), for several days (the sample days past the month ends kept): each live
    guarantee's loan standing each day, the latest step on or before it (one index lookup each)."""
    covered, groups = _covered(sel, clause)
    names = [f"g_{g}" for g in sel.group_by]
    rounded = HALF_EVEN.format(x="p.x")
    return f"""
WITH rates AS (
    SELECT * FROM unnest(CAST(:days AS date[]), CAST(:currencies AS text[]), CAST(:per_units AS numeric[]),
                         CAST(:divisors AS numeric[])) AS r(day, currency, per_unit, divisor)
), days AS (
    SELECT DISTINCT day FROM rates
), paid AS (
    SELECT guarantee_id, min(paid_on) AS paid_on FROM reporting.claims WHERE paid_on IS NOT NULL GROUP BY guarantee_id
), live AS MATERIALIZED (
    -- each guarantee with its loan's dimensions and its first paid claim, joined here first (hash joins over every
    -- guarantee): left to itself the planner, misjudging how many steps the standing yields, joined the standing to
    -- the guarantees first and then looked each loan up one by one (36,000 index lookups on the reference load)
    SELECT {
        ", ".join(
            [
                "g.loan_id",
                "g.currency",
                "g.coverage_pct",
                "g.cap_cad",
                "g.issued_on",
                "g.expired_on",
                "p.paid_on",
                *groups,
            ]
        )
    }
    FROM {covered}
    LEFT JOIN paid p ON p.guarantee_id = g.guarantee_id
    WHERE g.issued_on <= (SELECT max(day) FROM days) AND {clause}
)
SELECT {", ".join(["p.day", *names])}, sum(least({rounded}, p.cap_cad)) AS exposure
FROM (
    -- each live guarantee on each day, priced at that day's rate
    SELECT d.day, v.*, v.coverage_pct * st.outstanding_principal * r.per_unit / r.divisor / 100 AS x
    FROM live v
    JOIN days d ON d.day >= v.issued_on
         AND (v.expired_on IS NULL OR v.expired_on > d.day) AND (v.paid_on IS NULL OR v.paid_on > d.day)
    JOIN rates r ON r.day = d.day AND r.currency = v.currency
    JOIN LATERAL (
        SELECT s.outstanding_principal, s.valid_to FROM reporting.loan_standing s
        WHERE s.loan_id = v.loan_id AND s.on <= d.day ORDER BY s.on DESC LIMIT 1
    ) st ON st.valid_to > d.day
    OFFSET 0 -- x computed once a row: the half-even rounding below names it four times (inlined, each one recomputed)
) p
GROUP BY {", ".join(["p.day", *names])}
"""  # noqa: S608 - fixed fragments only; values are bound parameters


def _exposure_on_sql(sel: Selection, clause: str, also: tuple[str, ...] | None = None, latest: bool = False) -> str:
    """Exposure on one day (D, as a rule) per group, in one pass: the guarantees live that day (issued by then, not
    expired, no claim paid by then) hash-joined to their loans' standing steps in force that day (`standing_on`)
    and to the day's rate of their currency, the groups hashed. No step materialised in between and no sort: about
    an eighth less than the several days' statement given one day, on the reference load.

    With `also` (dimensions: the report's total, by lender or not at all), the same pass gives that grouping's rows
    too (GROUPING SETS), each marked `in_also`: a grouped report reads the guarantees once, not twice. `sel` must
    group by a dimension `also` has not (what tells the two apart).

    With `latest` (the day on or after every guaranteed loan's latest standing step: `_reads_latest`), each
    guarantee's loan standing is its copy of that step (`guarantee_standing`, one row a guarantee), not the standing
    of every loan (100,000 steps in force on the reference load, for 36,000 guarantees live)."""
    dims = sel.group_by if also is None else (*sel.group_by, *(d for d in also if d not in sel.group_by))
    covered, groups = _covered(Selection(sel.as_of, dims, sel.filters), clause)
    names = [f"p.g_{g}" for g in dims]
    grouped = ", ".join(["p.day", *(f"p.g_{g}" for g in sel.group_by)])
    flag = ""
    if also is not None:
        others = [f"p.g_{g}" for g in sel.group_by if g not in also]
        assert others, "the report's groups must differ from the other grouping's"
        grouped = f"GROUPING SETS (({grouped}), ({', '.join(['p.day', *(f'p.g_{g}' for g in also)])}))"
        flag = f", GROUPING({', '.join(others)}) > 0 AS in_also"
    rounded = HALF_EVEN.format(x="p.x")
    if latest:
        standing = """JOIN reporting.guarantee_standing st ON st.guarantee_id = g.guarantee_id
         AND st.standing_on <= :only_day AND st.standing_valid_to > :only_day"""
    else:
        standing = f"""JOIN (
        SELECT s.loan_id, s.outstanding_principal FROM {standing_on("CAST(:only_day AS date)")} s OFFSET 0
    ) st ON st.loan_id = g.loan_id"""  # noqa: S608 - fixed fragments only
    return f"""
WITH rates AS (
    SELECT * FROM unnest(CAST(:currencies AS text[]), CAST(:per_units AS numeric[]), CAST(:divisors AS numeric[]))
        AS r(currency, per_unit, divisor)
)
SELECT {", ".join(["p.day", *names])}{flag}, sum(least({rounded}, p.cap_cad)) AS exposure
FROM (
    SELECT {
        ", ".join(
            [
                "CAST(:only_day AS date) AS day",
                *groups,
                "g.cap_cad",
                "g.coverage_pct * st.outstanding_principal * r.per_unit / r.divisor / 100 AS x",
            ]
        )
    }
    FROM {covered}
    JOIN rates r ON r.currency = g.currency
    {standing}
    WHERE g.issued_on <= :only_day AND (g.expired_on IS NULL OR g.expired_on > :only_day)
      AND NOT EXISTS (
          SELECT 1 FROM reporting.claims c WHERE c.guarantee_id = g.guarantee_id AND c.paid_on <= :only_day)
      AND {clause}
    OFFSET 0 -- x computed once a row: the half-even rounding below names it four times (inlined, each one recomputed)
) p
GROUP BY {grouped}
"""  # noqa: S608 - fixed fragments only; values are bound parameters


USE_LATEST_STANDING = True  # read the guarantees' copy of their loan's latest step when it serves (tests compare)


async def _reads_latest(session: AsyncSession, day: date) -> bool:
    """Whether the exposure on `day` may read each guarantee's copy of its loan's latest standing step."""
    starts = "SELECT max(standing_on) FROM reporting.guarantee_standing"
    return USE_LATEST_STANDING and await after_every_latest_step(session, day, starts)


async def _exposure(
    session: AsyncSession, sel: Selection, clause: str, params: dict[str, Any], also: tuple[str, ...] | None = None
) -> Any:
    """The exposure rows (day, groups, exposure) for the days and rates in `params`; with `also`, one day only, that
    grouping's rows too (`_exposure_on_sql`)."""
    days = set(params["days"])
    if len(days) == 1:
        day = next(iter(days))
        sql = _exposure_on_sql(sel, clause, also=also, latest=await _reads_latest(session, day))
        return await session.execute(statement(sql), {**params, "only_day": day})
    assert also is None, "several days are computed one grouping at a time"
    return await session.execute(statement(_exposure_sql(sel, clause)), params)


def _claims_sql(sel: Selection, clause: str) -> str:
    """The guarantees issued and their claims, per group and in total. The guarantees are counted in one aggregate
    and the claims (few beside them) in another, each claim joined to its guarantee, then the two matched by group:
    not every guarantee joined to its claims' figures and summed with them (on the reference load as of 2024-06-30,
    the whole fund's statement ~16 → ~11 ms, grouped by country ~49 → ~44 ms)."""
    covered, groups = _covered(sel, clause)
    names = [f"g_{g}" for g in sel.group_by]
    grouping = f"GROUPING({', '.join(names)})" if names else "1"
    head = ", ".join([*names, f"{grouping} AS all_groups"])  # each aggregate's group columns
    sets = f"GROUP BY GROUPING SETS (({', '.join(names)}), ())" if names else "GROUP BY GROUPING SETS (())"
    issued = f"FROM {covered}"  # the guarantees the report covers (issued), joined to what each aggregate reads
    where_issued = f"WHERE g.issued_on IS NOT NULL AND {clause}"
    same_group = "".join(f" AND c.{n} IS NOT DISTINCT FROM i.{n}" for n in names)
    return f"""
WITH issued AS (
    SELECT {head},
           count(*) FILTER (WHERE issued_on <= :as_of) AS guarantees_issued,
           coalesce(sum(exposure_cad_at_issue) FILTER (WHERE issued_on <= :as_of), 0) AS issued_cad
    FROM (SELECT {", ".join(["g.issued_on", "g.exposure_cad_at_issue", *groups])} {issued} {where_issued}) v
    {sets}
), claimed AS (
    SELECT {head},
           count(*) FILTER (WHERE filed_on <= :as_of) AS claims_filed,
           coalesce(sum(payout_cad) FILTER (WHERE filed_on <= :as_of), 0) AS claims_filed_cad,
           count(*) FILTER (WHERE paid_on <= :as_of) AS claims_paid,
           coalesce(sum(payout_cad) FILTER (WHERE paid_on <= :as_of), 0) AS claims_paid_cad,
           coalesce(sum(payout_cad) FILTER (WHERE paid_on > :period_start AND paid_on <= :as_of), 0)
               AS claims_paid_in_period_cad,
           coalesce(sum(recovered), 0) AS recoveries_cad
    FROM (
        SELECT {", ".join(["c.filed_on", "c.paid_on", "c.payout_cad", "x.recovered", *groups])}
        {issued}
        JOIN reporting.claims c ON c.guarantee_id = g.guarantee_id
        LEFT JOIN (
            SELECT claim_id, sum(fund_share_cad) AS recovered FROM reporting.claim_recoveries
            WHERE value_date <= :as_of GROUP BY claim_id
        ) x ON x.claim_id = c.claim_id
        {where_issued}
    ) v
    {sets}
)
SELECT i.*,
       coalesce(c.claims_filed, 0) AS claims_filed, coalesce(c.claims_filed_cad, 0) AS claims_filed_cad,
       coalesce(c.claims_paid, 0) AS claims_paid, coalesce(c.claims_paid_cad, 0) AS claims_paid_cad,
       coalesce(c.claims_paid_in_period_cad, 0) AS claims_paid_in_period_cad,
       coalesce(c.recoveries_cad, 0) AS recoveries_cad
FROM issued i
LEFT JOIN claimed c ON c.all_groups = i.all_groups{same_group}
"""  # noqa: S608 - fixed fragments only; values are bound parameters


# the currencies of the guarantees by a skip scan of their index: the first one, then the next above each one found
# (one index probe a currency; DISTINCT read every guarantee)
CURRENCIES_SQL = """
WITH RECURSIVE found AS (
    SELECT min(currency) AS currency FROM reporting.guarantees
    UNION ALL
    SELECT (SELECT min(g.currency) FROM reporting.guarantees g WHERE g.currency > f.currency)
    FROM found f WHERE f.currency IS NOT NULL
)
SELECT currency FROM found WHERE currency IS NOT NULL
"""


async def guarantee_currencies(session: AsyncSession) -> list[str]:
    """The currencies the guarantees are in."""
    return [c for (c,) in await session.execute(statement(CURRENCIES_SQL))]


def sample_days(as_of: date, months: int = 12) -> tuple[date, list[date]]:
    """The period's first day (excluded) and the days the average exposure is sampled on: every month end
    strictly within the period, and the as-of date itself."""
    start = as_of - relativedelta(months=months)
    days, day = [], start
    while day < as_of:
        last = date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])
        if start < last < as_of:
            days.append(last)
        day = last + timedelta(days=1)
    return start, [*days, as_of]


async def guarantees_report(session: AsyncSession, sel: Selection, principal: Principal) -> dict[str, Any]:
    clause, params = where(sel, principal, COLUMNS)
    start, days = sample_days(sel.as_of)
    # the month ends up to the latest rate date are kept by the projections; the others (and D) are computed here
    horizon = await session.scalar(statement("SELECT max(rate_date) FROM reporting.fx_rates"))
    kept = [day for day in days[:-1] if USE_MONTH_ENDS and horizon is not None and day <= horizon]
    currencies = await guarantee_currencies(session)
    rates_on: dict[date, Rates] = {
        day: await closing_rates(session, currencies, day) for day in days if day not in kept
    }
    rows = [(day, r) for day, found in rates_on.items() for r in found.found.values()]
    exposure_params = {
        **params,
        "days": [day for day, _ in rows],
        "currencies": [r.currency for _, r in rows],
        "per_units": [r.per_unit for _, r in rows],
        "divisors": [r.divisor for _, r in rows],
    }
    # exposure per sample day (the last one is the as-of date), in total and per group
    total_by_day: dict[date, Decimal] = defaultdict(Decimal)
    group_now: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
    # by lender too when no other filter narrows it: the same pass then gives each lender's whole exposure on D
    # for the ceiling utilisation (else it is measured apart)
    by_lender_too = set(sel.filters) <= {"lender"}
    total_sel = Selection(sel.as_of, ("lender",) if by_lender_too else (), sel.filters)
    lender_now: dict[Any, Decimal] | None = defaultdict(Decimal) if by_lender_too else None

    def into_total(row: Any) -> None:
        total_by_day[row.day] += Decimal(row.exposure)
        if lender_now is not None and row.day == sel.as_of:
            lender_now[row.g_lender] += Decimal(row.exposure)

    # D the only day computed here (as a rule) and the report grouped otherwise than the total: one pass gives both
    if set(exposure_params["days"]) == {sel.as_of} and set(sel.group_by) - set(total_sel.group_by):
        for row in await _exposure(session, sel, clause, exposure_params, also=total_sel.group_by):
            if row.in_also:
                into_total(row)
            else:
                group_now[key_of(sel, row)] += Decimal(row.exposure)
    else:
        for row in await _exposure(session, total_sel, clause, exposure_params):
            into_total(row)
            if sel.group_by == total_sel.group_by and row.day == sel.as_of:  # by lender, as the total: the same rows
                group_now[key_of(sel, row)] += Decimal(row.exposure)
        if sel.group_by and sel.group_by != total_sel.group_by:
            now_params = {**exposure_params, **_only_day(exposure_params, sel.as_of)}
            for row in await _exposure(session, sel, clause, now_params):
                group_now[key_of(sel, row)] += Decimal(row.exposure)
    if kept:
        for row in await session.execute(statement(_month_ends_sql(clause)), {**params, "month_ends": kept}):
            total_by_day[row.day] += Decimal(row.exposure)
    claims_rows = (
        await session.execute(
            statement(_claims_sql(sel, clause)), {**params, "as_of": sel.as_of, "period_start": start}
        )
    ).all()
    capital = Decimal(
        await session.scalar(
            statement("SELECT coalesce(sum(amount_cad), 0) FROM reporting.capital_entries WHERE value_date <= :as_of"),
            {"as_of": sel.as_of},
        )
        or 0
    )
    fund_wide = principal.role not in (Role.ica, Role.lender)
    utilisation = (
        await _utilisation(session, sel, principal, exposure_params, lender_now)
        if principal.role is not Role.ica
        else None
    )
    exposure = total_by_day[sel.as_of]
    average = sum((total_by_day[d] for d in days), Decimal(0)) / len(days)

    def claims_json(row: Any) -> dict[str, Any]:
        paid, recovered = Decimal(row.claims_paid_cad), Decimal(row.recoveries_cad)
        return {
            "guarantees_issued": row.guarantees_issued,
            "guarantees_issued_cad": cad(Decimal(row.issued_cad)),
            "claims_filed": int(row.claims_filed),
            "claims_filed_cad": cad(Decimal(row.claims_filed_cad)),
            "claims_paid": int(row.claims_paid),
            "claims_paid_cad": cad(paid),
            "recoveries_cad": cad(recovered),
            "net_loss_rate": ratio(paid - recovered, Decimal(row.issued_cad)),
            "recovery_rate": ratio(recovered, paid),
        }

    total_claims = next(r for r in claims_rows if r.all_groups or not sel.group_by)
    as_of_rates = rates_on[sel.as_of]
    return {
        "report": "guarantees",
        "as_of": sel.as_of.isoformat(),
        "group_by": list(sel.group_by),
        "filters": sel.echo(),
        "rates": as_of_rates.json(),
        "total": {
            "exposure_cad": cad(exposure),
            "capital_available_cad": cad(capital) if fund_wide else None,
            "leverage": ratio(exposure, capital) if fund_wide else None,
            **claims_json(total_claims),
            "claims_rate": ratio(Decimal(total_claims.claims_paid_in_period_cad), average),
            "average_exposure_cad": cad(average),
            "period": {"from": start.isoformat(), "to": sel.as_of.isoformat(), "months": 12},
            "utilisation_by_lender": utilisation,
        },
        "groups": [
            {
                "key": key_json(sel, key_of(sel, row)),
                "exposure_cad": cad(group_now[key_of(sel, row)]),
                **claims_json(row),
            }
            for row in sorted(
                (r for r in claims_rows if sel.group_by and not r.all_groups),
                key=lambda r: [str(k) for k in key_of(sel, r)],
            )
        ],
    }


async def _utilisation(
    session: AsyncSession,
    sel: Selection,
    principal: Principal,
    exposure_params: dict[str, Any],
    measured: dict[Any, Decimal] | None,
) -> list[dict[str, Any]]:
    """Each lender with a facility announced by D: its ceiling then, its whole exposure on D, and their ratio."""
    by_lender = Selection(sel.as_of, ("lender",), {k: v for k, v in sel.filters.items() if k == "lender"})
    clause, params = where(by_lender, principal, COLUMNS)
    exposure: dict[Any, Decimal] = defaultdict(Decimal)
    if measured is not None:
        exposure.update(measured)
    else:
        day_params = {**exposure_params, **params, **_only_day(exposure_params, sel.as_of)}
        for row in await _exposure(session, by_lender, clause, day_params):
            exposure[row.g_lender] += Decimal(row.exposure)
    terms_clause, terms_params = where(
        by_lender, principal, Columns(dimensions={"lender": "t.lender_id"}, ica="NULL", lender="t.lender_id")
    )
    # fixed fragments only; values are bound parameters
    terms_sql = f"""
SELECT DISTINCT ON (t.lender_id) t.lender_id, t.facility_id, t.version, t.ceiling_cad, t.valid_from, t.valid_to
FROM reporting.facility_terms t
WHERE t.set_on <= :as_of AND {terms_clause}
ORDER BY t.lender_id, t.set_on DESC, t.version DESC
"""  # noqa: S608
    rows = await session.execute(
        statement(terms_sql),
        {**terms_params, "as_of": sel.as_of},
    )
    return [
        {
            "lender": str(row.lender_id),
            "facility_id": str(row.facility_id),
            "facility_version": row.version,
            "in_force": row.valid_from <= sel.as_of <= row.valid_to,
            "ceiling_cad": cad(Decimal(row.ceiling_cad)),
            "exposure_cad": cad(exposure[row.lender_id]),
            "utilisation": ratio(exposure[row.lender_id], Decimal(row.ceiling_cad)),
        }
        for row in sorted(rows, key=lambda r: str(r.lender_id))
    ]


def _only_day(params: dict[str, Any], day: date) -> dict[str, Any]:
    keep = [i for i, d in enumerate(params["days"]) if d == day]
    return {name: [params[name][i] for i in keep] for name in ("days", "currencies", "per_units", "divisors")}


async def live_guarantees(session: AsyncSession, on: date, principal: Principal) -> tuple[int, Decimal, list[str]]:
    """The guarantees live on `on` (issued by then, not expired, no claim paid by then), their exposure in CAD (a
    currency with no rate is left out and named), for the reconciliation."""
    currencies = await guarantee_currencies(session)
    rates = await closing_rates(session, currencies, on)
    sel = Selection(on, (), {})
    clause, params = where(sel, principal, COLUMNS)
    found = list(rates.found.values())
    params |= {
        "days": [on for _ in found],
        "currencies": [r.currency for r in found],
        "per_units": [r.per_unit for r in found],
        "divisors": [r.divisor for r in found],
    }
    exposure = sum((Decimal(row.exposure) for row in await _exposure(session, sel, clause, params)), Decimal(0))
    count = await session.scalar(
        statement(
            "SELECT count(*) FROM reporting.guarantees g WHERE g.issued_on <= :on"
            " AND (g.expired_on IS NULL OR g.expired_on > :on) AND NOT EXISTS ("
            " SELECT 1 FROM reporting.claims c WHERE c.guarantee_id = g.guarantee_id AND c.paid_on <= :on)"
        ),
        {"on": on},
    )
    return int(count or 0), exposure, rates.missing
