"""Events the guarantees service announces."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel

from shared.events.contracts import event_contract


class GuaranteeFactsV1(BaseModel):
    guarantee_id: uuid.UUID
    loan_id: uuid.UUID
    lender_id: uuid.UUID
    business_id: uuid.UUID
    country: str
    currency: str
    coverage_pct: str
    cap_cad: str
    outstanding_principal: str  # the loan's, in its currency
    status: str


@event_contract("guarantee.issued", version=1)
class GuaranteeIssuedV1(GuaranteeFactsV1):
    facility_id: uuid.UUID
    facility_version: int
    policy_version: int
    exposure_cad_at_issue: str


@event_contract("guarantee.refused", version=1)
class GuaranteeRefusedV1(GuaranteeFactsV1):
    reason: str


@event_contract("guarantee.exposure_changed", version=1)
class GuaranteeExposureChangedV1(GuaranteeFactsV1):
    previous_outstanding: str


@event_contract("guarantee.released", version=1)
class GuaranteeReleasedV1(GuaranteeFactsV1):
    pass


@event_contract("guarantee.expired", version=1)
class GuaranteeExpiredV1(GuaranteeFactsV1):
    """The loan defaulted and its claim deadline passed with no claim filed: the fund owes nothing on it any more."""

    expired_on: date
    default_date: date
    claim_deadline: date


class ClaimFactsV1(BaseModel):
    claim_id: uuid.UUID
    guarantee_id: uuid.UUID
    loan_id: uuid.UUID
    lender_id: uuid.UUID
    status: str
    payout_cad: str
    actor: str


@event_contract("claim.filed", version=1)
class ClaimFiledV1(ClaimFactsV1):
    default_date: str
    amount_in_default: str
    currency: str


@event_contract("claim.validated", version=1)
class ClaimValidatedV1(ClaimFactsV1):
    pass


@event_contract("claim.paid", version=1)
class ClaimPaidV1(ClaimFactsV1):
    paid_on: str


@event_contract("claim.rejected", version=1)
class ClaimRejectedV1(ClaimFactsV1):
    reason: str


@event_contract("recovery.shared", version=1)
class RecoverySharedV1(BaseModel):
    claim_id: uuid.UUID
    guarantee_id: uuid.UUID
    loan_id: uuid.UUID
    amount: str
    currency: str
    value_date: str
    fund_share_cad: str
    recouped_cad: str
    payout_cad: str


@event_contract("fee.invoiced", version=1)
class FeeInvoicedV1(BaseModel):
    invoice_id: uuid.UUID
    lender_id: uuid.UUID
    quarter: str
    currency: str
    amount: str


@event_contract("facility.terms_set", version=1)
class FacilityTermsSetV1(BaseModel):
    """A facility was opened (version 1) or its terms changed (a new version): the ceiling on the lender's
    guaranteed exposure, in CAD, from `valid_from` to `valid_to` (both included). Earlier versions stay as they were;
    the version in force is the latest one announced."""

    facility_id: uuid.UUID
    lender_id: uuid.UUID
    version: int
    coverage_pct: str
    ceiling_cad: str
    max_cover_per_loan_cad: str
    valid_from: date
    valid_to: date


@event_contract("capital.entry_recorded", version=1)
class CapitalEntryRecordedV1(BaseModel):
    """A movement of the guarantee fund's capital (CAD): contribution, adjustment, fee income, claim paid (negative),
    recovery. Capital available on a date = the sum of the entries dated on or before it."""

    entry_id: uuid.UUID
    kind: str  # contribution | fee_income | claim_paid | recovery | adjustment
    amount_cad: str  # signed
    value_date: date
