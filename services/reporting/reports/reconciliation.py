"""Reconciliation: the read model's totals against the owning services' own totals, over HTTP (internal routes,
service token), figure by figure, with the differences listed. Once every event has been applied there should be
none; a difference names an event not applied yet (lag, a parked event) or a read model gone wrong.

- portfolio (`GET /internal/loans/totals`): per currency, the loans in the portfolio, the gross loan portfolio and
  PAR30, as of D;
- guarantees (`GET /internal/guarantees/totals`): the guarantees live on D, their exposure (CAD), capital available;
- applications (`GET /internal/applications/totals`): applications by status as of D.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.reports.common import Selection, cad, day_of, local
from services.reporting.reports.guarantees import live_guarantees
from services.reporting.reports.pipeline import pipeline_report
from services.reporting.reports.portfolio import portfolio_report
from shared.auth import STAFF_ROLES, Principal, Role, require_roles
from shared.db import SessionDep, SnapshotRoute
from shared.peers import InternalClient
from shared.problems import problem_responses

router = APIRouter(prefix="/api/v1/reporting", tags=["reconciliation"], route_class=SnapshotRoute)


def _figure(
    source: str, figure: str, currency: str | None, reporting: Any, owner: Any, show: Any = str
) -> dict[str, Any]:
    return {
        "source": source,
        "figure": figure,
        "currency": currency,
        "reporting": show(reporting),
        "owner": show(owner),
        "difference": show(reporting - owner),
    }


async def _owner(peers: InternalClient, service: str, path: str, on: date) -> dict[str, Any]:
    response = await peers.get(service, path, {"as_of": on.isoformat()})
    try:
        body: dict[str, Any] = response.json()
    except ValueError as exc:
        raise peers.unexpected(service) from exc
    return body


async def _portfolio(session: AsyncSession, owner: dict[str, Any], on: date, principal: Principal) -> list[Any]:
    report = await portfolio_report(session, Selection(on, (), {}), principal)
    theirs = owner["currencies"]
    figures = []
    for currency in sorted(set(report.total.by_currency) | set(theirs)):
        ours = report.total.by_currency.get(currency, {})
        counts = report.total.currency_counts.get(currency, {})
        them = theirs.get(currency, {})
        figures.append(_figure("portfolio", "loans", currency, counts.get("loans", 0), int(them.get("loans", 0)), int))
        for name in ("gross_loan_portfolio", "par30"):
            figures.append(
                _figure(
                    "portfolio",
                    name,
                    currency,
                    ours.get(name, Decimal(0)),
                    Decimal(them.get(name, "0")),
                    lambda a, c=currency: local(a, c),
                )
            )
    return figures


async def _guarantees(session: AsyncSession, owner: dict[str, Any], on: date, principal: Principal) -> list[Any]:
    count, exposure, _missing = await live_guarantees(session, on, principal)
    capital = Decimal(
        await session.scalar(
            text("SELECT coalesce(sum(amount_cad), 0) FROM reporting.capital_entries WHERE value_date <= :on"),
            {"on": on},
        )
        or 0
    )
    return [
        _figure("guarantees", "guarantees", None, count, int(owner["guarantees"]), int),
        _figure("guarantees", "exposure", "CAD", exposure, Decimal(owner["exposure_cad"]), cad),
        _figure("guarantees", "capital_available", "CAD", capital, Decimal(owner["capital_available_cad"]), cad),
    ]


async def _applications(session: AsyncSession, owner: dict[str, Any], on: date, principal: Principal) -> list[Any]:
    ours = (await pipeline_report(session, Selection(on, (), {}), principal)).total.by_status
    theirs = {status: int(count) for status, count in owner["by_status"].items()}
    figures = [_figure("applications", "applications", None, sum(ours.values()), sum(theirs.values()), int)]
    for status in sorted(set(ours) | set(theirs)):
        figures.append(
            _figure("applications", f"status_{status}", None, ours.get(status, 0), theirs.get(status, 0), int)
        )
    return figures


@router.get(
    "/reconciliation",
    summary="The read model's totals against the owning services' own, figure by figure, with the differences",
    responses=problem_responses(401, 403, 422, 503),
)
async def reconciliation(
    request: Request,
    session: SessionDep,
    as_of: Annotated[date | None, Query(description="the books as they stood that day (default: today, UTC)")] = None,
    principal: Principal = require_roles(*STAFF_ROLES, Role.funder),
) -> dict[str, Any]:
    on = day_of(as_of)
    peers: InternalClient = request.app.state.peers
    # the owners are asked one after the other, before the read model: a slow one is a slow answer, not a pile-up
    portfolio = await _owner(peers, "portfolio", "/internal/loans/totals", on)
    guarantees = await _owner(peers, "guarantees", "/internal/guarantees/totals", on)
    applications = await _owner(peers, "applications", "/internal/applications/totals", on)
    try:
        figures = [
            *await _portfolio(session, portfolio, on, principal),
            *await _guarantees(session, guarantees, on, principal),
            *await _applications(session, applications, on, principal),
        ]
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise peers.unexpected("portfolio, guarantees or applications") from exc
    differences = [f for f in figures if f["reporting"] != f["owner"]]
    return {
        "report": "reconciliation",
        "as_of": on.isoformat(),
        "reconciled": not differences,
        "differences": differences,
        "figures": figures,
        "owner_notes": {
            "guarantees_missing_rates": guarantees.get("missing_rates", []),
            "guarantees_stale_rates": guarantees.get("stale_rates", []),
        },
    }
