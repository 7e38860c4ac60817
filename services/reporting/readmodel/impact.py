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
    gone = await session.execute(
        text("DELETE FROM reporting.impact_changes WHERE business_id = ANY(:ids) RETURNING day"), {"ids": ids}
    )
    days = {day for (day,) in gone}
    days |= {day for (day,) in await session.execute(text(_changes_sql(only=True)), {"ids": ids})}
    if days:
        await session.execute(text(DAYS_CLEAR_SQL), {"days": sorted(days)})
        await session.execute(text(DAYS_SQL), {"days": sorted(days)})


REBUILD_SQL = (
    "DELETE FROM reporting.impact_changes",
    "DELETE FROM reporting.impact_days",
    _changes_sql(only=False),
    DAYS_SQL.replace("WHERE day = ANY(:days) ", ""),
)


async def rebuild(session: AsyncSession) -> None:
    """Every business's changes and every day's totals, from the loans and reports the read model holds."""
    for sql in REBUILD_SQL:
        await session.execute(text(sql))
