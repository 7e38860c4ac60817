"""The guarantees service's events: guarantees (dated issue and expiry), claims (filed, paid), the fund's share of
recoveries, the capital ledger (`capital.entry_recorded`) and every version of each facility's ceiling
(`facility.terms_set`). A guarantee's exposure is not kept: a report
computes it as of its date from the loan's standing (`loan_standing`) and that date's rate."""

from __future__ import annotations

import uuid
from datetime import UTC, date

from sqlalchemy import any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.models import (
    GUARANTEES_TABLES,
    capital_entries,
    claim_recoveries,
    claims,
    facility_terms,
    guarantee_month_end_totals,
    guarantee_month_ends,
    guarantee_standing,
    guarantees,
)
from services.reporting.readmodel import exposure
from services.reporting.readmodel.portfolio import reset_tables
from shared.contracts.guarantees import (
    CapitalEntryRecordedV1,
    ClaimFactsV1,
    ClaimPaidV1,
    FacilityTermsSetV1,
    GuaranteeExpiredV1,
    GuaranteeFactsV1,
    GuaranteeIssuedV1,
    RecoverySharedV1,
)
from shared.events.consumer import Subscription
from shared.events.contracts import EventEnvelope
from shared.events.topology import SUBSCRIPTIONS

SPEC = next(s for s in SUBSCRIPTIONS if s.consumer == "reporting" and s.name == "guarantees-read-model")


def _day(event: EventEnvelope) -> date:
    return event.occurred_at.astimezone(UTC).date()


# what a guarantee's month-end exposures depend on (beside its loan's standing, the rates and its claims)
EXPOSURE_INPUTS = ("loan_id", "currency", "coverage_pct", "cap_cad", "issued_on", "expired_on")


# the columns every guarantee event sets, from the facts it carries (`GuaranteeFactsV1`)
FACTS = ("loan_id", "lender_id", "currency", "coverage_pct", "cap_cad", "status")


def _facts(g: GuaranteeFactsV1) -> dict[str, object]:
    return {name: getattr(g, name) for name in FACTS}


async def _guarantee(session: AsyncSession, event: EventEnvelope) -> None:
    g = event.parse(GuaranteeFactsV1)
    before = await _inputs_of(session, [g.guarantee_id])
    values = _facts(g)
    if event.type == "guarantee.issued":
        values |= {
            "issued_on": _day(event),
            "exposure_cad_at_issue": event.parse(GuaranteeIssuedV1).exposure_cad_at_issue,
        }
    elif event.type == "guarantee.expired":
        values["expired_on"] = event.parse(GuaranteeExpiredV1).expired_on
    await session.execute(
        insert(guarantees)
        .values(guarantee_id=g.guarantee_id, **values)
        .on_conflict_do_update(index_elements=[guarantees.c.guarantee_id], set_=values)
    )
    if await _inputs_of(session, [g.guarantee_id]) != before:  # most events only move its status
        await exposure.refresh(session, ids=[g.guarantee_id])


async def _claim(session: AsyncSession, event: EventEnvelope) -> None:
    claim = event.parse(ClaimFactsV1)
    values: dict[str, object] = {"status": claim.status, "payout_cad": claim.payout_cad}
    if event.type == "claim.filed":
        await session.execute(
            insert(claims)
            .values(
                claim_id=claim.claim_id,
                guarantee_id=claim.guarantee_id,
                loan_id=claim.loan_id,
                filed_on=_day(event),
                **values,
            )
            .on_conflict_do_update(index_elements=[claims.c.claim_id], set_=values)
        )
        return
    if event.type == "claim.paid":
        values["paid_on"] = date.fromisoformat(event.parse(ClaimPaidV1).paid_on)
    await session.execute(update(claims).where(claims.c.claim_id == claim.claim_id).values(**values))


async def on_guarantees_event(session: AsyncSession, event: EventEnvelope) -> None:
    if event.type.startswith("guarantee."):
        await _guarantee(session, event)
    elif event.type.startswith("claim."):
        await _claim(session, event)
        if event.type == "claim.paid":  # a payment ends the guarantee's exposure from its date
            await exposure.refresh(session, ids=[event.parse(ClaimFactsV1).guarantee_id])
    elif event.type == "recovery.shared":
        recovery = event.parse(RecoverySharedV1)
        await session.execute(
            insert(claim_recoveries)
            .values(
                event_id=event.event_id,
                claim_id=recovery.claim_id,
                loan_id=recovery.loan_id,
                value_date=date.fromisoformat(recovery.value_date),
                fund_share_cad=recovery.fund_share_cad,
            )
            .on_conflict_do_nothing()
        )
    elif event.type == "capital.entry_recorded":
        entry = event.parse(CapitalEntryRecordedV1)
        await session.execute(
            insert(capital_entries)
            .values(entry_id=entry.entry_id, kind=entry.kind, amount_cad=entry.amount_cad, value_date=entry.value_date)
            .on_conflict_do_nothing()
        )
    elif event.type == "facility.terms_set":
        terms = event.parse(FacilityTermsSetV1)
        await session.execute(
            insert(facility_terms)
            .values(
                facility_id=terms.facility_id,
                version=terms.version,
                lender_id=terms.lender_id,
                ceiling_cad=terms.ceiling_cad,
                valid_from=terms.valid_from,
                valid_to=terms.valid_to,
                set_on=_day(event),
            )
            .on_conflict_do_nothing()  # a version's terms are never changed: a change is a new version
        )


async def on_guarantees_events(session: AsyncSession, events: list[EventEnvelope]) -> None:
    """The same as `on_guarantees_event` on each event in order, in fewer round trips: each run of
    `guarantee.exposure_changed` (one per repayment on a guaranteed loan: nearly the whole feed under a lender's
    pushes) is written in three statements, whatever its length; the other events one by one, between the runs."""
    run: list[EventEnvelope] = []
    for event in events:
        if event.type == "guarantee.exposure_changed":
            run.append(event)
            continue
        await _exposure_changes(session, run)
        run = []
        await on_guarantees_event(session, event)
    await _exposure_changes(session, run)


async def _exposure_changes(session: AsyncSession, events: list[EventEnvelope]) -> None:
    """A run of `guarantee.exposure_changed`: each guarantee's row takes its last event's facts (each event carries
    them all), and its month-end exposures are recomputed when what they depend on differs from before the run
    (applied one by one, a change and its undoing within the run would leave them as they were, too)."""
    if not events:
        return
    latest: dict[uuid.UUID, dict[str, object]] = {}
    for event in events:
        g = event.parse(GuaranteeFactsV1)
        latest[g.guarantee_id] = {"guarantee_id": g.guarantee_id, **_facts(g)}
    ids = sorted(latest)
    before = await _inputs_of(session, ids)
    statement = insert(guarantees)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[guarantees.c.guarantee_id], set_={name: statement.excluded[name] for name in FACTS}
        ),
        [latest[i] for i in ids],
    )
    after = await _inputs_of(session, ids)
    moved = [i for i in ids if after.get(i) != before.get(i)]
    if moved:
        await exposure.refresh(session, ids=moved)


async def _inputs_of(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[object, ...]]:
    """What the month-end exposures of these guarantees depend on (`EXPOSURE_INPUTS`), by guarantee."""
    columns = [guarantees.c[name] for name in EXPOSURE_INPUTS]
    rows = await session.execute(
        select(guarantees.c.guarantee_id, *columns).where(
            guarantees.c.guarantee_id == any_(bindparam("ids", ids, type_=ARRAY(PG_UUID(as_uuid=True))))
        )
    )
    return {row[0]: tuple(row[1:]) for row in rows}


async def reset_guarantees(session: AsyncSession, from_position: int) -> None:
    await reset_tables(
        session,
        from_position,
        (*GUARANTEES_TABLES, guarantee_month_ends, guarantee_month_end_totals, guarantee_standing),
    )


SUBSCRIPTION = Subscription(
    SPEC.name, SPEC.producer, SPEC.types, on_guarantees_event, reset_guarantees, batch_handler=on_guarantees_events
)
