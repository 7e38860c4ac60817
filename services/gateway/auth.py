"""Authentication of the gateway's own routes (admin API) with the same key store and limits as the proxy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from services.gateway.keystore import AuthenticatedKey, KeyStore, bearer_from_headers
from services.gateway.ratelimit import Decision, RateLimiter
from shared.auth import Principal, Role
from shared.problems import Forbidden, Problem


async def admit(
    store: KeyStore, limiter: RateLimiter, authorization: str | None, x_api_key: str | None
) -> tuple[AuthenticatedKey, Decision]:
    """Authenticate the API key and take a token from its bucket: 401, or 429 with the rate headers."""
    key = await store.authenticate(bearer_from_headers(authorization, x_api_key))
    decision = limiter.take(key.principal.key_id, key.rate_per_second, key.burst)
    if not decision.allowed:
        raise Problem(
            f"rate limit of {decision.limit} requests (burst) exceeded; retry in {decision.retry_after} s",
            status=429,
            title="Too Many Requests",
            slug="rate-limited",
            headers={k.decode(): v.decode() for k, v in decision.headers()},
        )
    return key, decision


def require_gateway_roles(*roles: Role) -> Callable[[Request, Response], Awaitable[Principal]]:
    allowed = frozenset(roles)

    async def dependency(request: Request, response: Response) -> Principal:
        key, decision = await admit(
            request.app.state.keystore,
            request.app.state.limiter,
            request.headers.get("authorization"),
            request.headers.get("x-api-key"),
        )
        response.headers.update({k.decode(): v.decode() for k, v in decision.headers()})
        if key.principal.role not in allowed:
            raise Forbidden(
                f"role {key.principal.role.value!r} may not call this; allowed: "
                + ", ".join(sorted(r.value for r in allowed))
            )
        return key.principal

    return dependency
