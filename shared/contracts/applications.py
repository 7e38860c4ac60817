"""Events the applications service announces."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel

from shared.events.contracts import event_contract


class BusinessFactsV1(BaseModel):
    reported_on: date
    members_total: int
    members_women: int
    board_seats_total: int
    board_seats_women: int
    employees_total: int
    employees_women: int
    senior_managers_total: int
    senior_managers_women: int
    women_ownership_pct: int | None
    general_assembly_last_12_months: bool
    board_elected_by_members: bool
    one_member_one_vote: bool
    environmental_practices: list[str]


class BusinessSnapshotV1(BaseModel):
    """The whole business as it stands after the change: consumers upsert it."""

    business_id: uuid.UUID
    ica_id: uuid.UUID
    name: str
    legal_form: str
    country: str
    sector: str
    year_founded: int
    facts: BusinessFactsV1


@event_contract("business.registered", version=1)
class BusinessRegisteredV1(BusinessSnapshotV1):
    pass


@event_contract("business.updated", version=1)
class BusinessUpdatedV1(BusinessSnapshotV1):
    pass


class ApplicationMovedV1(BaseModel):
    """An application changed status. Every status event carries these."""

    application_id: uuid.UUID
    ica_id: uuid.UUID
    business_id: uuid.UUID
    from_status: str | None
    to_status: str
    comment: str | None = None


class CriterionV1(BaseModel):
    name: str
    passed: bool
    reason: str


@event_contract("application.submitted", version=1)
class ApplicationSubmittedV1(ApplicationMovedV1):
    amount: str
    currency: str
    term_months: int
    purpose: str
    instruments: list[str]
    lender_id: uuid.UUID


@event_contract("application.screened", version=1)
class ApplicationScreenedV1(ApplicationMovedV1):
    passed: bool
    policy_version: int
    criteria: list[CriterionV1]


@event_contract("application.sent_to_committee", version=1)
class ApplicationSentToCommitteeV1(ApplicationMovedV1):
    """The analyst scored it and sent it on: from `under_review` to `committee`."""

    score: str


@event_contract("application.rejected", version=1)
class ApplicationRejectedV1(ApplicationMovedV1):
    reasons: list[str]


@event_contract("application.returned", version=1)
class ApplicationReturnedV1(ApplicationMovedV1):
    pass


@event_contract("application.withdrawn", version=1)
class ApplicationWithdrawnV1(ApplicationMovedV1):
    pass


class FinalTermsV1(BaseModel):
    amount: str
    currency: str
    term_months: int
    instruments: list[str]
    lender_id: uuid.UUID
    fund_share_pct: str | None
    guarantee_coverage_pct: str | None
    conditions: list[str]


@event_contract("application.approved", version=1)
class ApplicationApprovedV1(ApplicationMovedV1):
    """Opens the loan (portfolio) and, where asked, the guarantee (guarantees); carries what they need."""

    terms: FinalTermsV1
    policy_version: int
    business: BusinessSnapshotV1
