"""What every report shares: the as-of date, filters and group-by on the same dimensions, who may see what, FX
rates of the as-of date, and the JSON / CSV answer.

Queries are set-based SQL over the read model (one statement aggregates every loan); the SQL text is assembled
only from the fixed fragments below, every value the caller gives is a bound parameter.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from functools import cache, lru_cache
from typing import Annotated, Any

import orjson
from fastapi import Query, Request
from fastapi.responses import Response
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.models import LONG_SPAN, SPAN_CLASSES
from shared.auth import Principal, Role
from shared.countries import countries
from shared.db import DriverStatement
from shared.money import PEGGED_TO_EUR, minor_units
from shared.problems import FieldError, UnprocessableContent

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DIMENSIONS = ("country", "region", "lender", "ica", "sector", "legal_form", "currency")
CENT = Decimal("0.01")
RATIO = Decimal("0.000001")


def day_of(value: date | None) -> date:
    return value or datetime.now(UTC).date()


def _invalid(parameter: str, detail: str) -> UnprocessableContent:
    return UnprocessableContent(
        f"{parameter}: {detail}", errors=[FieldError(parameter=parameter, detail=detail).model_dump(exclude_none=True)]
    )


def _values(raw: list[str] | None) -> list[str]:
    """Repeated (`?country=SN&country=ML`) or comma-separated (`?country=SN,ML`) values."""
    return [v.strip() for item in raw or [] for v in item.split(",") if v.strip()]


@dataclass(frozen=True)
class Selection:
    """The as-of date, the filters and the group-by of one report request, validated."""

    as_of: date
    group_by: tuple[str, ...]
    filters: dict[str, list[Any]] = field(default_factory=dict)

    def echo(self) -> dict[str, Any]:
        return {k: [str(v) for v in values] for k, values in self.filters.items()}


@cache
def known_regions() -> frozenset[str]:
    """Every UN M49 code some country belongs to (computed once: it walked every country on each report)."""
    return frozenset(c for entry in countries().values() for c in entry.m49_codes)


# The selection's parameters, as the OpenAPI describes them (each route declares them with `selection_openapi()`)
SELECTION_PARAMETERS: tuple[tuple[str, str], ...] = (
    ("as_of", "the books as they stood that day, YYYY-MM-DD (default: today, UTC)"),
    ("group_by", "dimensions to group by, comma-separated or repeated: " + ", ".join(DIMENSIONS)),
    ("country", "ISO 3166 alpha-2 code(s), e.g. SN"),
    ("region", "UN M49 code(s): 002 Africa, 142 Asia, 419 LAC..."),
    ("lender", "lender organization id(s)"),
    ("ica", "ICA organization id(s)"),
    ("sector", "the business's sector(s)"),
    ("legal_form", "the business's legal form(s)"),
    ("currency", "ISO 4217 code(s) of the loans"),
)


def selection_openapi() -> dict[str, Any]:
    """A route's `openapi_extra`: the selection's parameters (a new dict for each route)."""
    return {
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": description,
                "schema": {"type": "string", "format": "date"}
                if name == "as_of"
                else {"type": "array", "items": {"type": "string"}},
            }
            for name, description in SELECTION_PARAMETERS
        ]
    }


# async: FastAPI runs a plain `def` dependency in its thread pool (a thread hop on every report for nothing)
async def selection(request: Request) -> Selection:
    """The report's as-of date, filters and group-by, read from the query string here rather than declared as nine
    FastAPI parameters: FastAPI inspects each declared parameter's type again on every request, about 0.25 ms of
    the whole fund's impact report's ~2.3 ms of CPU (measured in-process); the parameters are described in the
    OpenAPI by `selection_openapi()`. Every value is checked below, a bad one answered 422 naming it; `as_of` is a
    day as YYYY-MM-DD, nothing else."""
    query = request.query_params
    as_of: date | None = None
    if (raw_day := query.get("as_of")) is not None:  # an empty one is refused too, not taken for today
        with contextlib.suppress(ValueError):  # 2024-02-30
            as_of = date.fromisoformat(raw_day) if _DAY.fullmatch(raw_day) else None
        if as_of is None:
            raise _invalid("as_of", f"{raw_day[:40]!r} is not a date as YYYY-MM-DD")
    group_by, country, region = query.getlist("group_by"), query.getlist("country"), query.getlist("region")
    lender, ica, sector = query.getlist("lender"), query.getlist("ica"), query.getlist("sector")
    legal_form, currency = query.getlist("legal_form"), query.getlist("currency")
    groups = _values(group_by)
    for g in groups:
        if g not in DIMENSIONS:
            raise _invalid("group_by", f"{g!r} is not a dimension; use " + ", ".join(DIMENSIONS))
    if len(set(groups)) != len(groups):
        raise _invalid("group_by", "a dimension is named twice")
    filters: dict[str, list[Any]] = {}
    for code in _values(country):
        if code not in countries():
            raise _invalid("country", f"{code!r} is not an ISO 3166 alpha-2 country code")
        filters.setdefault("country", []).append(code)
    for code in _values(region):
        if code not in known_regions():
            raise _invalid("region", f"{code!r} is not a UN M49 region of any country")
        filters.setdefault("region", []).append(code)
    for name, raw in (("lender", lender), ("ica", ica)):
        for value in _values(raw):
            try:
                filters.setdefault(name, []).append(uuid.UUID(value))
            except ValueError:
                raise _invalid(name, f"{value!r} is not an organization id (UUID)") from None
    for name, raw in (("sector", sector), ("legal_form", legal_form)):
        for value in _values(raw):
            filters.setdefault(name, []).append(value)
    for code in _values(currency):
        try:
            minor_units(code)
        except ValueError:
            raise _invalid("currency", f"{code!r} is not an ISO 4217 currency code") from None
        filters.setdefault("currency", []).append(code)
    return Selection(as_of=day_of(as_of), group_by=tuple(groups), filters=filters)


@dataclass(frozen=True)
class Columns:
    """Where a report's SQL finds each dimension, and the columns an `ica` or `lender` key is confined by."""

    dimensions: dict[str, str]
    ica: str
    lender: str


def where(sel: Selection, principal: Principal, columns: Columns) -> tuple[str, dict[str, Any]]:
    """The WHERE fragment (joined with AND) and its bound parameters: the caller's filters and its scope."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for name, values in sel.filters.items():
        if name == "region":  # any M49 grouping a country belongs to (002, 419, 011 Western Africa...)
            wanted = set(values)
            params["f_region"] = sorted(a for a, c in countries().items() if c.m49_codes & wanted)
            clauses.append(f"{columns.dimensions['country']} = ANY(:f_region)")
        else:
            params[f"f_{name}"] = values
            clauses.append(f"{columns.dimensions[name]} = ANY(:f_{name})")
    # an ICA sees its partners' figures only, a lender its own loans; staff and funders everything
    if principal.role is Role.ica:
        clauses.append(f"{columns.ica} = :scope_org")
        params["scope_org"] = principal.organization_id
    elif principal.role is Role.lender:
        clauses.append(f"{columns.lender} = :scope_org")
        params["scope_org"] = principal.organization_id
    if principal.role in (Role.ica, Role.lender) and principal.organization_id is None:
        clauses.append("false")
    return (" AND ".join(clauses) or "true"), params


def group_columns(sel: Selection, columns: Columns) -> list[str]:
    return [f"{columns.dimensions[g]} AS g_{g}" for g in sel.group_by]


def key_of(sel: Selection, row: Any) -> tuple[Any, ...]:
    return tuple(getattr(row, f"g_{g}") for g in sel.group_by)


def key_json(sel: Selection, key: tuple[Any, ...]) -> dict[str, str | None]:
    return {g: (str(v) if v is not None else None) for g, v in zip(sel.group_by, key, strict=True)}


# ------------------------------------------------------------------------------------------------ FX
@dataclass(frozen=True)
class Rate:
    """CAD per unit of a currency on a date: `per_unit / divisor` (the divisor is the CFA peg, else 1)."""

    currency: str
    per_unit: Decimal
    divisor: Decimal
    rate_date: date | None
    stale: bool
    derived_from: str | None = None

    def to_cad(self, amount: Decimal) -> Decimal:
        with localcontext() as ctx:
            ctx.prec = 50
            return amount * self.per_unit / self.divisor

    def json(self) -> dict[str, Any]:
        with localcontext() as ctx:
            ctx.prec = 50
            shown = (self.per_unit / self.divisor).quantize(Decimal("1e-10"), rounding=ROUND_HALF_EVEN).normalize()
        return {
            "currency": self.currency,
            "cad_per_unit": format(shown, "f"),
            "rate_date": self.rate_date.isoformat() if self.rate_date else None,
            "stale": self.stale,
            "derived_from": self.derived_from,
        }


@dataclass
class Rates:
    as_of: date
    found: dict[str, Rate]
    missing: list[str]

    def json(self) -> dict[str, Any]:
        return {
            "used": [self.found[c].json() for c in sorted(self.found)],
            "stale": sorted(c for c, r in self.found.items() if r.stale),
            "missing": sorted(self.missing),
        }


# The latest rate of each currency on or before a day: one backward step of the primary key (currency, rate_date)
# per currency, not every rate recorded sorted (DISTINCT ON read and sorted each currency's whole history)
def rate_lookup(currency: str, on: str) -> str:
    """SQL (fixed fragments): the latest rate on or before `on` of `currency`'s base (EUR for XOF and XAF), as a
    LATERAL subquery with columns currency (the base), rate_date, cad_per_unit; no row when none (or CAD), so that a
    report can read its rates in the statement that reads its figures (`rates_from` builds them)."""
    return f"""LATERAL (
    SELECT f.currency, f.rate_date, f.cad_per_unit FROM reporting.fx_rates f
    WHERE f.currency = CASE WHEN {currency} = ANY(CAST(:pegged AS text[])) THEN 'EUR' ELSE {currency} END
      AND f.rate_date <= {on}
    ORDER BY f.rate_date DESC LIMIT 1
)"""  # noqa: S608 - fixed fragments only


PEGGED = sorted(PEGGED_TO_EUR)  # the `:pegged` parameter of `rate_lookup`
# the latest rate of each currency's base on or before `:on`, for `closing_rates`
LATEST_RATES_SQL = f"""
SELECT r.currency, r.rate_date, r.cad_per_unit FROM unnest(CAST(:currencies AS text[])) AS c(currency)
CROSS JOIN {rate_lookup("c.currency", ":on")} r
"""  # noqa: S608 - fixed fragments only


def rates_from(currencies: Iterable[str], latest: dict[str, Any], on: date) -> Rates:
    """The closing rates of `currencies` on `on` from `latest`, each base currency's latest rate row (currency,
    rate_date, cad_per_unit) on or before it: stale when earlier; XOF and XAF from EUR's at the peg; CAD is 1; a
    currency with no rate at all is `missing` (left out of CAD sums, never zero). Rows are read by name (asyncpg
    records, or SQLAlchemy rows' `_mapping`)."""
    found: dict[str, Rate] = {}
    missing: list[str] = []
    for c in sorted(set(currencies)):
        if c == "CAD":
            found[c] = Rate(c, Decimal(1), Decimal(1), on, False)
            continue
        base = "EUR" if c in PEGGED_TO_EUR else c
        row = latest.get(base)
        if row is None:
            missing.append(c)
            continue
        found[c] = Rate(
            c,
            Decimal(row["cad_per_unit"]),
            PEGGED_TO_EUR.get(c, Decimal(1)),
            row["rate_date"],
            row["rate_date"] < on,
            base if base != c else None,
        )
    return Rates(on, found, missing)


async def closing_rates(session: AsyncSession, currencies: Iterable[str], on: date) -> Rates:
    """The closing rate of each currency on `on` (`rates_from`)."""
    wanted = sorted(set(currencies))
    rows = (
        await session.execute(
            statement(LATEST_RATES_SQL), {"currencies": [c for c in wanted if c != "CAD"], "on": on, "pegged": PEGGED}
        )
    ).all()
    return rates_from(wanted, {r.currency: r._mapping for r in rows}, on)


def cad(amount: Decimal) -> str:
    return format(amount.quantize(CENT, rounding=ROUND_HALF_EVEN), "f")


def local(amount: Decimal, currency: str) -> str:
    return format(amount.quantize(_quantum(currency), rounding=ROUND_HALF_EVEN), "f")


@cache
def _quantum(currency: str) -> Decimal:
    """The smallest unit of a currency (1 XOF, 0.01 CAD), made once: `local` formats every amount of a report."""
    return Decimal(1).scaleb(-minor_units(currency))


def ratio(numerator: Decimal, denominator: Decimal) -> str | None:
    """A ratio to 6 decimals (half-even), from the exact figures; none when the denominator is zero."""
    if not denominator:
        return None
    with localcontext() as ctx:
        ctx.prec = 50
        return format((numerator / denominator).quantize(RATIO, rounding=ROUND_HALF_EVEN), "f")


# ------------------------------------------------------------------------------------------------ answers
def wants_csv(request: Request, format_: str | None) -> bool:
    if format_ is not None:
        return format_ == "csv"
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip() == "text/csv" for part in accept.split(","))


FormatParam = Annotated[
    str | None,
    Query(alias="format", pattern="^(json|csv)$", description="`csv` or `json`; else the `Accept` header decides"),
]


def csv_response(name: str, sel: Selection, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    """A header row, then one row per group; amounts are plain decimal strings, an unknown figure an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if cell is None else cell for cell in row])
    filename = f"{name}-{sel.as_of.isoformat()}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@lru_cache(maxsize=1024)
def statement(sql: str) -> TextClause:
    """A report's SQL as a construct, made once per distinct text (a report's statements vary only with the
    selection's shape: its groups, which filters, the caller's scope): `text()` parses the bind parameters out of
    the text on every call, and a new construct is looked up in SQLAlchemy's compiled cache anew. The whole fund's
    impact report, ~2.5 ms in all, took 0.25 ms less a request in-process."""
    return text(sql)


@lru_cache(maxsize=1024)
def driver_statement(sql: str) -> DriverStatement:
    """A report's SQL compiled for the driver (`shared.db.fetch_one_statement`), once per distinct text, as
    `statement` makes its SQLAlchemy construct once."""
    return DriverStatement.compile(sql)


def json_response(body: dict[str, Any]) -> Response:
    """The report as JSON, written by orjson (the same compact UTF-8 text as Starlette's JSONResponse, in a fraction of
    its time for a grouped report's hundreds of figures)."""
    return Response(orjson.dumps(body), media_type="application/json")


# The reporting service's connections: no JIT (compiling a plan cost up to half a second for queries that run in a
# tenth of one on the reference load) and memory for the aggregations' hashes and sorts (with the server's default
# 4 MB they spill to disk). Set once per connection, at connect: two round trips fewer on every report.
REPORTS_SESSION = {"jit": "off", "work_mem": "64MB"}


# ------------------------------------------------------------------------------------------------ the standing as of D
STANDING_COLUMNS = 'loan_id, "on", valid_to, outstanding_principal, overdue_from, status'


async def after_every_latest_step(session: AsyncSession, day: date, starts: str) -> bool:
    """Whether `day` is on or after the start of every copy of a loan's latest standing step (`starts`: SQL giving
    the latest of those starts), so that the step in force that day is each loan's latest (today, as a rule)."""
    latest = await session.scalar(statement(starts))
    return latest is None or day >= latest


def standing_on(day: str = "CAST(:as_of AS date)", active_only: bool = False) -> str:
    """A subquery of each loan's standing step in force on `day` (a SQL date expression), exactly the rows of
    `loan_standing` with on <= day < valid_to (`active_only`: those with status active, filtered in the index scans).

    A step of length class k (`loan_standing.span`: at most 2^k days) in force on `day` began within 2^k days
    before it, so each class is one short range of the index on (span, on); the long and open steps (99) are few
    per loan. Scanning `valid_to > day` instead reads, for a past day, nearly every step recorded since."""
    of_status = " AND status = 'active'" if active_only else ""
    short = [
        f'SELECT {STANDING_COLUMNS} FROM reporting.loan_standing WHERE span = {k} AND "on" <= {day}'  # noqa: S608
        f' AND "on" > {day} - {2**k} AND valid_to > {day}{of_status}'
        for k in range(SPAN_CLASSES)
    ]
    long = f'SELECT {STANDING_COLUMNS} FROM reporting.loan_standing WHERE span = {LONG_SPAN} AND "on" <= {day}'  # noqa: S608
    return "(" + "\n    UNION ALL ".join([*short, f"{long} AND valid_to > {day}{of_status}"]) + ")"
