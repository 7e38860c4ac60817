"""The report endpoints: read-only (GET), for every role; an `ica` key sees its partners' figures only, a
`lender` key its own loans only. JSON by default; CSV with `Accept: text/csv` or `?format=csv`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from services.reporting.reports.common import (
    FormatParam,
    Selection,
    csv_response,
    json_response,
    selection,
    selection_openapi,
    wants_csv,
)
from services.reporting.reports.flows import flows_report
from services.reporting.reports.guarantees import guarantees_report
from services.reporting.reports.impact import impact_report, reads_in_one_statement, whole_fund_impact
from services.reporting.reports.pipeline import pipeline_report
from services.reporting.reports.portfolio import portfolio_report
from shared.auth import CurrentPrincipal
from shared.db import SessionDep, SnapshotRoute, one_statement, snapshot_session
from shared.problems import FieldError, UnprocessableContent, problem_responses

router = APIRouter(prefix="/api/v1/reporting", tags=["reports"], route_class=SnapshotRoute)
SelectionDep = Annotated[Selection, Depends(selection)]
CSV_AND_JSON: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the report (JSON), or one CSV row per group",
        "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}},
    }
}


Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def sessionless_report(path: str, *, summary: str) -> Callable[[Endpoint], Endpoint]:
    """A report route served without the router's session (`SnapshotRoute`): it reads its one statement through the
    driver (`shared.db.fetch_one_statement`), and opens a snapshot session itself where it needs one."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(
            path,
            endpoint,
            methods=["GET"],
            summary=summary,
            responses={**CSV_AND_JSON, **problem_responses(401, 422)},
            openapi_extra=selection_openapi(),
            route_class_override=APIRoute,
        )
        return endpoint

    return register


@router.get(
    "/portfolio",
    summary="Portfolio quality as of a date: GLP, PAR30, PAR90, aging, defaults, write-offs (CAD and per currency)",
    responses={**CSV_AND_JSON, **problem_responses(401, 422)},
    openapi_extra=selection_openapi(),
)
async def portfolio(
    request: Request, session: SessionDep, principal: CurrentPrincipal, sel: SelectionDep, format_: FormatParam = None
) -> Response:
    report = await portfolio_report(session, sel, principal)
    if wants_csv(request, format_):
        return csv_response("portfolio", sel, report.csv_header(), report.csv_rows())
    return json_response(report.json())


@sessionless_report(
    "/impact",
    summary="Social impact as of a date: businesses, members, jobs, employees, board seats, 2X, governance (IRIS+)",
)
async def impact(
    request: Request, principal: CurrentPrincipal, sel: SelectionDep, format_: FormatParam = None
) -> Response:
    if reads_in_one_statement(sel, principal):  # the whole fund: one statement, no session (the dashboards' call)
        report = await whole_fund_impact(request.app.state.engine, sel)
    else:
        async with snapshot_session(request) as session:
            report = await impact_report(session, sel, principal)
    if wants_csv(request, format_):
        return csv_response("impact", sel, report.csv_header(), report.csv_rows())
    return json_response(report.json())


@router.get(
    "/pipeline",
    summary="Applications as of a date: by status, approval rate, median days from submission to decision",
    responses={**CSV_AND_JSON, **problem_responses(401, 422)},
    openapi_extra=selection_openapi(),
)
async def pipeline(
    request: Request, session: SessionDep, principal: CurrentPrincipal, sel: SelectionDep, format_: FormatParam = None
) -> Response:
    await one_statement(session)  # the pipeline is read in one statement
    report = await pipeline_report(session, sel, principal)
    if wants_csv(request, format_):
        return csv_response("pipeline", sel, report.csv_header(), report.csv_rows())
    return json_response(report.json())


@sessionless_report(
    "/flows", summary="Monthly flows over a period: disbursed, repaid (principal, interest), written off, recovered"
)
async def flows(
    request: Request,
    principal: CurrentPrincipal,
    sel: SelectionDep,
    start: Annotated[
        date | None, Query(alias="from", description="first day of the period (default: 1 January of as_of's year)")
    ] = None,
    format_: FormatParam = None,
) -> Response:
    first = start or date(sel.as_of.year, 1, 1)
    if first > sel.as_of:
        detail = "the period's first day comes after its last (as_of)"
        raise UnprocessableContent(
            detail, errors=[FieldError(parameter="from", detail=detail).model_dump(exclude_none=True)]
        )
    if (sel.as_of - first).days > 3660:
        detail = "a period is at most ten years"
        raise UnprocessableContent(
            detail, errors=[FieldError(parameter="from", detail=detail).model_dump(exclude_none=True)]
        )
    report = await flows_report(request.app.state.engine, sel, first, principal)
    if wants_csv(request, format_):
        return csv_response("flows", sel, report.csv_header(), report.csv_rows())
    return json_response(report.json())


@router.get(
    "/guarantees",
    summary="The guarantee fund as of a date: exposure, leverage, claims filed and paid, recoveries, claims rate,"
    " net loss rate, recovery rate",
    responses={**CSV_AND_JSON, **problem_responses(401, 422)},
    openapi_extra=selection_openapi(),
)
async def guarantees(
    request: Request, session: SessionDep, principal: CurrentPrincipal, sel: SelectionDep, format_: FormatParam = None
) -> Response:
    report = await guarantees_report(session, sel, principal)
    if wants_csv(request, format_):
        rows = report["groups"] if sel.group_by else [report["total"]]
        header = [*sel.group_by, *GUARANTEE_COLUMNS]
        cells = [[*(row.get("key", {}).values()), *(row.get(c) for c in GUARANTEE_COLUMNS)] for row in rows]
        return csv_response("guarantees", sel, header, cells)
    return json_response(report)


GUARANTEE_COLUMNS = (
    "exposure_cad",
    "guarantees_issued",
    "guarantees_issued_cad",
    "claims_filed",
    "claims_filed_cad",
    "claims_paid",
    "claims_paid_cad",
    "recoveries_cad",
    "net_loss_rate",
    "recovery_rate",
)
