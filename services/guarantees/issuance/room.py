"""The room check the applications service asks at screening (docs/applications.md, peers): can lender L take a
guarantee on X more for borrower B in country C? Read-only; the same limits as at issuance (`limits.py`), in CAD at
today's rates (the portfolio's FX)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.guarantees.capital.router import capital_available
from services.guarantees.facilities.models import Facility, FacilityTerms
from services.guarantees.issuance.models import Guarantee
from services.guarantees.limits import Exposures, Limits, breaches, new_exposure
from services.guarantees.metrics import exposures_on
from services.guarantees.policy.router import current_policy
from shared.auth import service_caller
from shared.db import SessionDep, TransactionalRoute
from shared.money import Amount, CurrencyCode, format_amount
from shared.peers import InternalClient
from shared.problems import ServiceUnavailable

internal = APIRouter(prefix="/internal/guarantees", tags=["internal"], route_class=TransactionalRoute)
HUNDRED = Decimal(100)
LIVE = ("active", "called")  # guarantees whose exposure counts


async def exposures(
    session: AsyncSession, fx: InternalClient, *, on: date, lender_id: uuid.UUID, country: str, business_id: uuid.UUID
) -> Exposures:
    """Every live guarantee's exposure in CAD on `on`: min(coverage × outstanding × rate, cap)."""
    rows = (await session.scalars(select(Guarantee).where(Guarantee.status.in_(LIVE)))).all()
    rates: dict[str, Decimal] = {}
    for currency in sorted({g.currency for g in rows}):
        equivalent = await fx.cad_equivalent(Decimal(1), currency, on)
        if equivalent is None:
            raise ServiceUnavailable(
                f"no {currency} rate is recorded: the guaranteed exposure cannot be measured; nothing was decided",
                headers={"Retry-After": "300"},
            )
        rates[currency] = equivalent.rate
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for g in rows:
        exposure = new_exposure(g.outstanding_principal * rates[g.currency], g.coverage_pct, g.cap_cad)
        sums["total"] += exposure
        sums["lender"] += exposure if g.lender_id == lender_id else 0
        sums["country"] += exposure if g.country == country else 0
        sums["borrower"] += exposure if g.business_id == business_id else 0
    return Exposures(sums["total"], sums["lender"], sums["country"], sums["borrower"])


@internal.get("/room", summary="Can a lender take this guarantee, within its facility and the fund's limits?")
async def room(
    request: Request,
    session: SessionDep,
    _caller: Annotated[str, Depends(service_caller)],
    lender_id: uuid.UUID,
    business_id: uuid.UUID,
    country: Annotated[str, Query(pattern="^[A-Z]{2}$")],
    amount: Annotated[Amount, Query()],
    currency: CurrencyCode,
) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    facility = await session.scalar(select(Facility).where(Facility.lender_id == lender_id))
    terms = await session.get(FacilityTerms, (facility.id, facility.current_version)) if facility else None
    if terms is None or not terms.valid_from <= today <= terms.valid_to:
        return {"room": False, "reason": "the lender has no guarantee facility in force today", "breaches": []}
    fx: InternalClient = request.app.state.peers
    equivalent = await fx.cad_equivalent(amount, currency, today)
    if equivalent is None:
        raise ServiceUnavailable(
            f"no {currency} rate is recorded: the amount cannot be measured in CAD; nothing was decided",
            headers={"Retry-After": "300"},
        )
    policy = await current_policy(session)
    limits = Limits(
        capital=await capital_available(session, today),
        leverage_max=policy.leverage_max,
        ceiling=terms.ceiling_cad,
        per_lender_pct=policy.per_lender_max_pct,
        per_country_pct=policy.per_country_max_pct,
        per_borrower_pct=policy.per_borrower_max_pct,
    )
    added = new_exposure(equivalent.amount_cad, terms.coverage_pct, terms.max_cover_per_loan_cad)
    now = await exposures(session, fx, on=today, lender_id=lender_id, country=country, business_id=business_id)
    found = breaches(added, now, limits)
    return {
        "room": not found,
        "reason": "; ".join(b.describe() for b in found) or None,
        "exposure_cad": format(added, "f"),
        "breaches": [
            {"limit": b.limit, "current": format(b.current, "f"), "maximum": format(b.maximum, "f")} for b in found
        ],
        "policy_version": policy.version,
        "facility_version": terms.version,
    }


@internal.get("/totals", summary="The guarantee fund's own totals as of a date (for reconciliation)")
async def totals(
    request: Request, session: SessionDep, _caller: Annotated[str, Depends(service_caller)], as_of: date
) -> dict[str, Any]:
    """From this service's own tables (the loans' outstanding and the rates asked of the portfolio, as the metrics
    do): the guarantees live on `as_of` (issued by then, not expired, no claim paid), their exposure in CAD, and the
    capital available (the ledger's entries dated on or before it)."""
    now = await exposures_on(session, request.app.state.peers, as_of)
    return {
        "as_of": as_of.isoformat(),
        "guarantees": now["guarantees"],
        "exposure_cad": format_amount(now["total"], "CAD"),
        "capital_available_cad": format_amount(await capital_available(session, as_of), "CAD"),
        "missing_rates": now["missing_rates"],
        "stale_rates": now["stale_rates"],
    }
