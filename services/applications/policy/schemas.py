"""The origination policy: every threshold of screening, scoring and committee is data, versioned."""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.applications.partners.schemas import LegalForm


class Purpose(StrEnum):
    crop_financing = "crop_financing"
    equipment = "equipment"
    development_expansion = "development_expansion"
    consolidation_restructuring = "consolidation_restructuring"
    working_capital = "working_capital"
    other = "other"


class ScorecardWeights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gender_equality: int = Field(25, ge=0, le=100)
    democratic_governance: int = Field(25, ge=0, le=100)
    environment: int = Field(20, ge=0, le=100)
    decent_income_social_responsibility: int = Field(15, ge=0, le=100)
    partnership_strength: int = Field(15, ge=0, le=100)

    @model_validator(mode="after")
    def _sum_to_100(self) -> "ScorecardWeights":
        total = sum(self.model_dump().values())
        if total != 100:
            raise ValueError(f"scorecard weights must sum to 100, not {total}")
        return self


class PolicyRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eligible_legal_forms: list[LegalForm] = Field(
        default_factory=lambda: [
            LegalForm.cooperative,
            LegalForm.mutual,
            LegalForm.association,
            LegalForm.non_profit_social_enterprise,
        ],
        min_length=1,
    )
    eligible_m49_regions: list[str] = Field(
        default_factory=lambda: ["002", "142", "419"],
        min_length=1,
        description="Africa, Asia, Latin America & Caribbean",
    )
    minimum_age_years: int = Field(2, ge=0, le=50, description="no start-ups")
    eligible_purposes: list[Purpose] = Field(
        default_factory=lambda: [
            Purpose.crop_financing,
            Purpose.equipment,
            Purpose.development_expansion,
            Purpose.consolidation_restructuring,
        ],
        min_length=1,
    )
    amount_min_cad: Decimal = Field(Decimal("5000"), ge=0)
    amount_max_cad: Decimal = Field(Decimal("250000"), gt=0)
    term_min_months: int = Field(3, ge=1)
    term_max_months: int = Field(60, ge=1, le=360)
    scorecard_weights: ScorecardWeights = Field(default_factory=ScorecardWeights)
    minimum_score: int = Field(50, ge=0, le=100, description="below it, an application cannot go to committee")
    committee_quorum: int = Field(2, ge=1, le=20)

    @model_validator(mode="after")
    def _ranges(self) -> "PolicyRules":
        if self.amount_min_cad > self.amount_max_cad:
            raise ValueError("amount_min_cad cannot exceed amount_max_cad")
        if self.term_min_months > self.term_max_months:
            raise ValueError("term_min_months cannot exceed term_max_months")
        return self


class PolicyPublish(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"note": "quorum of 3 from 2027", "rules": {"committee_quorum": 3, "minimum_score": 55}}]
        },
    )

    note: str = Field(min_length=3, max_length=500, description="why this version")
    rules: dict[str, Any] = Field(
        description="the rules to change; every rule not named keeps its value from the version in force"
    )


class PolicyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    note: str
    rules: PolicyRules
    published_at: datetime
