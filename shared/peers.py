"""Calling another service's internal API (`/internal/...`), authenticated with a service token.

A peer that does not answer, or answers outside its contract, is a 503 for the caller's own client ("retry
later; nothing was changed"), never a guess. Contracts: docs/applications.md (peers) and each service's docs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

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


class InternalClient:
    def __init__(self, *, secret: str, caller: str, purpose: str, timeout: float = 5.0) -> None:
        self.secret, self.caller, self.purpose, self.timeout = secret, caller, purpose, timeout

    def unexpected(self, service: str) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"{self.purpose} needs the {service} service, which cannot answer as agreed yet; nothing was changed",
            headers={"Retry-After": "30"},
        )

    async def get(
        self, service: str, path: str, params: dict[str, str], *, problem_404: bool = False
    ) -> httpx.Response:
        """200, or (with `problem_404`) a 404 problem the contract allows; anything else is a 503 here."""
        return await self._call("GET", service, path, params=params, problem_404=problem_404)

    async def post(self, service: str, path: str, body: dict[str, Any]) -> httpx.Response:
        """A read that takes a body (a list of ids, say): 200, anything else is a 503 here."""
        return await self._call("POST", service, path, json=body)

    async def _call(
        self,
        method: str,
        service: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        problem_404: bool = False,
    ) -> httpx.Response:
        token = mint_service_token(self.caller, secret=self.secret, audience=service)
        try:
            async with httpx.AsyncClient(base_url=peer_url(service), timeout=self.timeout) as client:
                response = await client.request(method, path, params=params, json=json, headers={SERVICE_HEADER: token})
        except httpx.HTTPError as exc:
            raise self._unreachable(service) from exc
        except AttributeError as exc:
            # anyio asks a socket the peer has just closed for its address while the connection opens (the peer
            # died mid-connect, seen under `make load`): the peer did not answer, like any refused connection
            if "getpeername" not in str(exc):
                raise
            raise self._unreachable(service) from exc
        allowed_404 = problem_404 and "problem" in response.headers.get("content-type", "")
        if response.status_code != 200 and not (response.status_code == 404 and allowed_404):
            raise self.unexpected(service)
        return response

    def _unreachable(self, service: str) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"{self.purpose} needs the {service} service, which did not answer; nothing was changed, retry later",
            headers={"Retry-After": "30"},
        )

    async def cad_equivalent(self, amount: Decimal, currency: str, on: date) -> CadEquivalent | None:
        """The portfolio's FX: `amount` in CAD at the closing rate of `on` (or the latest earlier one, `stale`);
        None when the currency has no rate at all."""
        response = await self.get(
            "portfolio",
            "/internal/fx/cad-equivalent",
            {"amount": format(amount, "f"), "currency": currency, "on": on.isoformat()},
            problem_404=True,
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
            raise self.unexpected("portfolio") from exc
