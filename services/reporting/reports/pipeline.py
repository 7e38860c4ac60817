"""The origination pipeline as of a date: applications by status, approval rate, median days from submission to
decision.

An application's status as of D is the one its last move on or before D left it in (moves are dated by the
event's `occurred_at`, in UTC): the move with on <= D < valid_to, `valid_to` being the earliest date of its later
moves (kept by the projection). Approval rate = approved ÷ (approved + rejected), by status as of D. Days to
decision = the first approval or rejection − the first submission; the median over the applications decided by D.
Dimensions: the business's country, region, sector and legal form, the proposed lender, the ICA, the currency
asked for.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.reports.common import (
    Columns,
    Selection,
    group_columns,
    key_json,
    key_of,
    ratio,
    statement,
    where,
)
from shared.auth import Principal

COLUMNS = Columns(
    dimensions={
        "country": "b.country",
        "region": "b.region",
        "lender": "a.lender_id",
        "ica": "a.ica_id",
        "sector": "b.sector",
        "legal_form": "b.legal_form",
        "currency": "a.currency",
    },
    ica="a.ica_id",
    lender="a.lender_id",
)
DECISIONS = ("approved", "rejected")


def _sql(sel: Selection, clause: str) -> str:
    groups = group_columns(sel, COLUMNS)
    names = [f"g_{g}" for g in sel.group_by]
    sets = [f"({', '.join([*names, 'status'])})", f"({', '.join(names)})"]
    if names:
        sets += ["(status)", "()"]
    grouping = f"GROUPING({', '.join(names)})" if names else "0"
    # the application's dimensions only when a filter, the caller's scope or a group needs them (every move has its
    # application: the projection writes both in one transaction)
    joins = (
        """
    JOIN reporting.applications a ON a.application_id = m.application_id
    LEFT JOIN reporting.businesses b ON b.business_id = a.business_id"""
        if names or clause != "true"
        else ""
    )
    return f"""
WITH state AS (
    -- each application's move in force at D (on <= D < valid_to), and its days from the first submission to the
    -- first decision when both came by D
    SELECT {", ".join(["m.to_status AS status", *groups])},
           CASE WHEN m.decided_on <= :as_of AND m.submitted_on <= :as_of THEN m.decided_on - m.submitted_on END
               AS days
    FROM reporting.application_moves m{joins}
    WHERE m."on" <= :as_of AND m.valid_to > :as_of AND {clause}
)
SELECT {", ".join([*names, "status"])}, {grouping} AS all_groups, GROUPING(status) AS all_statuses,
       count(*) AS applications,
       count(*) FILTER (WHERE status = 'approved') AS approved,
       count(*) FILTER (WHERE status = 'rejected') AS rejected,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY days) FILTER (WHERE days IS NOT NULL) AS median_days
FROM state
GROUP BY GROUPING SETS ({", ".join(sets)})
"""  # noqa: S608 - fixed fragments only; values are bound parameters


@dataclass
class Funnel:
    applications: int = 0
    approved: int = 0
    rejected: int = 0
    median_days: Decimal | None = None
    by_status: dict[str, int] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {
            "applications": self.applications,
            "by_status": dict(sorted(self.by_status.items())),
            "approved": self.approved,
            "rejected": self.rejected,
            "approval_rate": ratio(Decimal(self.approved), Decimal(self.approved + self.rejected)),
            "median_days_to_decision": format(self.median_days.normalize(), "f")
            if self.median_days is not None
            else None,
        }


@dataclass
class PipelineReport:
    sel: Selection
    total: Funnel
    groups: dict[tuple[Any, ...], Funnel]

    def _sorted(self) -> list[tuple[tuple[Any, ...], Funnel]]:
        return sorted(self.groups.items(), key=lambda kv: [str(k) for k in kv[0]])

    def statuses(self) -> list[str]:
        return sorted(self.total.by_status)

    def json(self) -> dict[str, Any]:
        return {
            "report": "pipeline",
            "as_of": self.sel.as_of.isoformat(),
            "group_by": list(self.sel.group_by),
            "filters": self.sel.echo(),
            "total": self.total.json(),
            "groups": [{"key": key_json(self.sel, key), **funnel.json()} for key, funnel in self._sorted()],
        }

    def csv_header(self) -> list[str]:
        return [
            *self.sel.group_by,
            "applications",
            *(f"status_{s}" for s in self.statuses()),
            "approval_rate",
            "median_days_to_decision",
        ]

    def csv_rows(self) -> list[list[Any]]:
        rows = []
        for key, funnel in self._sorted() if self.sel.group_by else [((), self.total)]:
            body = funnel.json()
            rows.append(
                [
                    *(None if k is None else str(k) for k in key),
                    funnel.applications,
                    *(funnel.by_status.get(s, 0) for s in self.statuses()),
                    body["approval_rate"],
                    body["median_days_to_decision"],
                ]
            )
        return rows


async def pipeline_report(session: AsyncSession, sel: Selection, principal: Principal) -> PipelineReport:
    clause, params = where(sel, principal, COLUMNS)
    rows = (await session.execute(statement(_sql(sel, clause)), {**params, "as_of": sel.as_of})).all()
    total = Funnel()
    groups: dict[tuple[Any, ...], Funnel] = defaultdict(Funnel)
    for row in rows:
        funnel = total if (row.all_groups or not sel.group_by) else groups[key_of(sel, row)]
        if row.all_statuses:
            funnel.applications, funnel.approved, funnel.rejected = row.applications, row.approved, row.rejected
            # the median of whole days is whole or a half: exact in binary, shown as a decimal
            funnel.median_days = Decimal(str(row.median_days)) if row.median_days is not None else None
        else:
            funnel.by_status[row.status] = row.applications
    return PipelineReport(sel, total, dict(groups))
