import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.applications.policy.schemas import Purpose
from shared.money import Money, PositiveMoney


class Instrument(StrEnum):
    co_financing = "co_financing"
    guarantee = "guarantee"


APPLICATION_EXAMPLE: dict[str, Any] = {
    "business_id": "7d1c1c1e-2f1b-4d7e-9a51-3b2f0f4c9a10",
    "requested": {"amount": "15000000", "currency": "XOF"},
    "term_months": 24,
    "purpose": "equipment",
    "instruments": ["co_financing", "guarantee"],
    "lender_id": "0b7f2c1e-8f4a-4c55-9d1e-5a6b7c8d9e0f",
    "lender_share_pct": "60",
    "support_plan": "SUCO's agronomist visits monthly; bookkeeping training for the board in the first year.",
}


class ApplicationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [APPLICATION_EXAMPLE]})

    business_id: uuid.UUID
    requested: PositiveMoney = Field(description="the amount asked, in the lender's local currency")
    term_months: int = Field(ge=1, le=360)
    purpose: Purpose
    instruments: list[Instrument] = Field(min_length=1, max_length=2)
    lender_id: uuid.UUID = Field(description="the proposed local lender (as registered with the portfolio service)")
    lender_share_pct: Decimal = Field(ge=0, le=100, max_digits=5, decimal_places=2, description="the lender's share")
    support_plan: str = Field(min_length=10, max_length=10_000, description="the ICA's support plan")

    @field_validator("instruments")
    @classmethod
    def _distinct(cls, value: list[Instrument]) -> list[Instrument]:
        if len(set(value)) != len(value):
            raise ValueError("each instrument once")
        return value


class ApplicationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"term_months": 36}]})

    requested: PositiveMoney | None = None
    term_months: int | None = Field(None, ge=1, le=360)
    purpose: Purpose | None = None
    instruments: list[Instrument] | None = Field(None, min_length=1, max_length=2)
    lender_id: uuid.UUID | None = None
    lender_share_pct: Decimal | None = Field(None, ge=0, le=100, max_digits=5, decimal_places=2)
    support_plan: str | None = Field(None, min_length=10, max_length=10_000)

    @field_validator("instruments")
    @classmethod
    def _distinct(cls, value: list[Instrument] | None) -> list[Instrument] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each instrument once")
        return value


class Comment(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"comment": "please add the 2025 statements"}]}
    )

    comment: str | None = Field(None, max_length=5000)


class RequiredComment(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"comment": "please add the 2025 statements"}]}
    )

    comment: str = Field(min_length=3, max_length=5000)


class CriterionOut(BaseModel):
    name: str
    passed: bool
    reason: str


class ScreeningOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    policy_version: int
    passed: bool
    criteria: list[CriterionOut]
    screened_at: datetime


class TransitionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_status: str | None
    to_status: str
    actor_key_id: uuid.UUID | None
    actor_role: str
    comment: str | None
    at: datetime


class ApplicationOut(BaseModel):
    id: uuid.UUID
    ica_id: uuid.UUID
    business_id: uuid.UUID
    status: str
    requested: Money
    term_months: int
    purpose: str
    instruments: list[str]
    lender_id: uuid.UUID
    lender_share_pct: Decimal
    support_plan: str
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    decided_at: datetime | None
    allowed_actions: list[str] = Field(description="what the caller may do next")
    screening: ScreeningOut | None = Field(None, description="the latest screening")
