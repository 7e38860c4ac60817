"""Events the portfolio service announces. Amounts are strings in the loan's currency (`currency`), exact to its
minor units; `split` gives the pro-rata part of each participant (`fund`, `lender`), summing exactly."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel

from shared.events.contracts import event_contract


class StandingV1(BaseModel):
    """How the loan stood from `on` (a value date) until the next step — what a report as of any date needs.

    Days past due as of D (on or after `on`, before the next step) = D − `overdue_from` when `overdue_from` < D,
    else 0 (DOMAIN.md: a due date of D is not yet overdue on D); for a written-off loan they stop at `on`."""

    on: date
    outstanding_principal: str  # disbursed, not repaid nor written off
    overdue_from: date | None  # due date of the oldest instalment with principal or interest unpaid (due or not)
    status: str  # pending_disbursement | active | repaid | written_off


class LoanFactsV1(BaseModel):
    """Every loan event carries these, so a consumer never needs to call back to place it.

    `standing` is the loan's standing at every value date, from the first step's date on, as the books now read:
    it replaces whatever a consumer knew of the loan from that date. A change in value-date order brings one step;
    a backdated one, a reversal or a restructuring brings the steps it changed. Empty when the event changes no
    figure of the past (an arrears crossing, say)."""

    loan_id: uuid.UUID
    application_id: uuid.UUID
    lender_id: uuid.UUID
    business_id: uuid.UUID
    ica_id: uuid.UUID
    country: str
    currency: str
    outstanding_principal: str  # after the change
    status: str
    standing: list[StandingV1] = []


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


@event_contract("loan.charged", version=1)
class LoanChargedV1(LoanFactsV1):
    """A fee or penalty charged on an instalment: paid before its interest and principal, so later payments may
    allocate differently (`standing`)."""

    transaction_id: uuid.UUID
    kind: str  # fee | penalty
    amount: str
    value_date: date
    instalment: int


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


@event_contract("fx.rate_recorded", version=1)
class FxRateRecordedV1(BaseModel):
    """A day's closing rate, recorded (never changed afterwards). XOF and XAF are not announced: they derive from
    EUR at `shared.money.PEGGED_TO_EUR`. A date with no rate of its own takes the latest earlier one (stale)."""

    currency: str
    rate_date: date
    cad_per_unit: str
    source: str
