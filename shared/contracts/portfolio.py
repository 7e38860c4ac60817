"""Events the portfolio service announces. Amounts are strings in the loan's currency (`currency`), exact to its
minor units; `split` gives the pro-rata part of each participant (`fund`, `lender`), summing exactly."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel

from shared.events.contracts import event_contract


class LoanFactsV1(BaseModel):
    """Every loan event carries these, so a consumer never needs to call back to place it."""

    loan_id: uuid.UUID
    application_id: uuid.UUID
    lender_id: uuid.UUID
    business_id: uuid.UUID
    ica_id: uuid.UUID
    country: str
    currency: str
    outstanding_principal: str  # after the change
    status: str


@event_contract("loan.opened", version=1)
class LoanOpenedV1(LoanFactsV1):
    principal: str
    term_months: int
    instruments: list[str]
    guarantee_coverage_pct: str | None
    shares: dict[str, str]


@event_contract("loan.disbursed", version=1)
class LoanDisbursedV1(LoanFactsV1):
    transaction_id: uuid.UUID
    amount: str
    value_date: date
    split: dict[str, str]
    disbursed_total: str
    schedule_version: int


class AllocationV1(BaseModel):
    penalties: str
    fees: str
    interest: str
    principal: str
    credit: str
    recovered: str


class PaymentV1(LoanFactsV1):
    transaction_id: uuid.UUID
    external_id: str | None  # the lender's transaction id
    amount: str
    value_date: date
    allocation: AllocationV1
    split: dict[str, str]


@event_contract("loan.repayment_applied", version=1)
class RepaymentAppliedV1(PaymentV1):
    pass


@event_contract("loan.recovery_received", version=1)
class RecoveryReceivedV1(PaymentV1):
    """Money recovered on a defaulted or written-off loan (`allocation.recovered` after a write-off)."""


@event_contract("loan.repayment_reversed", version=1)
class RepaymentReversedV1(LoanFactsV1):
    transaction_id: uuid.UUID
    kind: str
    amount: str
    value_date: date
    reason: str


class ArrearsV1(LoanFactsV1):
    as_of: date
    days_past_due: int
    bucket: str
    policy_version: int


@event_contract("loan.in_arrears", version=1)
class LoanInArrearsV1(ArrearsV1):
    pass


@event_contract("loan.defaulted", version=1)
class LoanDefaultedV1(ArrearsV1):
    pass


@event_contract("loan.cured", version=1)
class LoanCuredV1(ArrearsV1):
    pass


@event_contract("loan.restructured", version=1)
class LoanRestructuredV1(LoanFactsV1):
    effective_from: date
    schedule_version: int
    reason: str


@event_contract("loan.written_off", version=1)
class LoanWrittenOffV1(LoanFactsV1):
    value_date: date
    written_off_principal: str
    reason: str


@event_contract("loan.repaid", version=1)
class LoanRepaidV1(LoanFactsV1):
    value_date: date
