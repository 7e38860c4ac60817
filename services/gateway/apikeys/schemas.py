import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.auth import ORGANIZATION_ROLES, Role


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "SUCO partner system",
                    "role": "ica",
                    "organization_id": "5b0c7f0e-3d0e-4f38-9a4a-0c2a8e7f1d11",
                    "expires_at": "2027-12-31T23:59:59Z",
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200, description="who or what will use the key")
    role: Role
    organization_id: uuid.UUID | None = Field(
        None,
        description="the ICA or lender the key acts for; required for `ica` and `lender`, refused otherwise",
    )
    holder: str | None = Field(
        None,
        max_length=320,
        description="the person holding the key (e.g. their e-mail). Maker-checker rules compare holders, so a "
        "person with an analyst key and a committee key cannot vote on what they reviewed; give staff keys one.",
    )
    expires_at: datetime | None = Field(None, description="timezone-aware; the key stops working then")
    rate_limit_per_second: float | None = Field(None, gt=0, le=100_000, description="default: gateway setting")
    rate_limit_burst: int | None = Field(None, gt=0, le=1_000_000, description="default: gateway setting")

    @model_validator(mode="after")
    def _organization_matches_role(self) -> "ApiKeyCreate":
        if self.role in ORGANIZATION_ROLES and self.organization_id is None:
            raise ValueError(f"a {self.role.value} key needs the organization_id it acts for")
        if self.role not in ORGANIZATION_ROLES and self.organization_id is not None:
            raise ValueError(f"a {self.role.value} key acts for the fund and takes no organization_id")
        if self.holder is not None:
            self.holder = self.holder.strip().lower() or None  # one person, however their name was typed
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("expires_at must carry a timezone, e.g. 2027-12-31T23:59:59Z")
        return self


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    role: Role
    organization_id: uuid.UUID | None
    prefix: str = Field(description="the first characters of the key, to recognise it")
    holder: str | None
    rate_limit_per_second: float | None
    rate_limit_burst: int | None
    expires_at: datetime | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the key itself: shown this once, stored only as a hash")
