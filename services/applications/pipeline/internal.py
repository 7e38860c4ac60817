"""What the applications service tells its peers about the pipeline (internal, service token): its own count of
applications by status as of a date, from its transitions (the reporting service reconciles its read model with it)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy import text

from shared.auth import service_caller
from shared.db import SessionDep, TransactionalRoute

internal = APIRouter(prefix="/internal/applications", tags=["internal"], route_class=TransactionalRoute)


@internal.get("/totals", summary="Applications by status as of a date (for reconciliation)")
async def totals(session: SessionDep, _caller: Annotated[str, Depends(service_caller)], as_of: date) -> dict[str, Any]:
    """Every application that had left `draft` by the end of `as_of` (UTC), by the status its last transition by
    then left it in. A draft never submitted nor withdrawn is no one's business but its ICA's: not counted."""
    end = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=UTC)
    rows = await session.execute(
        text(
            "SELECT status, count(*) AS applications FROM ("
            " SELECT DISTINCT ON (application_id) application_id, to_status AS status"
            " FROM applications.application_transitions"
            " WHERE at < :end AND application_id IN ("
            "  SELECT application_id FROM applications.application_transitions"
            "  WHERE from_status IS NOT NULL AND at < :end)"
            " ORDER BY application_id, id DESC) last GROUP BY status"
        ),
        {"end": end},
    )
    by_status = {row.status: int(row.applications) for row in rows}
    return {
        "as_of": as_of.isoformat(),
        "applications": sum(by_status.values()),
        "by_status": dict(sorted(by_status.items())),
    }
