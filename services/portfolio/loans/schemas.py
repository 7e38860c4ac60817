"""Request and response bodies of the loans API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from services.portfolio.schedules.generator import Frequency, Method
from shared.money import Money, PositiveMoney

Rate = Annotated[Decimal, Field(ge=0, le=100, decimal_places=4, description="nominal annual rate in percent")]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000)]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class TermsIn(BaseModel):
    """The schedule terms agreed with the lender, set before the first disbursement."""

    model_config = {
        "json_schema_extra": {
            "examples": [{"annual_rate_pct": "12", "frequency": "monthly", "method": "annuity", "grace_periods": 0}]
        }
    }

    annual_rate_pct: Rate
    frequency: Frequency
    method: Method
    grace_periods: int = Field(0, ge=0, le=59, description="interest-only periods at the start")
    first_due_date: date | None = Field(
        None, description="the first instalment's due date; by default one period after the first disbursement"
    )


class DisbursementIn(BaseModel):
    amount: PositiveMoney
    value_date: date
    first_due_date: date | None = Field(None, description="overrides the terms' first due date (first tranche only)")
    external_id: ExternalId | None = Field(None, description="the lender's transaction id, if it has one")


class PaymentIn(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [{"amount": {"amount": "888.49", "currency": "CAD"}, "value_date": "2026-11-27"}]
        }
    }

    amount: PositiveMoney
    value_date: date
    external_id: ExternalId | None = Field(
        None, description="the lender's transaction id: the same id is never counted twice (pushes included)"
    )
    comment: str | None = Field(None, max_length=2000)


class ChargeIn(BaseModel):
    kind: Literal["fee", "penalty"]
    amount: PositiveMoney
    value_date: date
    instalment: int = Field(ge=1, description="the instalment number it is charged on")
    comment: Reason


class ReversalIn(BaseModel):
    reason: Reason


class WriteOffIn(BaseModel):
    value_date: date
    reason: Reason


class RestructuringIn(BaseModel):
    effective_from: date
    annual_rate_pct: Rate
    frequency: Frequency
    method: Method
    periods: int = Field(ge=1, le=120, description="how many new instalments repay the rescheduled principal")
    first_due_date: date
    grace_periods: int = Field(0, ge=0, le=59)
    reason: Reason


class ParticipantOut(BaseModel):
    participant: str
    share_pct: Decimal


class TermsOut(BaseModel):
    annual_rate_pct: Decimal | None
    frequency: str | None
    method: str | None
    grace_periods: int
    first_due_date: date | None


class LoanOut(BaseModel):
    """A loan and its balances as of now."""

    id: uuid.UUID
    application_id: uuid.UUID
    business_id: uuid.UUID
    business_name: str | None
    ica_id: uuid.UUID
    lender_id: uuid.UUID
    country: str
    principal: Money = Field(description="the approved principal")
    term_months: int
    instruments: list[str]
    guarantee_coverage_pct: Decimal | None
    conditions: list[str]
    status: str = Field(description="pending_disbursement | active | repaid | written_off")
    restructured: bool
    arrears_state: str = Field(description="as last announced by the close of day: current | in_arrears | defaulted")
    opened_at: datetime
    closed_on: date | None
    terms: TermsOut
    disbursed: Money
    outstanding_principal: Money
    credit: Money = Field(description="overpayment held for the borrower")
    written_off_principal: Money
    participants: list[ParticipantOut]


class CadAmount(BaseModel):
    amount: Money | None = Field(description="null when the currency has no rate at all")
    rate: Decimal | None = Field(description="CAD per unit")
    rate_date: date | None
    stale: bool = Field(description="true when the rate is from an earlier day than asked")


class Position(BaseModel):
    """The loan as it stood on `as_of`: every transaction with a value date on or before it, none reversed, against
    the schedule version in force that day."""

    loan_id: uuid.UUID
    as_of: date
    currency: str
    schedule_version: int | None
    status: str = Field(description="the status that day")
    disbursed: Money
    principal_paid: Money
    interest_paid: Money
    outstanding_principal: Money = Field(description="disbursed principal not repaid nor written off")
    overdue_principal: Money
    overdue_interest: Money
    overdue_fees: Money
    overdue_penalties: Money
    credit: Money
    written_off_principal: Money
    recovered_after_write_off: Money
    days_past_due: int
    bucket: str = Field(description="current, 1-30, 31-60, 61-90, 91-180, over-180")
    in_default: bool = Field(description="days past due at or above the policy's default threshold")
    policy_version: int
    outstanding_principal_cad: CadAmount = Field(description="at the closing rate of the as-of date")


class InstalmentOut(BaseModel):
    number: int
    due_date: date
    principal: Money
    interest: Money
    fees: Money
    penalties: Money
    total_due: Money
    paid_principal: Money
    paid_interest: Money
    paid_fees: Money
    paid_penalties: Money
    paid: Money
    unpaid: Money
    status: str = Field(description="paid | partly_paid | unpaid (not yet due) | overdue")
    paid_on: date | None


class ScheduleOut(BaseModel):
    loan_id: uuid.UUID
    as_of: date
    version: int
    effective_from: date
    reason: str
    terms: dict[str, object]
    instalments: list[InstalmentOut]
    total_principal: Money
    total_interest: Money


class ScheduleVersionOut(BaseModel):
    model_config = {"from_attributes": True}

    version: int
    effective_from: date
    reason: str
    terms: dict[str, object]
    comment: str | None
    created_at: datetime


class TransactionOut(BaseModel):
    id: uuid.UUID
    kind: str
    amount: Money
    value_date: date
    instalment: int | None
    external_id: str | None
    source: str
    push_id: uuid.UUID | None
    comment: str | None
    split: dict[str, str]
    allocation: dict[str, str] | None = Field(description="how a payment was allocated when it was applied")
    outstanding_after: Money
    recorded_at: datetime
    reversed_at: datetime | None
    reversal_reason: str | None


class ArrearsOut(BaseModel):
    model_config = {"from_attributes": True}

    as_of: date
    days_past_due: int
    bucket: str
    state: str


class CloseOfDayIn(BaseModel):
    as_of: date = Field(description="the day to close (it must be over: today or earlier)")


class CloseOfDayOut(BaseModel):
    as_of: date
    loans: int = Field(description="loans read")
    events: int = Field(description="threshold crossings announced by this run")
    runs: int = Field(description="how many times this date has been closed")
    policy_version: int
    failed: int = Field(0, description="loans that could not be read (logged for staff); the others are closed")


class PolicyIn(BaseModel):
    arrears_dpd: int = Field(ge=1, le=365)
    default_dpd: int = Field(ge=1, le=3650)
    comment: Reason


class PolicyOut(BaseModel):
    model_config = {"from_attributes": True}

    version: int
    arrears_dpd: int
    default_dpd: int
    comment: str | None
    created_at: datetime
