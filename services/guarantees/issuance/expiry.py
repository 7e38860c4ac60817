"""Expiry (DOMAIN.md, Guarantees): a claim must be filed within the facility's claim deadline — so many months
after the loan's default, the date its days past due reached the facility's claim trigger. An active guarantee
whose loan defaulted and whose deadline passed with no claim filed is `expired`: the fund owes nothing on it any
more, so it leaves the exposure, the limits and the fees from the day it expired on.

Run daily by each guarantees process (idempotent: an expired guarantee is not active any more) and on demand by
staff for a date. Only guarantees whose loan has been overdue long enough that the window may have closed are
looked at (from the portfolio's arrears events); for each, the portfolio's own default date decides."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

from dateutil.relativedelta import relativedelta
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.guarantees.db import events as event_tables
from services.guarantees.facilities.models import FacilityTerms
from services.guarantees.issuance.events import facts
from services.guarantees.issuance.models import Guarantee
from shared.auth import Principal, Role, require_roles
from shared.background import log_failure, running
from shared.contracts.guarantees import GuaranteeExpiredV1
from shared.db import SessionDep, make_sessionmaker
from shared.events.outbox import publish
from shared.idempotency import IdempotentRoute
from shared.peers import InternalClient
from shared.problems import problem_responses

log = logging.getLogger("services.guarantees.expiry")
ANNOUNCES = (GuaranteeExpiredV1,)
admin = APIRouter(prefix="/api/v1/guarantees/admin", tags=["guarantees"], route_class=IdempotentRoute)


@dataclass(frozen=True)
class Expired:
    guarantee_id: uuid.UUID
    loan_id: uuid.UUID
    default_date: date
    claim_deadline: date


async def expire_lapsed(session: AsyncSession, portfolio: InternalClient, on: date) -> list[Expired]:
    """Expires, as of `on`, every active guarantee whose claim deadline is before `on`, and announces each."""
    # the default cannot be earlier than the oldest unpaid due date + the trigger: nothing sooner can have lapsed
    earliest_deadline = (
        Guarantee.overdue_since
        + FacilityTerms.claim_trigger_dpd
        + func.make_interval(0, FacilityTerms.claim_deadline_months)
    )
    candidates = (
        await session.execute(
            select(Guarantee, FacilityTerms)
            .join(
                FacilityTerms,
                (FacilityTerms.facility_id == Guarantee.facility_id)
                & (FacilityTerms.version == Guarantee.facility_version),
            )
            .where(Guarantee.status == "active", Guarantee.overdue_since.is_not(None), earliest_deadline < on)
            .order_by(Guarantee.id)
            .with_for_update(of=Guarantee, skip_locked=True)
        )
    ).all()
    expired = []
    for guarantee, terms in candidates:
        answer = await portfolio.get(
            "portfolio",
            f"/internal/loans/{guarantee.loan_id}/default",
            {"trigger_dpd": str(terms.claim_trigger_dpd), "as_of": on.isoformat()},
        )
        default_date = answer.json()["default_date"]
        if default_date is None:
            continue  # no longer in default as the portfolio reads it: its cure is on its way
        defaulted = date.fromisoformat(default_date)
        deadline = defaulted + relativedelta(months=terms.claim_deadline_months)
        if on <= deadline:
            continue
        guarantee.status, guarantee.expired_on = "expired", on
        await session.flush()
        await publish(
            session,
            event_tables,
            event_type="guarantee.expired",
            aggregate_type="guarantee",
            aggregate_id=str(guarantee.id),
            payload={
                **facts(guarantee),
                "expired_on": on.isoformat(),
                "default_date": defaulted.isoformat(),
                "claim_deadline": deadline.isoformat(),
            },
        )
        expired.append(Expired(guarantee.id, guarantee.loan_id, defaulted, deadline))
    return expired


class ExpiryRun(BaseModel):
    on: date | None = Field(None, description="the date to expire as of (default: today, UTC)")


class ExpiredOut(BaseModel):
    guarantee_id: uuid.UUID
    loan_id: uuid.UUID
    default_date: date
    claim_deadline: date


@admin.post(
    "/expiry",
    response_model=list[ExpiredOut],
    summary="Expire the guarantees whose claim deadline passed with no claim (admin, fund manager; idempotent)",
    responses=problem_responses(401, 403, 422, 503),
)
async def run_expiry(
    body: ExpiryRun,
    request: Request,
    session: SessionDep,
    principal: Principal = require_roles(Role.admin, Role.fund_manager),
) -> list[ExpiredOut]:
    on = body.on or datetime.now(UTC).date()
    return [ExpiredOut(**vars(e)) for e in await expire_lapsed(session, request.app.state.peers, on)]


@contextlib.asynccontextmanager
async def daily_expiry(engine: AsyncEngine, portfolio: InternalClient, *, every_seconds: float) -> AsyncIterator[None]:
    """Expires what has lapsed, at start and then every `every_seconds`, one process at a time."""
    sessionmaker = make_sessionmaker(engine)

    async def loop() -> None:
        while True:
            try:
                async with sessionmaker() as session, session.begin():
                    lock = text("SELECT pg_try_advisory_xact_lock(hashtext('guarantees.expiry'))")
                    if await session.scalar(lock):
                        expired = await expire_lapsed(session, portfolio, datetime.now(UTC).date())
                        if expired:
                            log.info("expired %d guarantees", len(expired))
            except asyncio.CancelledError:
                raise
            except Exception:
                log_failure(log, "the guarantee expiry failed; it will be tried again")
            await asyncio.sleep(every_seconds)

    async with running(loop(), name="guarantees-expiry"):
        yield
