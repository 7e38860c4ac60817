"""What screening asks other services, over HTTP, and the contracts of those calls.

- portfolio (owner of FX rates): `GET /internal/fx/cad-equivalent?amount=&currency=&on=` →
  `{"amount_cad": "1234.56", "rate": "0.001523", "rate_date": "2026-11-27", "stale": false}`; 404 when the
  currency has no rate at all.
- guarantees (owner of facilities and limits): `GET /internal/guarantees/room?lender_id=&business_id=&country=
  &amount=&currency=` → `{"room": true}` or `{"room": false, "reason": "facility ceiling: ..."}`.

Both are internal routes authenticated with a service token. Until those services serve them, a call that
cannot be answered makes screening unavailable (503, nothing changes) rather than failing the application on the
fund's own missing data. Tests replace `app.state.peers` with fakes that honour the same contracts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

import httpx

from shared.auth import SERVICE_HEADER, mint_service_token
from shared.problems import ServiceUnavailable
from shared.settings import peer_url


@dataclass(frozen=True)
class CadEquivalent:
    amount_cad: Decimal
    rate: Decimal
    rate_date: date
    stale: bool


@dataclass(frozen=True)
class GuaranteeRoom:
    room: bool
    reason: str | None = None


class Peers(Protocol):
    async def cad_equivalent(self, amount: Decimal, currency: str, on: date) -> CadEquivalent | None: ...

    async def guarantee_room(
        self, *, lender_id: uuid.UUID, business_id: uuid.UUID, country: str, amount: Decimal, currency: str
    ) -> GuaranteeRoom: ...


def _unexpected(service: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"screening needs the {service} service, which cannot answer as agreed yet; nothing was changed",
        headers={"Retry-After": "30"},
    )


class HttpPeers:
    def __init__(self, *, secret: str, caller: str = "applications", timeout: float = 5.0) -> None:
        self.secret = secret
        self.caller = caller
        self.timeout = timeout

    async def _get(self, service: str, path: str, params: dict[str, str]) -> httpx.Response:
        token = mint_service_token(self.caller, secret=self.secret, audience=service)
        try:
            async with httpx.AsyncClient(base_url=peer_url(service), timeout=self.timeout) as client:
                response = await client.get(path, params=params, headers={SERVICE_HEADER: token})
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"screening needs the {service} service, which did not answer; nothing was changed, retry later",
                headers={"Retry-After": "30"},
            ) from exc
        expected_404 = service == "portfolio" and "problem" in response.headers.get("content-type", "")
        if response.status_code != 200 and not (response.status_code == 404 and expected_404):
            raise _unexpected(service)
        return response

    async def cad_equivalent(self, amount: Decimal, currency: str, on: date) -> CadEquivalent | None:
        response = await self._get(
            "portfolio",
            "/internal/fx/cad-equivalent",
            {"amount": format(amount, "f"), "currency": currency, "on": on.isoformat()},
        )
        if response.status_code == 404:
            return None
        try:
            body = response.json()
            return CadEquivalent(
                amount_cad=Decimal(body["amount_cad"]),
                rate=Decimal(body["rate"]),
                rate_date=date.fromisoformat(body["rate_date"]),
                stale=bool(body.get("stale", False)),
            )
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            raise _unexpected("portfolio") from exc

    async def guarantee_room(
        self, *, lender_id: uuid.UUID, business_id: uuid.UUID, country: str, amount: Decimal, currency: str
    ) -> GuaranteeRoom:
        response = await self._get(
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
            raise _unexpected("guarantees") from exc
