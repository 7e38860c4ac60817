"""The guarantee fund's capital ledger (CAD): contributions and adjustments entered by staff; fee income, claims
paid and recoveries are written by the service itself as they happen. Capital available on a date is the sum of
the entries dated on or before it."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, StringConstraints, model_validator
from sqlalchemy import func, select

from services.guarantees.capital.ledger import record_entry
from services.guarantees.capital.models import CapitalEntry
from shared.auth import STAFF_ROLES, Principal, Role, require_roles
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.money import Money
from shared.pagination import Page, keyset, page_of
from shared.problems import problem_responses

router = APIRouter(prefix="/api/v1/guarantees/capital", tags=["capital ledger"], route_class=IdempotentRoute)
KINDS = ("contribution", "fee_income", "claim_paid", "recovery", "adjustment")


class EntryIn(BaseModel):
    """Staff enter contributions (positive) and adjustments (either sign, with the reason)."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "kind": "contribution",
                    "amount": {"amount": "3000000.00", "currency": "CAD"},
                    "value_date": "2026-04-01",
                    "reference": "MRIF agreement 2026-017",
                }
            ]
        }
    }

    kind: Literal["contribution", "adjustment"]
    amount: Money
    value_date: date
    reference: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None

    @model_validator(mode="after")
    def _rules(self) -> EntryIn:
        if self.amount.currency != "CAD":
            raise ValueError("the guarantee capital is kept in CAD")
        if self.amount.amount == 0:
            raise ValueError("an entry moves money: the amount cannot be zero")
        if self.kind == "contribution" and self.amount.amount < 0:
            raise ValueError("a contribution is positive; enter a withdrawal as an adjustment")
        if self.kind == "adjustment" and not self.comment:
            raise ValueError("an adjustment says why (comment)")
        return self


class EntryOut(BaseModel):
    id: uuid.UUID
    kind: str
    amount: Money
    value_date: date
    reference: str | None
    comment: str | None
    recorded_at: datetime


class CapitalOut(BaseModel):
    as_of: date
    capital_available: Money
    by_kind: dict[str, Money] = Field(description="the sum of each kind of entry up to the date")


def _out(entry: CapitalEntry) -> EntryOut:
    return EntryOut(
        id=entry.id,
        kind=entry.kind,
        amount=Money.of(entry.amount_cad, "CAD"),
        value_date=entry.value_date,
        reference=entry.reference,
        comment=entry.comment,
        recorded_at=entry.recorded_at,
    )


async def capital_available(session: SessionDep, on: date) -> Decimal:
    total = await session.scalar(select(func.sum(CapitalEntry.amount_cad)).where(CapitalEntry.value_date <= on))
    return Decimal(total or 0)


@router.post(
    "/entries",
    status_code=201,
    response_model=EntryOut,
    summary="Record a contribution or an adjustment (admin, fund manager)",
    responses=problem_responses(401, 403, 422),
)
async def add_entry(
    body: EntryIn, session: SessionDep, principal: Principal = require_roles(Role.admin, Role.fund_manager)
) -> EntryOut:
    entry = CapitalEntry(
        id=uuid.uuid4(),
        kind=body.kind,
        amount_cad=body.amount.amount,
        value_date=body.value_date,
        reference=body.reference,
        comment=body.comment,
        recorded_by=principal.key_id,
    )
    await record_entry(session, entry)
    await session.refresh(entry)
    return _out(entry)


@router.get(
    "",
    response_model=CapitalOut,
    summary="Capital available on a date (staff and funders)",
    responses=problem_responses(401, 403, 422),
    dependencies=[require_roles(*STAFF_ROLES, Role.funder)],
)
async def capital(
    session: SessionDep, as_of: Annotated[date | None, Query(description="default: today (UTC)")] = None
) -> CapitalOut:
    on = as_of or datetime.now(UTC).date()
    rows = await session.execute(
        select(CapitalEntry.kind, func.sum(CapitalEntry.amount_cad))
        .where(CapitalEntry.value_date <= on)
        .group_by(CapitalEntry.kind)
    )
    by_kind = {kind: Decimal(total) for kind, total in rows.all()}
    return CapitalOut(
        as_of=on,
        capital_available=Money.of(sum(by_kind.values(), Decimal(0)), "CAD"),
        by_kind={kind: Money.of(by_kind.get(kind, Decimal(0)), "CAD") for kind in KINDS},
    )


@router.get(
    "/entries",
    response_model=Page[EntryOut],
    summary="The ledger's entries, newest first (staff)",
    responses=problem_responses(401, 403, 422),
    dependencies=[require_roles(*STAFF_ROLES)],
)
async def entries(
    session: SessionDep,
    kind: Annotated[
        Literal["contribution", "fee_income", "claim_paid", "recovery", "adjustment"] | None, Query()
    ] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[EntryOut]:
    query = select(CapitalEntry)
    if kind is not None:
        query = query.where(CapitalEntry.kind == kind)
    rows = (
        await session.scalars(keyset(query, CapitalEntry.recorded_at, CapitalEntry.id, cursor=cursor, limit=limit))
    ).all()
    items, next_cursor = page_of(rows, limit, at="recorded_at")
    return Page[EntryOut](items=[_out(e) for e in items], next_cursor=next_cursor)
