import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EndpointIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"url": "https://partners.suco.org/fisiq/notifications"}]}
    )

    url: str = Field(min_length=8, max_length=2000, description="HTTPS URL that receives signed POSTs")


class EndpointOut(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    url: str
    active: bool
    created_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="`whsec_...`: verify our signatures with it (shown this once)")


class AttemptOut(BaseModel):
    attempt: int
    attempted_at: datetime
    response_status: int | None
    error: str | None
    duration_ms: int | None


class DeliveryOut(BaseModel):
    id: uuid.UUID = Field(description="the `webhook-id` header: the same on every attempt")
    endpoint_id: uuid.UUID
    url: str
    event_type: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: list[AttemptOut]
