import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.applications.pipeline.schemas import Instrument
from shared.money import Money, PositiveMoney, minor_units


class Scores(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gender_equality: int = Field(ge=0, le=4)
    democratic_governance: int = Field(ge=0, le=4)
    environment: int = Field(ge=0, le=4)
    decent_income_social_responsibility: int = Field(ge=0, le=4)
    partnership_strength: int = Field(ge=0, le=4)


class ScorecardIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "scores": {
                        "gender_equality": 4,
                        "democratic_governance": 3,
                        "environment": 2,
                        "decent_income_social_responsibility": 3,
                        "partnership_strength": 3,
                    },
                    "comment": "women hold 5 of 9 board seats; AGM minutes seen",
                }
            ]
        },
    )

    scores: Scores
    comment: str | None = Field(None, max_length=5000)


class ScorecardOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    reviewer: str
    policy_version: int
    scores: dict[str, int]
    weights: dict[str, int]
    score: Decimal = Field(description="0-100: the sum of score / 4 x weight")
    minimum_score: int = 0
    sufficient: bool = False
    comment: str | None
    created_at: datetime


class ConflictIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "I sit on its board"}]})

    reason: str = Field(min_length=3, max_length=2000)


class ConflictOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    business_id: uuid.UUID
    member: str
    reason: str
    declared_at: datetime


class Decision(StrEnum):
    approve = "approve"
    reject = "reject"


class FinalTerms(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: PositiveMoney
    term_months: int = Field(ge=1, le=360)
    instruments: list[Instrument] = Field(min_length=1, max_length=2)
    lender_id: uuid.UUID
    fund_share_pct: Decimal | None = Field(
        None, gt=0, lt=100, max_digits=5, decimal_places=2, description="co-financing: the fund's share of the loan"
    )
    guarantee_coverage_pct: Decimal | None = Field(
        None, ge=25, le=75, max_digits=5, decimal_places=2, description="guarantee: share of the lender's loss covered"
    )
    conditions: list[str] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _instrument_terms(self) -> "FinalTerms":
        if len(set(self.instruments)) != len(self.instruments):
            raise ValueError("each instrument once")
        # one way to write the same terms, so that votes for the same terms are recognised as such
        self.amount = Money.of(
            self.amount.amount.quantize(Decimal(1).scaleb(-minor_units(self.amount.currency))), self.amount.currency
        )
        self.instruments = sorted(self.instruments)
        for name in ("fund_share_pct", "guarantee_coverage_pct"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.quantize(Decimal("0.01")))
        self.conditions = [" ".join(c.split()) for c in self.conditions]
        if (Instrument.co_financing in self.instruments) != (self.fund_share_pct is not None):
            raise ValueError("fund_share_pct is given for co-financing, and only then")
        if (Instrument.guarantee in self.instruments) != (self.guarantee_coverage_pct is not None):
            raise ValueError("guarantee_coverage_pct is given for a guarantee, and only then")
        return self


VOTE_EXAMPLE: dict[str, Any] = {
    "decision": "approve",
    "comment": "strong governance; the lender knows the cooperative",
    "terms": {
        "amount": {"amount": "15000000", "currency": "XOF"},
        "term_months": 24,
        "instruments": ["co_financing", "guarantee"],
        "lender_id": "0b7f2c1e-8f4a-4c55-9d1e-5a6b7c8d9e0f",
        "fund_share_pct": "40",
        "guarantee_coverage_pct": "50",
        "conditions": ["quarterly reports to the ICA"],
    },
}


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [VOTE_EXAMPLE]})

    decision: Decision
    comment: str = Field(min_length=3, max_length=5000)
    terms: FinalTerms | None = Field(None, description="required to approve: the final terms voted for")

    @model_validator(mode="after")
    def _terms_with_approval(self) -> "VoteIn":
        if (self.decision == Decision.approve) != (self.terms is not None):
            raise ValueError("an approval carries the final terms; a rejection carries none")
        return self


class VoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    voter: str
    decision: Decision
    comment: str
    terms: dict[str, Any] | None
    created_at: datetime


class VoteOutcome(BaseModel):
    vote: VoteOut
    application_status: str
    approvals: int
    rejections: int
    quorum: int
