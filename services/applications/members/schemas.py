import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from shared.countries import CountryCode


class IcaCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "SUCO", "country": "CA", "contact_email": "fisiq@suco.org"}]},
    )

    name: str = Field(min_length=2, max_length=200)
    country: CountryCode = "CA"
    contact_email: EmailStr | None = None


class IcaUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"active": False}]})

    name: str | None = Field(None, min_length=2, max_length=200)
    active: bool | None = Field(None, description="an inactive member cannot submit applications")
    contact_email: EmailStr | None = None


class IcaOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    country: str
    active: bool
    contact_email: str | None
    created_at: datetime
    updated_at: datetime
