import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.countries import CountryCode
from shared.money import CurrencyCode


class InstitutionType(StrEnum):
    bank = "bank"
    microfinance_institution = "microfinance_institution"
    credit_union = "credit_union"
    other = "other"


class LenderCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Crédit Mutuel du Sénégal",
                    "institution_type": "credit_union",
                    "country": "SN",
                    "currencies": ["XOF"],
                }
            ]
        },
    )

    name: str = Field(min_length=2, max_length=200)
    institution_type: InstitutionType
    country: CountryCode
    currencies: list[CurrencyCode] = Field(min_length=1, max_length=10, description="the currencies it lends in")

    @field_validator("currencies")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each currency once")
        return value


class LenderUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"active": False}]})

    name: str | None = Field(None, min_length=2, max_length=200)
    active: bool | None = None
    currencies: list[CurrencyCode] | None = Field(None, min_length=1, max_length=10)


class LenderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    institution_type: InstitutionType
    country: str
    currencies: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime


class SecretOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    retired_at: datetime | None


class SecretCreated(SecretOut):
    secret: str = Field(description="`whsec_...`: sign your pushes with it (shown this once)")


class LenderCreated(LenderOut):
    webhook_secret: SecretCreated
