"""Authentication of the gateway's own routes (admin API) with the same key store and limits as the proxy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from services.gateway.keystore import KeyStore, bearer_from_headers
from services.gateway.ratelimit import RateLimiter
from shared.auth import Principal, Role
from shared.problems import Forbidden, Problem


def require_gateway_roles(*roles: Role) -> Callable[[Request, Response], Awaitable[Principal]]:
    allowed = frozenset(roles)

    async def dependency(request: Request, response: Response) -> Principal:
        store: KeyStore = request.app.state.keystore
        limiter: RateLimiter = request.app.state.limiter
        key = await store.authenticate(
            bearer_from_headers(request.headers.get("authorization"), request.headers.get("x-api-key"))
        )
        decision = limiter.take(key.principal.key_id, key.rate_per_second, key.burst)
        headers = {k.decode(): v.decode() for k, v in decision.headers()}
        if not decision.allowed:
            raise Problem("rate limit exceeded", status=429, slug="rate-limited", headers=headers)
        response.headers.update(headers)
        if key.principal.role not in allowed:
            raise Forbidden(
                f"role {key.principal.role.value!r} may not call this; allowed: "
                + ", ".join(sorted(r.value for r in allowed))
            )
        return key.principal

    return dependency
