"""Each guarantee's exposure at each month end (`guarantee_month_ends`), kept by the projections of both feeds it
depends on, so the guarantees report reads the claims rate's month-end samples instead of computing them.

The exposure of a guarantee at a month end M is the report's own (`reports.guarantees`): live at M (issued on or
before, not expired, no claim paid by M), min(coverage × the loan's outstanding at M × M's closing rate, cap),
rounded half-even to the cent. Rows are kept for every month end up to the **horizon**, the latest rate date
recorded (any currency); zero exposures and currencies with no rate by M are left out (the report leaves them out
of its sums too). The report computes any sample day past the horizon itself.

What changes a row, and who refreshes it (in the transaction of the change):
- the loan's standing (any `loan.*` event): the loan's guarantees, every month end;
- the guarantee (`guarantee.*` changing its loan, currency, coverage, cap, issue or expiry) or a claim paid on it
  (`claim.paid`): that guarantee, every month end;
- a rate (`fx.rate_recorded`, currency C, date R): the guarantees in C (in XOF and XAF for EUR) from R on, and
  when R moves the horizon past a month end, that month end for every guarantee.

Their sum per month end (`guarantee_month_end_totals`, with the number of rows) follows every refresh: the rows it
clears are taken out of the totals and the rows it writes put in, in the same transaction.

The same refresh keeps each guarantee's copy of its loan's latest standing step (`guarantee_standing`) for the
guarantees it names, unless told the standing has not moved (a rate): a loan's standing changes only with a
`loan.*` event, which refreshes its guarantees, and a guarantee arriving or moving to another loan refreshes itself.
The report's exposure on a day on or after every such step reads them (`reports.guarantees`). Only this refresh
writes them, under its lock: the portfolio's consumer never locks a row the guarantees' consumer writes before it
takes the lock (the `guarantees` rows), so the two cannot deadlock.

The two feeds are applied by separate consumers: each takes the same transaction-level advisory lock before
refreshing, so a refresh always reads what the other feed committed before it (no lost update between them).
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.money import PEGGED_TO_EUR

REFRESH_LOCK = 0x7265706F72747331  # the advisory lock both feeds' refreshes take
EVER = date(1, 1, 1)
# half-even rounding to the cent of a positive amount (PostgreSQL's round() rounds halves away from zero)
HALF_EVEN = (
    "CASE WHEN {x} * 100 - trunc({x} * 100) = 0.5 THEN (trunc({x} * 100) + mod(trunc({x} * 100), 2)) / 100"
    " ELSE round({x}, 2) END"
)

# which guarantees a refresh recomputes: every one, or those named, on the loans named, or in the currencies named
TARGETS = {
    "everyone": "true",
    "ids": "g.guarantee_id = ANY(CAST(:ids AS uuid[]))",
    "loans": "g.loan_id = ANY(CAST(:loans AS uuid[]))",
    "currencies": "g.currency = ANY(CAST(:currencies AS text[]))",
}
CLEAR_SQL = """
DELETE FROM reporting.guarantee_month_ends e USING reporting.guarantees g
WHERE e.guarantee_id = g.guarantee_id AND e.month_end >= :from_day AND {target}
"""
REFRESH_SQL = f"""
WITH horizon AS (
    SELECT max(rate_date) AS last_day FROM reporting.fx_rates
), pegs AS (
    SELECT * FROM unnest(CAST(:pegged AS text[]), CAST(:pegs AS numeric[])) AS p(currency, divisor)
), target AS (
    SELECT g.guarantee_id, g.loan_id, g.currency, g.coverage_pct, g.cap_cad, g.issued_on, g.expired_on,
           (SELECT min(c.paid_on) FROM reporting.claims c WHERE c.guarantee_id = g.guarantee_id) AS paid_on,
           CASE WHEN p.currency IS NOT NULL THEN 'EUR' ELSE g.currency END AS base,
           coalesce(p.divisor, 1) AS divisor
    FROM reporting.guarantees g
    LEFT JOIN pegs p ON p.currency = g.currency
    WHERE g.issued_on IS NOT NULL AND {{target}}
), sampled AS (
    SELECT t.*, m.month_end
    FROM target t, horizon h,
         LATERAL (
             SELECT CAST(f + interval '1 month' AS date) - 1 AS month_end
             FROM generate_series(date_trunc('month', greatest(t.issued_on, CAST(:from_day AS date))),
                                  h.last_day, interval '1 month') AS f
         ) m
    WHERE m.month_end >= greatest(t.issued_on, CAST(:from_day AS date)) AND m.month_end <= h.last_day
      AND (t.expired_on IS NULL OR t.expired_on > m.month_end) AND (t.paid_on IS NULL OR t.paid_on > m.month_end)
), priced AS (
    SELECT s.guarantee_id, s.month_end, s.cap_cad,
           s.coverage_pct * st.outstanding_principal * r.per_unit / s.divisor / 100 AS x
    FROM sampled s
    JOIN reporting.loan_standing st ON st.loan_id = s.loan_id AND st.on <= s.month_end AND st.valid_to > s.month_end
    JOIN LATERAL (
        SELECT CAST(1 AS numeric) AS per_unit WHERE s.base = 'CAD'
        UNION ALL
        (SELECT x.cad_per_unit FROM reporting.fx_rates x
         WHERE x.currency = s.base AND x.rate_date <= s.month_end AND s.base <> 'CAD'
         ORDER BY x.rate_date DESC LIMIT 1)
    ) r ON true
), exposed AS (
    SELECT guarantee_id, month_end, least({HALF_EVEN.format(x="x")}, cap_cad) AS exposure_cad FROM priced
)
INSERT INTO reporting.guarantee_month_ends (guarantee_id, month_end, exposure_cad)
SELECT guarantee_id, month_end, exposure_cad FROM exposed WHERE exposure_cad <> 0
"""  # noqa: S608 - fixed text; values are bound parameters


# each named guarantee's copy of its loan's latest standing step: written when it moved, dropped when the loan has
# no standing (yet, or any more)
LATEST_SQL = """
WITH latest AS (
    SELECT g.guarantee_id, s."on", s.valid_to, s.outstanding_principal
    FROM reporting.guarantees g
    LEFT JOIN LATERAL (
        SELECT x."on", x.valid_to, x.outstanding_principal FROM reporting.loan_standing x
        WHERE x.loan_id = g.loan_id ORDER BY x."on" DESC LIMIT 1
    ) s ON true
    WHERE {target}
), dropped AS (
    DELETE FROM reporting.guarantee_standing c USING latest l
    WHERE c.guarantee_id = l.guarantee_id AND l."on" IS NULL
)
INSERT INTO reporting.guarantee_standing AS c (guarantee_id, standing_on, standing_valid_to, outstanding_principal)
SELECT guarantee_id, "on", valid_to, outstanding_principal FROM latest WHERE "on" IS NOT NULL
ON CONFLICT (guarantee_id) DO UPDATE
SET standing_on = excluded.standing_on, standing_valid_to = excluded.standing_valid_to,
    outstanding_principal = excluded.outstanding_principal
WHERE (c.standing_on, c.standing_valid_to, c.outstanding_principal)
      IS DISTINCT FROM (excluded.standing_on, excluded.standing_valid_to, excluded.outstanding_principal)
"""

# the month-end totals (`guarantee_month_end_totals`) follow the rows a refresh replaces: the rows about to be
# cleared are taken out of them (sign -1), the rows refilled put in (sign 1), and a month end left with no row dropped
TOTALS_SQL = """
INSERT INTO reporting.guarantee_month_end_totals AS t (month_end, exposure_cad, guarantees)
SELECT e.month_end, CAST(:sign AS integer) * sum(e.exposure_cad), CAST(:sign AS integer) * count(*)
FROM reporting.guarantee_month_ends e JOIN reporting.guarantees g ON g.guarantee_id = e.guarantee_id
WHERE e.month_end >= :from_day AND {target}
GROUP BY e.month_end
ON CONFLICT (month_end) DO UPDATE
SET exposure_cad = t.exposure_cad + excluded.exposure_cad, guarantees = t.guarantees + excluded.guarantees
"""
EMPTY_TOTALS_SQL = "DELETE FROM reporting.guarantee_month_end_totals WHERE guarantees = 0"


def statements(
    *,
    everyone: bool = False,
    ids: list[uuid.UUID] | None = None,
    loans: list[uuid.UUID] | None = None,
    currencies: list[str] | None = None,
    from_day: date = EVER,
) -> tuple[str, str, dict[str, Any]]:
    """The clearing and the refilling statements for the guarantees named, from `from_day` on, and their values."""
    target = _target(everyone=everyone, ids=ids, loans=loans, currencies=currencies)
    params = {
        "ids": ids or [],
        "loans": loans or [],
        "currencies": currencies or [],
        "from_day": from_day,
        "pegged": list(PEGGED_TO_EUR),
        "pegs": list(PEGGED_TO_EUR.values()),
    }
    return CLEAR_SQL.format(target=target), REFRESH_SQL.format(target=target), params


def _target(**which: Any) -> str:
    """The guarantees a refresh recomputes, as a condition on `g` (see TARGETS)."""
    return " OR ".join(TARGETS[name] for name in TARGETS if which.get(name)) or "false"


async def refresh(session: AsyncSession, standing: bool = True, **which: Any) -> None:
    """Recompute the month-end exposures of the guarantees `which` names (see `statements`), and, unless `standing`
    is false (the loans' standing has not moved: a rate), their copies of their loan's latest standing step."""
    clear, refill, params = statements(**which)
    totals = TOTALS_SQL.format(target=_target(**which))
    # the month-series' row estimate is a guess: without this the planner would JIT-compile each small refresh
    await session.execute(text("SET LOCAL jit = off"))
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFRESH_LOCK})
    if standing:
        await session.execute(text(LATEST_SQL.format(target=_target(**which))), params)
    await session.execute(text(totals), {**params, "sign": -1})
    await session.execute(text(clear), params)
    await session.execute(text(refill), params)
    await session.execute(text(totals), {**params, "sign": 1})
    await session.execute(text(EMPTY_TOTALS_SQL))


def _month_end_between(first: date, last: date) -> bool:
    """Whether a month end falls within first..last (both included)."""
    following = (first.replace(day=1) + timedelta(days=32)).replace(day=1)
    return following - timedelta(days=1) <= last


async def refresh_for_rate(session: AsyncSession, currency: str, rate_date: date, horizon_before: date | None) -> None:
    """A rate recorded for `currency` on `rate_date`, the horizon having been `horizon_before`."""
    dependents = [currency, *(PEGGED_TO_EUR if currency == "EUR" else ())]
    await refresh(session, standing=False, currencies=dependents, from_day=rate_date)
    start = horizon_before + timedelta(days=1) if horizon_before else EVER
    if rate_date >= start and (horizon_before is None or _month_end_between(start, rate_date)):
        await refresh(session, standing=False, everyone=True, from_day=start)
