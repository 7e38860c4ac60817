"""The guarantees service's subscription to the portfolio's loan events.

- `loan.opened` for a loan whose approval asked for a guarantee issues it, once (keyed by the loan), under the
  lender's facility terms in force that day and within the fund's limits; a guarantee that cannot be issued is
  recorded as `refused` with the reason (no facility, coverage outside the policy, the limit breached and its
  figures), for staff to see.
- Every later loan event carries the loan's outstanding principal after the change: the guarantee follows it,
  so its exposure follows the repayments; `loan.repaid` releases it.
- `loan.in_arrears` / `loan.defaulted` note since when the loan is overdue, `loan.cured` forgets it: the daily
  expiry (`expiry.py`) looks only at guarantees whose claim window may have closed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.guarantees.capital.router import capital_available
from services.guarantees.claims.recoveries import share_recovery
from services.guarantees.db import events as event_tables
from services.guarantees.facilities.models import Facility, FacilityTerms
from services.guarantees.issuance.models import Guarantee
from services.guarantees.issuance.room import exposures
from services.guarantees.limits import Breach, Limits, breaches, new_exposure
from services.guarantees.policy.models import GuaranteePolicy
from services.guarantees.policy.router import current_policy
from shared.contracts.guarantees import (
    GuaranteeExposureChangedV1,
    GuaranteeIssuedV1,
    GuaranteeRefusedV1,
    GuaranteeReleasedV1,
)
from shared.contracts.portfolio import LoanOpenedV1
from shared.events.consumer import Subscription
from shared.events.contracts import EventEnvelope
from shared.events.outbox import batched, emit
from shared.events.topology import SUBSCRIPTIONS
from shared.money import format_amount
from shared.peers import InternalClient

# what this module announces (importing the contracts registers them for `publish` to validate against)
ANNOUNCES = (GuaranteeIssuedV1, GuaranteeRefusedV1, GuaranteeExposureChangedV1, GuaranteeReleasedV1)
SPEC = next(s for s in SUBSCRIPTIONS if s.consumer == "guarantees" and s.name == "guarantees-from-loans")


def facts(g: Guarantee) -> dict[str, object]:
    return {
        "guarantee_id": str(g.id),
        "loan_id": str(g.loan_id),
        "lender_id": str(g.lender_id),
        "business_id": str(g.business_id),
        "country": g.country,
        "currency": g.currency,
        "coverage_pct": format(g.coverage_pct, "f"),
        "cap_cad": format(g.cap_cad, "f"),
        "outstanding_principal": format_amount(g.outstanding_principal, g.currency),
        "status": g.status,
    }


async def _announce(session: AsyncSession, g: Guarantee, event_type: str, **extra: object) -> None:
    await emit(  # in a page's batch: validated and written to JSON in one step
        session,
        event_tables,
        event_type=event_type,
        aggregate_type="guarantee",
        aggregate_id=str(g.id),
        payload={**facts(g), **extra},
    )


@dataclass
class Assessment:
    """What issuing a guarantee on a loan would take, on a date: the facility terms, the coverage, the exposure
    added, and why not (`refusal`, with `found` naming the limits breached and their figures)."""

    policy: GuaranteePolicy
    facility: Facility | None
    terms: FacilityTerms | None
    coverage: Decimal | None
    added: Decimal
    refusal: str | None
    found: list[Breach]


async def assess(
    session: AsyncSession,
    fx: InternalClient,
    *,
    on: date,
    lender_id: uuid.UUID,
    business_id: uuid.UUID,
    country: str,
    principal: Decimal,
    currency: str,
    coverage: Decimal | None,
) -> Assessment:
    policy = await current_policy(session)
    facility = await session.scalar(select(Facility).where(Facility.lender_id == lender_id))
    terms = await session.get(FacilityTerms, (facility.id, facility.current_version)) if facility else None
    if facility is None or terms is None or not terms.valid_from <= on <= terms.valid_to:
        return Assessment(
            policy, facility, terms, coverage, Decimal(0), f"the lender has no guarantee facility in force on {on}", []
        )
    coverage = coverage if coverage is not None else terms.coverage_pct
    if not policy.coverage_min_pct <= coverage <= policy.coverage_max_pct:
        refusal = f"coverage {coverage} % is outside the policy's {policy.coverage_min_pct}–{policy.coverage_max_pct} %"
        return Assessment(policy, facility, terms, coverage, Decimal(0), refusal, [])
    equivalent = await fx.cad_equivalent(principal, currency, on)
    if equivalent is None:
        raise LookupError(f"no {currency} rate on or before {on}: the guarantee waits for one")
    added = new_exposure(equivalent.amount_cad, coverage, terms.max_cover_per_loan_cad)
    limits = Limits(
        capital=await capital_available(session, on),
        leverage_max=policy.leverage_max,
        ceiling=terms.ceiling_cad,
        per_lender_pct=policy.per_lender_max_pct,
        per_country_pct=policy.per_country_max_pct,
        per_borrower_pct=policy.per_borrower_max_pct,
    )
    now = await exposures(session, fx, on=on, lender_id=lender_id, country=country, business_id=business_id)
    found = breaches(added, now, limits)
    return Assessment(policy, facility, terms, coverage, added, "; ".join(b.describe() for b in found) or None, found)


async def announce_issued(session: AsyncSession, guarantee: Guarantee, verdict: Assessment) -> None:
    assert verdict.facility is not None and verdict.terms is not None
    await _announce(
        session,
        guarantee,
        "guarantee.issued",
        facility_id=str(verdict.facility.id),
        facility_version=verdict.terms.version,
        policy_version=verdict.policy.version,
        exposure_cad_at_issue=format(verdict.added, "f"),
    )


async def issue(session: AsyncSession, opened: LoanOpenedV1, fx: InternalClient, on: date) -> Guarantee | None:
    """Issues (or refuses, with the reason) the guarantee a loan's approval asked for; nothing if it exists."""
    if await session.scalar(select(Guarantee.id).where(Guarantee.loan_id == opened.loan_id)) is not None:
        return None  # a replayed or duplicated loan.opened: one guarantee per loan
    verdict = await assess(
        session,
        fx,
        on=on,
        lender_id=opened.lender_id,
        business_id=opened.business_id,
        country=opened.country,
        principal=Decimal(opened.principal),
        currency=opened.currency,
        coverage=Decimal(opened.guarantee_coverage_pct) if opened.guarantee_coverage_pct else None,
    )
    facility, terms, coverage, refusal = verdict.facility, verdict.terms, verdict.coverage, verdict.refusal
    created = await session.scalar(
        insert(Guarantee)
        .values(
            loan_id=opened.loan_id,
            application_id=opened.application_id,
            lender_id=opened.lender_id,
            business_id=opened.business_id,
            country=opened.country,
            currency=opened.currency,
            facility_id=facility.id if facility else opened.lender_id,
            facility_version=terms.version if terms else 0,
            coverage_pct=coverage if coverage is not None else Decimal(0),
            cap_cad=terms.max_cover_per_loan_cad if terms else Decimal(0),
            principal=Decimal(opened.principal),
            outstanding_principal=Decimal(opened.outstanding_principal),
            status="refused" if refusal else "active",
            refusal=refusal,
            issued_on=on,
            exposure_cad_at_issue=verdict.added if refusal is None else Decimal(0),
        )
        .on_conflict_do_nothing(index_elements=[Guarantee.loan_id])
        .returning(Guarantee.id)
    )
    if created is None:
        return None
    guarantee = await session.get(Guarantee, created)
    assert guarantee is not None
    if refusal:
        await _announce(session, guarantee, "guarantee.refused", reason=refusal)
    else:
        await announce_issued(session, guarantee, verdict)
    return guarantee


async def follow(
    session: AsyncSession,
    event: EventEnvelope,
    fx: InternalClient,
    held: dict[uuid.UUID, Guarantee | None] | None = None,
) -> None:
    """A later loan event: the guarantee's outstanding follows the loan's; repaid releases it; a recovery after a
    paid claim is shared. `held`: the guarantees a batch has locked already, by loan (its changes are flushed once,
    at the end of the batch)."""
    loan_id = event.payload["loan_id"]
    key = uuid.UUID(str(loan_id))
    if held is not None and key in held:
        guarantee = held[key]  # None: the loan had no guarantee when the batch locked them
    else:
        guarantee = await session.scalar(select(Guarantee).where(Guarantee.loan_id == loan_id).with_for_update())
    if guarantee is None or guarantee.status == "refused":
        return
    if event.type == "loan.recovery_received" and guarantee.status == "paid":
        await session.flush()  # what it reads (the capital, the claims) as this event finds them
        await share_recovery(
            session,
            fx,
            guarantee,
            amount=Decimal(event.payload["amount"]),
            value_date=date.fromisoformat(event.payload["value_date"]),
            source=f"event:{event.event_id}",
        )
    if event.type in ("loan.in_arrears", "loan.defaulted") and guarantee.overdue_since is None:
        # the oldest unpaid due date: what the claim trigger and deadline (and so the expiry) count from
        guarantee.overdue_since = date.fromisoformat(event.payload["as_of"]) - timedelta(
            days=int(event.payload["days_past_due"])
        )
    elif event.type in ("loan.cured", "loan.repaid"):
        guarantee.overdue_since = None
    previous = guarantee.outstanding_principal
    guarantee.outstanding_principal = Decimal(event.payload["outstanding_principal"])
    if held is None:
        await session.flush()
    if event.type == "loan.repaid" and guarantee.status == "active":
        guarantee.status = "released"
        if held is None:
            await session.flush()
        await _announce(session, guarantee, "guarantee.released")
    elif guarantee.outstanding_principal != previous:
        await _announce(
            session,
            guarantee,
            "guarantee.exposure_changed",
            previous_outstanding=format_amount(previous, guarantee.currency),
        )


def _pays_no_principal(event: EventEnvelope) -> bool:
    """A repayment recorded in value-date order (its standing is one step: nothing dated after it was replayed)
    that paid no principal: the loan's outstanding is what it was. A backdated one can move it although it paid no
    principal itself: replayed before a later payment, it takes that payment's interest, which then pays
    principal."""
    if event.type != "loan.repayment_applied":
        return False
    allocation, standing = event.payload.get("allocation"), event.payload.get("standing")
    if not isinstance(allocation, dict) or not isinstance(standing, list) or len(standing) != 1:
        return False
    return Decimal(str(allocation.get("principal", "1"))) == 0


def subscription(fx: InternalClient) -> Subscription:
    async def handle(session: AsyncSession, event: EventEnvelope) -> None:
        if event.type == "loan.opened":
            opened = event.parse(LoanOpenedV1)
            if "guarantee" in opened.instruments:
                await issue(session, opened, fx, event.occurred_at.date())
        else:
            await follow(session, event, fx)

    async def handle_batch(session: AsyncSession, events: list[EventEnvelope]) -> None:
        """The same as `handle` on each event in order, in fewer round trips: the page's guarantees locked at once,
        in id order (as a transaction locking several must, against deadlocks), their changes written by one flush
        (at commit), the events announced in two statements (`batched`)."""
        # a repayment in value-date order that paid no principal leaves the loan's outstanding, so its guarantee, as
        # it was: `follow` would find nothing to change (interest and fees only, e.g. in a grace period or arrears)
        events = [e for e in events if not _pays_no_principal(e)]
        opened = {uuid.UUID(str(e.payload["loan_id"])) for e in events if e.type == "loan.opened"}
        loans = sorted({uuid.UUID(str(e.payload["loan_id"])) for e in events} - opened)
        # every loan of the page but those it opens (their guarantees are issued, then looked up, as the page goes):
        # its guarantee locked here, or None when it has none (no lookup again for each of its events)
        held: dict[uuid.UUID, Guarantee | None] = dict.fromkeys(loans)
        if loans:
            locked = await session.scalars(
                select(Guarantee).where(Guarantee.loan_id.in_(loans)).order_by(Guarantee.id).with_for_update()
            )
            held |= {g.loan_id: g for g in locked}
        async with batched(session, event_tables):
            for event in events:
                if event.type == "loan.opened":
                    await session.flush()  # what an issue reads in SQL (the live guarantees) as the events left it
                    await handle(session, event)
                else:
                    await follow(session, event, fx, held)

    handler: Callable[[AsyncSession, EventEnvelope], Awaitable[None]] = handle
    return Subscription(
        name=SPEC.name, producer=SPEC.producer, types=SPEC.types, handler=handler, batch_handler=handle_batch
    )
