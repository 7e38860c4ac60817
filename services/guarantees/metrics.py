"""The guarantee fund's metrics as of a date (DOMAIN.md, Guarantees), in CAD at that date's closing rates:
leverage, ceiling utilisation per lender, exposure by country, lender and borrower, claims rate, net loss rate and
recovery rate. The loans' outstanding principal is the portfolio's, as it stood that day (replayed by value date);
a guarantee whose claim was paid by then no longer counts. A currency with no rate at all is named in
`missing_rates` and left out of the sums (never counted as zero); a rate from an earlier day is named in
`stale_rates`."""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from dateutil.relativedelta import relativedelta
from fastapi import APIRouter, Query, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.guarantees.capital.router import capital_available
from services.guarantees.claims.models import Claim, Recovery
from services.guarantees.facilities.models import Facility, FacilityTerms
from services.guarantees.issuance.models import Guarantee
from services.guarantees.limits import new_exposure
from services.guarantees.policy.router import current_policy
from shared.auth import STAFF_ROLES, Role, require_roles
from shared.db import SessionDep, TransactionalRoute
from shared.money import format_amount, round_money
from shared.peers import InternalClient
from shared.problems import problem_responses

router = APIRouter(prefix="/api/v1/guarantees/metrics", tags=["metrics"], route_class=TransactionalRoute)
HUNDRED = Decimal(100)


async def exposures_on(session: AsyncSession, fx: InternalClient, on: date) -> dict[str, Any]:
    """Every guarantee's exposure in CAD as the books stood on `on`."""
    paid_before = select(Claim.guarantee_id).where(Claim.status == "paid", Claim.paid_on <= on)
    rows = (
        await session.scalars(
            select(Guarantee).where(
                Guarantee.issued_on <= on,
                Guarantee.status != "refused",
                Guarantee.id.not_in(paid_before),
                Guarantee.expired_on.is_(None) | (Guarantee.expired_on > on),
            )
        )
    ).all()
    outstanding: dict[str, Any] = {}
    if rows:
        answer = await fx.post(
            "portfolio",
            "/internal/loans/outstanding",
            {"as_of": on.isoformat(), "loan_ids": [str(g.loan_id) for g in rows]},
        )
        outstanding = answer.json()["loans"]
    rates: dict[str, Decimal] = {}
    missing, stale = [], []
    for currency in sorted({g.currency for g in rows}):
        equivalent = await fx.cad_equivalent(Decimal(1), currency, on)
        if equivalent is None:
            missing.append(currency)
            continue
        rates[currency] = equivalent.rate
        if equivalent.stale:
            stale.append(currency)
    total = Decimal(0)
    by: dict[str, dict[str, Decimal]] = {
        "lender": defaultdict(Decimal),
        "country": defaultdict(Decimal),
        "borrower": defaultdict(Decimal),
    }
    for g in rows:
        if g.currency not in rates:
            continue
        balance = Decimal(outstanding.get(str(g.loan_id), {}).get("outstanding_principal", "0"))
        exposure = new_exposure(balance * rates[g.currency], g.coverage_pct, g.cap_cad)
        total += exposure
        by["lender"][str(g.lender_id)] += exposure
        by["country"][g.country] += exposure
        by["borrower"][str(g.business_id)] += exposure
    return {"total": total, "by": by, "missing_rates": missing, "stale_rates": stale, "guarantees": len(rows)}


def _ratio(numerator: Decimal, denominator: Decimal) -> str | None:
    return format(round(numerator / denominator, 6), "f") if denominator else None


def money(amount: Decimal) -> str:
    return format_amount(amount, "CAD")


def _month_ends(start: date, end: date) -> list[date]:
    points, day = [], start
    while day < end:
        last = date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])
        if start < last < end:
            points.append(last)
        day = last + relativedelta(days=1)
    return points


@router.get(
    "",
    summary="Leverage, utilisation, exposure by country / lender / borrower, claims, net loss and recovery rates",
    responses=problem_responses(401, 403, 422, 503),
    dependencies=[require_roles(*STAFF_ROLES, Role.funder)],
)
async def metrics(
    request: Request,
    session: SessionDep,
    as_of: Annotated[date | None, Query(description="default: today (UTC)")] = None,
    period_months: Annotated[int, Query(ge=1, le=60, description="for the claims rate")] = 12,
) -> dict[str, Any]:
    on = as_of or datetime.now(UTC).date()
    start = on - relativedelta(months=period_months)
    fx: InternalClient = request.app.state.peers
    now = await exposures_on(session, fx, on)
    capital = await capital_available(session, on)
    policy = await current_policy(session)
    # the average guaranteed exposure over the period: at each month end within it, and on the date itself
    samples = [(await exposures_on(session, fx, d))["total"] for d in _month_ends(start, on)] + [now["total"]]
    average = round_money(sum(samples, Decimal(0)) / len(samples), "CAD")
    claims_paid = Decimal(
        await session.scalar(select(func.sum(Claim.payout_cad)).where(Claim.status == "paid", Claim.paid_on <= on)) or 0
    )
    claims_in_period = Decimal(
        await session.scalar(
            select(func.sum(Claim.payout_cad)).where(Claim.status == "paid", Claim.paid_on > start, Claim.paid_on <= on)
        )
        or 0
    )
    recovered = Decimal(
        await session.scalar(select(func.sum(Recovery.fund_share_cad)).where(Recovery.value_date <= on)) or 0
    )
    issued = Decimal(
        await session.scalar(
            select(func.sum(Guarantee.exposure_cad_at_issue)).where(
                Guarantee.issued_on <= on, Guarantee.status != "refused"
            )
        )
        or 0
    )
    ceilings = {
        str(f.lender_id): t.ceiling_cad
        for f, t in (
            await session.execute(
                select(Facility, FacilityTerms).join(
                    FacilityTerms,
                    (FacilityTerms.facility_id == Facility.id) & (FacilityTerms.version == Facility.current_version),
                )
            )
        ).all()
    }
    return {
        "as_of": on.isoformat(),
        "policy_version": policy.version,
        "capital_available_cad": money(capital),
        "guaranteed_exposure_cad": money(now["total"]),
        "leverage": _ratio(now["total"], capital),
        "leverage_max": format(policy.leverage_max, "f"),
        "utilisation_by_lender": {
            lender: {
                "exposure_cad": money(now["by"]["lender"].get(lender, Decimal(0))),
                "ceiling_cad": money(ceiling),
                "utilisation": _ratio(now["by"]["lender"].get(lender, Decimal(0)), ceiling),
            }
            for lender, ceiling in sorted(ceilings.items())
        },
        "exposure_by_country_cad": {k: money(v) for k, v in sorted(now["by"]["country"].items())},
        "exposure_by_lender_cad": {k: money(v) for k, v in sorted(now["by"]["lender"].items())},
        "exposure_by_borrower_cad": {k: money(v) for k, v in sorted(now["by"]["borrower"].items())},
        "claims_paid_cad": money(claims_paid),
        "recoveries_cad": money(recovered),
        "guarantees_issued_cad": money(issued),
        "claims_rate": _ratio(claims_in_period, average),
        "average_exposure_cad": money(average),
        "period": {"from": start.isoformat(), "to": on.isoformat(), "months": period_months},
        "net_loss_rate": _ratio(claims_paid - recovered, issued),
        "recovery_rate": _ratio(recovered, claims_paid),
        "missing_rates": now["missing_rates"],
        "stale_rates": now["stale_rates"],
    }
