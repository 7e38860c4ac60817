"""The impact report's totals by date, for the whole fund (`impact_changes`, `impact_days`).

What a financed business adds to the impact report as of D is a step function of D: nothing before its first
disbursement, then its figures (the facts in force at D against its baseline) from that date on, changing only on
the dates of its later reports (and of its baseline). Each business's steps are kept as changes by date
(`impact_changes`: its figures on that date minus its figures the day before), and each day's changes summed
(`impact_days`): the totals as of D are the sums of the days on or before D, a few thousand rows instead of every
financed business and its reports.

Derived from both feeds (the loans' first disbursements; the businesses' reports), refreshed by both for the
businesses an event touches, rebuilt from what the other feed left when either is reset. The report reads them
only when no filter or scope narrows the loans; the detailed path gives the same figures (tests compare them).

The two feeds are applied by separate consumers: each takes the same transaction-level advisory lock before
refreshing, so a refresh always reads what the other feed committed before it (no lost update between them).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.models import IMPACT_FIGURES

# figure: its value for one business at the day `p.day` (n: the facts in force, base: the baseline's), as the
# detailed report counts it (`reports.impact`)
TWO_X = """coalesce(
        coalesce(n.women_ownership_pct >= 51, false)
        OR (n.senior_managers_total > 0 AND n.senior_managers_women * 100 >= 30 * n.senior_managers_total)
        OR (n.board_seats_total > 0 AND n.board_seats_women * 100 >= 30 * n.board_seats_total), false)"""
FIGURES: dict[str, str] = {
    "businesses_financed": "1",
    "businesses_with_facts": "CASE WHEN n.reported_on IS NULL THEN 0 ELSE 1 END",
    "members_total": "coalesce(n.members_total, 0)",
    "members_women": "coalesce(n.members_women, 0)",
    "jobs_created": "coalesce(greatest(n.employees_total - base.employees_total, 0), 0)",
    "jobs_maintained": "coalesce(least(n.employees_total, base.employees_total), 0)",
    "employees_total": "coalesce(n.employees_total, 0)",
    "employees_women": "coalesce(n.employees_women, 0)",
    "board_seats_total": "coalesce(n.board_seats_total, 0)",
    "board_seats_women": "coalesce(n.board_seats_women, 0)",
    "women_led_2x": f"CASE WHEN {TWO_X} THEN 1 ELSE 0 END",
    "democratic_governance": "CASE WHEN n.general_assembly_last_12_months AND n.board_elected_by_members"
    " AND n.one_member_one_vote THEN 1 ELSE 0 END",
    "general_assembly_held": "CASE WHEN n.general_assembly_last_12_months THEN 1 ELSE 0 END",
    "board_elected_by_members": "CASE WHEN n.board_elected_by_members THEN 1 ELSE 0 END",
    "one_member_one_vote": "CASE WHEN n.one_member_one_vote THEN 1 ELSE 0 END",
    "environmental_practices": "CASE WHEN cardinality(n.environmental_practices) > 0 THEN 1 ELSE 0 END",
}
assert tuple(FIGURES) == IMPACT_FIGURES
NAMES = ", ".join(FIGURES)
REFRESH_LOCK = 0x696D70616374  # the advisory lock both feeds' refreshes of these tables take


async def _lock(session: AsyncSession) -> None:
    # small statements whose row estimates are guesses: without this the planner may JIT-compile them
    await session.execute(text("SET LOCAL jit = off"))
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFRESH_LOCK})


def _changes_sql(only: bool) -> str:
    """Each business's changes: its figures on each day they may change (its first disbursement, the date of its
    baseline, each later report), less those of the day before. `only`: the businesses `:ids`, else every one."""
    narrow = "AND l.business_id = ANY(:ids)" if only else ""
    return f"""
INSERT INTO reporting.impact_changes (business_id, day, {NAMES})
WITH f AS (
    SELECT l.business_id, min(l.first_disbursed_on) AS first_on, min(b.first_reported_on) AS first_reported_on
    FROM reporting.loans l LEFT JOIN reporting.businesses b ON b.business_id = l.business_id
    WHERE l.first_disbursed_on IS NOT NULL {narrow}
    GROUP BY l.business_id
), points AS (
    SELECT business_id, first_on AS day, greatest(first_on, first_reported_on) AS base_on FROM f
    UNION
    SELECT f.business_id, x.reported_on, greatest(f.first_on, f.first_reported_on)
    FROM f JOIN reporting.business_facts x ON x.business_id = f.business_id AND x.reported_on > f.first_on
    UNION
    SELECT business_id, first_reported_on, first_reported_on FROM f WHERE first_reported_on > first_on
), figures AS (
    SELECT p.business_id, p.day, {", ".join(f"{sql} AS {name}" for name, sql in FIGURES.items())}
    FROM points p
    LEFT JOIN reporting.business_facts n ON n.business_id = p.business_id
         AND n.reported_on <= p.day AND n.valid_to > p.day
    LEFT JOIN reporting.business_facts base ON base.business_id = p.business_id
         AND base.reported_on <= p.base_on AND base.valid_to > p.base_on AND p.base_on <= p.day
)
SELECT business_id, day, {
        ", ".join(f"{name} - coalesce(lag({name}) OVER (PARTITION BY business_id ORDER BY day), 0)" for name in FIGURES)
    }
FROM figures
RETURNING day
"""  # noqa: S608 - fixed fragments only; values are bound parameters


DAYS_CLEAR_SQL = "DELETE FROM reporting.impact_days WHERE day = ANY(:days)"
DAYS_SQL = f"""
INSERT INTO reporting.impact_days (day, {NAMES})
SELECT day, {", ".join(f"sum({name})" for name in FIGURES)} FROM reporting.impact_changes
WHERE day = ANY(:days) GROUP BY day
"""  # noqa: S608 - fixed fragments only


async def refresh(session: AsyncSession, business_ids: Iterable[uuid.UUID]) -> None:
    """Recompute the changes of these businesses, and the day totals of the days they had or have changes on."""
    ids = list(set(business_ids))
    await _lock(session)
    gone = await session.execute(
        text("DELETE FROM reporting.impact_changes WHERE business_id = ANY(:ids) RETURNING day"), {"ids": ids}
    )
    days = {day for (day,) in gone}
    days |= {day for (day,) in await session.execute(text(_changes_sql(only=True)), {"ids": ids})}
    if days:
        await session.execute(text(DAYS_CLEAR_SQL), {"days": sorted(days)})
        await session.execute(text(DAYS_SQL), {"days": sorted(days)})


# The 2X share's gross loan portfolio, per currency: what each loan adds as changes by date (`impact_glp_changes`):
# its active standing steps (count, outstanding) from their date until the next step, the outstanding again as 2X
# over the part of each step when the facts in force of its business are 2X; and each day's changes summed per
# currency (`impact_glp_days`, kept by adding the new changes and taking the old ones off). A loan's changes are
# recomputed after each event with its standing, and all its business's loans' after each report.
def _glp_changes_sql(only: bool) -> str:
    narrow = "AND st.loan_id = ANY(:ids)" if only else ""
    return f"""
INSERT INTO reporting.impact_glp_changes (loan_id, day, currency, active_loans, glp, two_x_glp)
WITH s AS (
    SELECT st.loan_id, l.currency, l.business_id, st.on, st.valid_to, st.outstanding_principal AS o
    FROM reporting.loan_standing st JOIN reporting.loans l ON l.loan_id = st.loan_id
    WHERE st.status = 'active' {narrow}
), x AS (  -- the 2X periods of the businesses (n: the report in force from reported_on until valid_to)
    SELECT n.business_id, n.reported_on, n.valid_to FROM reporting.business_facts n
    WHERE n.business_id IN (SELECT business_id FROM s) AND {TWO_X}
), pieces AS (
    SELECT loan_id, currency, s.on AS day, 1 AS active_loans, o AS glp, 0 AS two_x_glp FROM s
    UNION ALL
    SELECT loan_id, currency, valid_to, -1, -o, 0 FROM s WHERE valid_to < DATE '9999-12-31'
    UNION ALL
    SELECT s.loan_id, s.currency, greatest(s.on, x.reported_on), 0, 0, s.o
    FROM s JOIN x ON x.business_id = s.business_id AND x.reported_on < s.valid_to AND x.valid_to > s.on
    UNION ALL
    SELECT s.loan_id, s.currency, least(s.valid_to, x.valid_to), 0, 0, -s.o
    FROM s JOIN x ON x.business_id = s.business_id AND x.reported_on < s.valid_to AND x.valid_to > s.on
    WHERE least(s.valid_to, x.valid_to) < DATE '9999-12-31'
)
SELECT loan_id, day, currency, sum(active_loans), sum(glp), sum(two_x_glp) FROM pieces GROUP BY loan_id, day, currency
RETURNING day, currency, active_loans, glp, two_x_glp
"""  # noqa: S608 - fixed fragments only; values are bound parameters


def _glp_days_sql(changes: str, sign: str) -> str:
    """Add (`sign` +) or take off (-) the changes a statement returns to the day totals; answers the days."""
    return f"""
WITH c AS ({changes}
), d AS (
    SELECT day, currency, {sign}sum(active_loans) AS active_loans, {sign}sum(glp) AS glp,
           {sign}sum(two_x_glp) AS two_x_glp
    FROM c GROUP BY day, currency
)
INSERT INTO reporting.impact_glp_days AS t (day, currency, active_loans, glp, two_x_glp)
SELECT day, currency, active_loans, glp, two_x_glp FROM d
ON CONFLICT (day, currency) DO UPDATE SET active_loans = t.active_loans + excluded.active_loans,
    glp = t.glp + excluded.glp, two_x_glp = t.two_x_glp + excluded.two_x_glp
RETURNING day
"""  # noqa: S608 - fixed fragments only


GLP_REMOVE_SQL = _glp_days_sql(
    "DELETE FROM reporting.impact_glp_changes WHERE loan_id = ANY(:ids)"
    " RETURNING day, currency, active_loans, glp, two_x_glp",
    "-",
)
GLP_ADD_SQL = _glp_days_sql(_glp_changes_sql(only=True), "")
# a day whose changes cancel out is no day (as if recomputed)
GLP_EMPTY_DAYS_SQL = """
DELETE FROM reporting.impact_glp_days
WHERE day = ANY(:days) AND active_loans = 0 AND glp = 0 AND two_x_glp = 0
"""


async def refresh_glp(
    session: AsyncSession, loan_ids: Iterable[uuid.UUID] = (), business_id: uuid.UUID | None = None
) -> None:
    """Recompute the changes of these loans (or of every loan of the business), and the day totals they touch."""
    await _lock(session)  # before looking up the business's loans: one the other feed commits meanwhile is seen
    ids = list(set(loan_ids))
    if business_id is not None:
        ids += [
            loan_id
            for (loan_id,) in await session.execute(
                text("SELECT loan_id FROM reporting.loans WHERE business_id = :b"), {"b": business_id}
            )
        ]
    if not ids:
        return
    days = {day for (day,) in await session.execute(text(GLP_REMOVE_SQL), {"ids": ids})}
    days |= {day for (day,) in await session.execute(text(GLP_ADD_SQL), {"ids": ids})}
    if days:
        await session.execute(text(GLP_EMPTY_DAYS_SQL), {"days": sorted(days)})


REBUILD_SQL = (
    "DELETE FROM reporting.impact_changes",
    "DELETE FROM reporting.impact_days",
    _changes_sql(only=False),
    DAYS_SQL.replace("WHERE day = ANY(:days) ", ""),
    "DELETE FROM reporting.impact_glp_changes",
    "DELETE FROM reporting.impact_glp_days",
    _glp_changes_sql(only=False).replace("RETURNING day, currency, active_loans, glp, two_x_glp", ""),
    """INSERT INTO reporting.impact_glp_days (day, currency, active_loans, glp, two_x_glp)
    SELECT day, currency, sum(active_loans), sum(glp), sum(two_x_glp) FROM reporting.impact_glp_changes
    GROUP BY day, currency HAVING sum(active_loans) <> 0 OR sum(glp) <> 0 OR sum(two_x_glp) <> 0""",
)


async def rebuild(session: AsyncSession) -> None:
    """Every business's changes and every day's totals, from the loans and reports the read model holds."""
    await _lock(session)
    for sql in REBUILD_SQL:
        await session.execute(text(sql))
