"""Event envelope and versioned payload contracts, shared so that producer and consumers agree.

A payload contract is a Pydantic model registered under `(type, version)`. Producers can only publish a type that
has a contract (the payload is validated before it is written); consumers parse payloads with the same model.
A breaking change is a new version registered beside the old one, never an edit of a published contract.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

Payload = TypeVar("Payload", bound=BaseModel)
_CONTRACTS: dict[tuple[str, int], type[BaseModel]] = {}


def event_contract(event_type: str, version: int = 1) -> Any:
    """Class decorator: register a payload model for an event type and version."""

    def register(model: type[Payload]) -> type[Payload]:
        key = (event_type, version)
        existing = _CONTRACTS.get(key)
        if existing is not None and existing is not model:
            raise ValueError(f"event contract {event_type} v{version} is already registered")
        _CONTRACTS[key] = model
        return model

    return register


def contract_for(event_type: str, version: int) -> type[BaseModel]:
    try:
        return _CONTRACTS[(event_type, version)]
    except KeyError:
        raise LookupError(f"no contract for event {event_type} v{version}") from None


class EventEnvelope(BaseModel):
    """What every event carries around its payload, as written in the outbox and served by the feed."""

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID
    type: str = Field(examples=["application.approved"])
    schema_version: int = 1
    aggregate_type: str = Field(examples=["application"])
    aggregate_id: str
    aggregate_seq: int = Field(description="1, 2, 3... per aggregate, in the order the producer committed them")
    occurred_at: datetime
    producer: str
    request_id: str | None = None
    payload: dict[str, Any]
    position: int | None = Field(None, description="place in the producer's feed, stamped after commit")

    def parse(self, model: builtins.type[Payload]) -> Payload:
        return model.model_validate(self.payload)
