from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from services.portfolio.fx import service
from shared.auth import Role, require_roles, service_caller
from shared.db import SessionDep, TransactionalRoute
from shared.money import Amount, CurrencyCode, Money, decimal_places, format_amount, minor_units
from shared.problems import NotFound, Problem, UnprocessableContent, problem_responses

router = APIRouter(prefix="/api/v1/portfolio/fx-rates", tags=["FX rates"], route_class=TransactionalRoute)
internal = APIRouter(
    prefix="/internal/fx", tags=["internal: FX"], include_in_schema=False, route_class=TransactionalRoute
)
STAFF = (Role.admin, Role.analyst, Role.committee, Role.fund_manager)
MAX_CSV_BYTES = 2 * 1024 * 1024


class RateIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"currency": "EUR", "rate_date": "2026-11-27", "cad_per_unit": "1.4712", "source": "Bank of Canada"}
            ]
        },
    )

    currency: CurrencyCode
    rate_date: date
    cad_per_unit: Decimal = Field(gt=0, max_digits=24, decimal_places=12, description="CAD for one unit, as a string")
    source: str = Field(min_length=2, max_length=100)

    @field_validator("cad_per_unit", mode="before")
    @classmethod
    def _string(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError('a rate is a JSON string, e.g. "1.4712" (numbers lose precision)')
        return value


class RateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    currency: str
    rate_date: date
    cad_per_unit: Decimal
    source: str

    @field_serializer("cad_per_unit")
    def _plain(self, value: Decimal) -> str:
        return format(value.normalize(), "f")


class Conversion(BaseModel):
    original: Money
    cad: Money
    rate: Decimal
    rate_date: date
    stale: bool = Field(description="true when no rate existed for the date and the latest earlier one was used")
    source: str


class ImportOutcome(BaseModel):
    imported: int
    unchanged: int


@router.post(
    "",
    status_code=201,
    response_model=RateOut,
    summary="Record a day's closing rate (XOF and XAF derive from EUR at the peg and are not entered)",
    dependencies=[require_roles(Role.admin, Role.fund_manager)],
    responses=problem_responses(401, 403, 409, 422),
)
async def record_rate(spec: RateIn, request: Request, session: SessionDep) -> RateOut:
    try:
        service.check_rate(spec.currency, spec.cad_per_unit)
    except ValueError as exc:
        raise UnprocessableContent(str(exc), errors=[{"pointer": "#/currency", "detail": str(exc)}]) from None
    row, _ = await service.record_rate(
        session,
        currency=spec.currency,
        rate_date=spec.rate_date,
        cad_per_unit=spec.cad_per_unit,
        source=spec.source,
        actor=request.state.principal.key_id,
    )
    return RateOut.model_validate(row)


@router.post(
    "/import",
    response_model=ImportOutcome,
    summary="Import rates from CSV (`date,currency,cad_per_unit,source`), all or nothing",
    dependencies=[require_roles(Role.admin, Role.fund_manager)],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "date,currency,cad_per_unit,source\n2026-11-27,EUR,1.4712,Bank of Canada\n",
                }
            },
        }
    },
    responses=problem_responses(401, 403, 409, 413, 422),
)
async def import_rates(request: Request, session: SessionDep) -> ImportOutcome:
    body = await request.body()
    if len(body) > MAX_CSV_BYTES:
        raise Problem(f"a CSV import may be at most {MAX_CSV_BYTES} bytes", status=413, slug="body-too-large")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnprocessableContent("the CSV must be UTF-8") from None
    imported = unchanged = 0
    for day, currency, value, source in service.parse_csv(text):
        _, new = await service.record_rate(
            session,
            currency=currency,
            rate_date=day,
            cad_per_unit=value,
            source=source,
            actor=request.state.principal.key_id,
        )
        imported, unchanged = imported + new, unchanged + (not new)
    return ImportOutcome(imported=imported, unchanged=unchanged)


@router.get(
    "/convert",
    response_model=Conversion,
    summary="An amount in CAD at the closing rate of a date (stale fallback said)",
    dependencies=[require_roles(*STAFF, Role.funder)],
    responses=problem_responses(401, 403, 404, 422),
)
async def convert(
    session: SessionDep, amount: Annotated[Amount, Query()], currency: CurrencyCode, on: date
) -> Conversion:
    if decimal_places(amount) > minor_units(currency):
        raise UnprocessableContent(
            f"{currency} has {minor_units(currency)} decimal places: {amount} has more",
            errors=[{"parameter": "amount", "in": "query", "detail": "too many decimal places for the currency"}],
        )
    original = Money(amount=amount, currency=currency)
    rate = await service.rate_on(session, currency, on)
    if rate is None:
        raise NotFound(f"no {currency} rate on or before {on}", slug="fx-rate-missing")
    cad = service.to_cad(original.amount, rate)
    return Conversion(
        original=original,
        cad=Money(amount=cad, currency="CAD"),
        rate=rate.cad_per_unit,
        rate_date=rate.rate_date,
        stale=rate.stale,
        source=rate.source,
    )


@internal.get("/cad-equivalent")
async def cad_equivalent(
    session: SessionDep,
    _caller: Annotated[str, Depends(service_caller)],
    amount: Annotated[Amount, Query()],
    currency: CurrencyCode,
    on: date,
) -> dict[str, object]:
    """The contract screening relies on (docs/applications.md)."""
    rate = await service.rate_on(session, currency, on)
    if rate is None:
        raise NotFound(f"no {currency} rate on or before {on}", slug="fx-rate-missing")
    return {
        "amount_cad": format_amount(service.to_cad(amount, rate), "CAD"),
        "rate": format(rate.cad_per_unit.normalize(), "f"),
        "rate_date": rate.rate_date.isoformat(),
        "stale": rate.stale,
    }
