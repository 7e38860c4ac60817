import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.countries import CountryCode


class LegalForm(StrEnum):
    cooperative = "cooperative"
    mutual = "mutual"
    association = "association"
    non_profit_social_enterprise = "non_profit_social_enterprise"
    private_company = "private_company"
    sole_proprietorship = "sole_proprietorship"
    public_entity = "public_entity"
    other = "other"


PROFILE_EXAMPLE: dict[str, Any] = {
    "reported_on": "2026-10-31",
    "members_total": 412,
    "members_women": 268,
    "board_seats_total": 9,
    "board_seats_women": 5,
    "employees_total": 14,
    "employees_women": 6,
    "senior_managers_total": 3,
    "senior_managers_women": 2,
    "women_ownership_pct": 65,
    "general_assembly_last_12_months": True,
    "board_elected_by_members": True,
    "one_member_one_vote": True,
    "environmental_practices": ["agroforestry", "composting"],
}


class ProfileFacts(BaseModel):
    """The facts funders ask about, as they stood on `reported_on` (IRIS+ codes in docs)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [PROFILE_EXAMPLE]})

    reported_on: date = Field(default_factory=lambda: datetime.now(UTC).date(), description="the facts' date")
    members_total: int = Field(ge=0, le=10_000_000)
    members_women: int = Field(ge=0, le=10_000_000)
    board_seats_total: int = Field(ge=0, le=1000)
    board_seats_women: int = Field(ge=0, le=1000)
    employees_total: int = Field(ge=0, le=1_000_000, description="permanent employees (OI8869)")
    employees_women: int = Field(ge=0, le=1_000_000, description="permanent employees who are women (OI6213)")
    senior_managers_total: int = Field(0, ge=0, le=10_000)
    senior_managers_women: int = Field(0, ge=0, le=10_000)
    women_ownership_pct: int | None = Field(None, ge=0, le=100, description="share owned by women, when known")
    general_assembly_last_12_months: bool
    board_elected_by_members: bool
    one_member_one_vote: bool
    environmental_practices: list[str] = Field(default_factory=list, max_length=30)

    @model_validator(mode="after")
    def _parts_within_totals(self) -> "ProfileFacts":
        for part, total in (
            ("members_women", "members_total"),
            ("board_seats_women", "board_seats_total"),
            ("employees_women", "employees_total"),
            ("senior_managers_women", "senior_managers_total"),
        ):
            if getattr(self, part) > getattr(self, total):
                raise ValueError(f"{part} ({getattr(self, part)}) cannot exceed {total} ({getattr(self, total)})")
        if self.reported_on > datetime.now(UTC).date():
            raise ValueError("reported_on cannot be in the future")
        return self


class BusinessCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Coopérative des productrices de karité de Thiès",
                    "legal_form": "cooperative",
                    "country": "SN",
                    "sector": "agriculture: shea butter",
                    "year_founded": 2014,
                    "profile": PROFILE_EXAMPLE,
                }
            ]
        },
    )

    name: str = Field(min_length=2, max_length=200)
    legal_form: LegalForm
    country: CountryCode
    sector: str = Field(min_length=2, max_length=100)
    year_founded: int = Field(ge=1800)
    ica_id: uuid.UUID | None = Field(None, description="staff only: the ICA it is a partner of (an ICA key: itself)")
    profile: ProfileFacts

    @model_validator(mode="after")
    def _not_founded_in_the_future(self) -> "BusinessCreate":
        if self.year_founded > datetime.now(UTC).year:
            raise ValueError("year_founded cannot be in the future")
        return self


class BusinessUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"sector": "agriculture: cashew"}]})

    name: str | None = Field(None, min_length=2, max_length=200)
    legal_form: LegalForm | None = None
    sector: str | None = Field(None, min_length=2, max_length=100)


class ProfileOut(ProfileFacts):
    model_config = ConfigDict(from_attributes=True, extra="ignore")

    id: int
    recorded_at: datetime


class BusinessOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    ica_id: uuid.UUID
    name: str
    legal_form: LegalForm
    country: str
    sector: str
    year_founded: int
    created_at: datetime
    updated_at: datetime
    profile: ProfileOut | None = Field(None, description="the latest reported facts")
