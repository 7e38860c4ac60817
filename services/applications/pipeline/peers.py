"""What screening asks other services, over HTTP, and the contracts of those calls.

- portfolio (owner of FX rates): `GET /internal/fx/cad-equivalent?amount=&currency=&on=` →
  `{"amount_cad": "1234.56", "rate": "0.001523", "rate_date": "2026-11-27", "stale": false}`; 404 when the
  currency has no rate at all.
- guarantees (owner of facilities and limits): `GET /internal/guarantees/room?lender_id=&business_id=&country=
  &amount=&currency=` → `{"room": true}` or `{"room": false, "reason": "facility ceiling: ..."}`.

Both are internal routes authenticated with a service token (`shared/peers.py`). A call that cannot be answered
makes screening unavailable (503, nothing changes) rather than failing the application on the fund's own missing
data. Unit tests replace `app.state.peers` with fakes that honour the same contracts; `tests/e2e/` uses the real
services.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from shared.peers import CadEquivalent, InternalClient


@dataclass(frozen=True)
class GuaranteeRoom:
    room: bool
    reason: str | None = None


class Peers(Protocol):
    async def cad_equivalent(self, amount: Decimal, currency: str, on: date) -> CadEquivalent | None: ...

    async def guarantee_room(
        self, *, lender_id: uuid.UUID, business_id: uuid.UUID, country: str, amount: Decimal, currency: str
    ) -> GuaranteeRoom: ...


class HttpPeers:
    def __init__(self, *, secret: str, caller: str = "applications", timeout: float = 5.0) -> None:
        self.client = InternalClient(secret=secret, caller=caller, purpose="screening", timeout=timeout)

    async def cad_equivalent(self, amount: Decimal, currency: str, on: date) -> CadEquivalent | None:
        return await self.client.cad_equivalent(amount, currency, on)

    async def guarantee_room(
        self, *, lender_id: uuid.UUID, business_id: uuid.UUID, country: str, amount: Decimal, currency: str
    ) -> GuaranteeRoom:
        response = await self.client.get(
            "guarantees",
            "/internal/guarantees/room",
            {
                "lender_id": str(lender_id),
                "business_id": str(business_id),
                "country": country,
                "amount": format(amount, "f"),
                "currency": currency,
            },
        )
        try:
            body = response.json()
            return GuaranteeRoom(room=bool(body["room"]), reason=body.get("reason"))
        except (ValueError, KeyError, TypeError) as exc:
            raise self.client.unexpected("guarantees") from exc
