"""The applications service's events: businesses (snapshot and dated impact facts, history kept) and every status
move of every application (for the pipeline)."""

from __future__ import annotations

import uuid
from datetime import UTC

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.models import (
    APPLICATIONS_TABLES,
    application_moves,
    applications,
    business_facts,
    businesses,
)
from services.reporting.readmodel import impact
from services.reporting.readmodel.portfolio import fund_region, reset_tables
from shared.contracts.applications import (
    ApplicationApprovedV1,
    ApplicationMovedV1,
    ApplicationSubmittedV1,
    BusinessSnapshotV1,
)
from shared.events.consumer import Subscription
from shared.events.contracts import EventEnvelope
from shared.events.topology import SUBSCRIPTIONS

SPEC = next(s for s in SUBSCRIPTIONS if s.consumer == "reporting" and s.name == "applications-read-model")


async def keep_business(session: AsyncSession, business: BusinessSnapshotV1) -> None:
    snapshot = {
        "ica_id": business.ica_id,
        "name": business.name,
        "legal_form": business.legal_form,
        "country": business.country,
        "region": fund_region(business.country),
        "sector": business.sector,
        "year_founded": business.year_founded,
    }
    await session.execute(
        insert(businesses)
        .values(business_id=business.business_id, **snapshot)
        .on_conflict_do_update(index_elements=[businesses.c.business_id], set_=snapshot)
    )
    facts = business.facts.model_dump()
    reported = {k: v for k, v in facts.items() if k != "reported_on"}
    # a report of the same date said again (or corrected) replaces it; other dates are history
    await session.execute(
        insert(business_facts)
        .values(business_id=business.business_id, **facts)
        .on_conflict_do_update(
            index_elements=[business_facts.c.business_id, business_facts.c.reported_on], set_=reported
        )
    )
    await end_reports(session, [business.business_id])
    await impact.refresh(session, [business.business_id])
    await impact.refresh_glp(session, business_id=business.business_id)


# Each report of these businesses is in force until the next one (`valid_to`), the latest until further notice, and
# each business knows its earliest report (`first_reported_on`): the impact report then reads the facts in force at D
# and the baseline without sorting every report. Run after each report, and by the reference load's bulk path.
END_REPORTS_SQL = """
WITH ended AS (
    UPDATE reporting.business_facts f SET valid_to = coalesce(n.next, DATE '9999-12-31') FROM (
        SELECT business_id, reported_on,
               lead(reported_on) OVER (PARTITION BY business_id ORDER BY reported_on) AS next
        FROM reporting.business_facts WHERE business_id = ANY(:ids)) n
    WHERE n.business_id = f.business_id AND n.reported_on = f.reported_on
      AND f.valid_to IS DISTINCT FROM coalesce(n.next, DATE '9999-12-31')
    RETURNING f.business_id
)
UPDATE reporting.businesses b SET first_reported_on = e.first_on FROM (
    SELECT business_id, min(reported_on) AS first_on FROM reporting.business_facts
    WHERE business_id = ANY(:ids) GROUP BY business_id) e
WHERE b.business_id = e.business_id AND b.first_reported_on IS DISTINCT FROM e.first_on
"""


async def end_reports(session: AsyncSession, business_ids: list[uuid.UUID]) -> None:
    await session.execute(text(END_REPORTS_SQL), {"ids": business_ids})


# Each move is the application's status from its date until the earliest date of its later moves (`valid_to`, the
# far future for the latest), and carries the application's first submission and first decision: the pipeline as
# of D then reads one move per application (on <= D < valid_to) from an index, instead of sorting every move. One
# statement, run after each move and by the reference load's bulk path over the applications it copied (`:ids`).
PERIODS_SQL = """
UPDATE reporting.application_moves m
SET valid_to = n.valid_to, submitted_on = n.submitted_on, decided_on = n.decided_on
FROM (
    SELECT event_id,
           coalesce(min("on") OVER (PARTITION BY application_id ORDER BY seq
                    ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), DATE '9999-12-31') AS valid_to,
           min("on") FILTER (WHERE to_status = 'submitted') OVER (PARTITION BY application_id) AS submitted_on,
           min("on") FILTER (WHERE to_status IN ('approved', 'rejected')) OVER (PARTITION BY application_id)
               AS decided_on
    FROM reporting.application_moves WHERE application_id = ANY(:ids)
) n
WHERE m.event_id = n.event_id
  AND (m.valid_to, m.submitted_on, m.decided_on) IS DISTINCT FROM (n.valid_to, n.submitted_on, n.decided_on)
"""


async def on_applications_event(session: AsyncSession, event: EventEnvelope) -> None:
    if event.type in ("business.registered", "business.updated"):
        await keep_business(session, event.parse(BusinessSnapshotV1))
        return
    if not event.type.startswith("application."):
        return
    moved = event.parse(ApplicationMovedV1)
    known: dict[str, object] = {"ica_id": moved.ica_id, "business_id": moved.business_id}
    if event.type == "application.submitted":
        submitted = event.parse(ApplicationSubmittedV1)
        known |= {"lender_id": submitted.lender_id, "amount": submitted.amount, "currency": submitted.currency}
    elif event.type == "application.approved":
        approved = event.parse(ApplicationApprovedV1)
        terms = approved.terms
        known |= {"lender_id": terms.lender_id, "amount": terms.amount, "currency": terms.currency}
        await keep_business(session, approved.business)
    await session.execute(
        insert(applications)
        .values(application_id=moved.application_id, **known)
        .on_conflict_do_update(index_elements=[applications.c.application_id], set_=known)
    )
    await session.execute(
        insert(application_moves)
        .values(
            event_id=event.event_id,
            application_id=moved.application_id,
            seq=event.aggregate_seq,
            on=event.occurred_at.astimezone(UTC).date(),
            from_status=moved.from_status,
            to_status=moved.to_status,
        )
        .on_conflict_do_nothing()
    )
    await session.execute(text(PERIODS_SQL), {"ids": [moved.application_id]})


async def reset_applications(session: AsyncSession, from_position: int) -> None:
    await reset_tables(session, from_position, APPLICATIONS_TABLES)
    await impact.rebuild(session)  # the loans' first disbursements stay: financed, no facts yet


SUBSCRIPTION = Subscription(SPEC.name, SPEC.producer, SPEC.types, on_applications_event, reset_applications)
