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
