"""Who is calling: the principal the gateway authenticated, and the checks routes make on it.

The gateway authenticates the API key and forwards the principal (key id, role, organization) to services as a
short-lived token signed with the internal secret that only the gateway and the services hold (HS256 JWT in the
`X-Fisiq-Principal` header, audience = the service's name). A request sent straight to a service port with
hand-made principal headers carries no valid signature and is refused with 401.
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from shared.problems import Forbidden, Unauthorized

PRINCIPAL_HEADER = "x-fisiq-principal"
TOKEN_ISSUER = "fisiq-gateway"  # noqa: S105 - an issuer name, not a secret


class Role(StrEnum):
    admin = "admin"
    analyst = "analyst"
    committee = "committee"
    fund_manager = "fund_manager"
    ica = "ica"
    lender = "lender"
    funder = "funder"


STAFF_ROLES = frozenset({Role.admin, Role.analyst, Role.committee, Role.fund_manager})
ORGANIZATION_ROLES = frozenset({Role.ica, Role.lender})


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    key_id: uuid.UUID
    role: Role
    organization_id: uuid.UUID | None = None
    holder: str | None = None  # the person (or system) holding the key, when the admin said

    @property
    def actor(self) -> str:
        """Who acts, for maker-checker rules: the key's holder, else the key itself."""
        return self.holder or f"key:{self.key_id}"

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


def mint_principal_token(principal: Principal, *, secret: str, audience: str, ttl_seconds: int = 120) -> str:
    now = int(time.time())
    claims = {
        "iss": TOKEN_ISSUER,
        "aud": audience,
        "sub": str(principal.key_id),
        "role": principal.role.value,
        "org": str(principal.organization_id) if principal.organization_id else None,
        "holder": principal.holder,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


TOKEN_LEEWAY_SECONDS = 5
_VERIFIED_AT_MOST = 10_000
# Tokens already verified, with their principal and expiry: the gateway reuses a key's token for a while, so a busy
# caller's requests skip the HMAC and the claims' parsing. The signature of a given text under a given secret and
# audience never changes; what time changes (expiry) is checked on every use.
_verified: dict[tuple[str, str, str], tuple[Principal, int]] = {}


def verify_principal_token(token: str, *, secret: str, audience: str) -> Principal:
    key = (token, secret, audience)
    known = _verified.get(key)
    if known is not None:
        principal, expires = known
        if time.time() <= expires + TOKEN_LEEWAY_SECONDS:
            return principal
        _verified.pop(key, None)  # its signed expiry has passed: refused, as a verification would now
        raise Unauthorized("the request did not come through the gateway with a valid principal")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=audience,
            issuer=TOKEN_ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            leeway=TOKEN_LEEWAY_SECONDS,
        )
        principal = Principal(
            key_id=claims["sub"], role=claims["role"], organization_id=claims.get("org"), holder=claims.get("holder")
        )
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise Unauthorized("the request did not come through the gateway with a valid principal") from exc
    if len(_verified) >= _VERIFIED_AT_MOST:
        _verified.clear()
    _verified[key] = (principal, int(claims["exp"]))
    return principal


SERVICE_HEADER = "x-fisiq-service"
SERVICE_ISSUER = "fisiq-service"


def mint_service_token(caller: str, *, secret: str, audience: str, ttl_seconds: int = 300) -> str:
    """A service calling another service's internal API (the event feed) signs who it is for that service."""
    now = int(time.time())
    claims = {"iss": SERVICE_ISSUER, "aud": audience, "sub": caller, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm="HS256")


async def service_caller(request: Request) -> str:
    """Dependency of internal routes: the calling service's name, or 401. API keys never reach these routes."""
    token = request.headers.get(SERVICE_HEADER)
    if not token:
        raise Unauthorized("internal route: only the platform's services may call it")
    try:
        claims = jwt.decode(
            token,
            request.app.state.internal_secret,
            algorithms=["HS256"],
            audience=request.app.state.service_name,
            issuer=SERVICE_ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            leeway=5,
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized("internal route: the service token is not valid") from exc
    return str(claims["sub"])


def principal_from_request(request: Request) -> Principal | None:
    """The verified principal of this request, or None when no principal token was sent (cached per request)."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = request.headers.get(PRINCIPAL_HEADER)
    if not token:
        return None
    principal = verify_principal_token(
        token, secret=request.app.state.internal_secret, audience=request.app.state.service_name
    )
    request.state.principal = principal
    return principal


async def current_principal(request: Request) -> Principal:
    principal = principal_from_request(request)
    if principal is None:
        raise Unauthorized("an API key is required: call through the gateway with `Authorization: Bearer <key>`")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role) -> Any:
    """Dependency: the caller's role must be one of `roles`, else 403."""
    allowed = frozenset(roles)

    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(
                f"role {principal.role.value!r} may not call this; allowed: "
                + ", ".join(sorted(r.value for r in allowed))
            )
        return principal

    return Depends(check)


def ensure_same_organization(principal: Principal, organization_id: uuid.UUID | None) -> None:
    """Staff and funders see every organization; an ICA or lender key only its own. Outsiders get 403."""
    if principal.role in ORGANIZATION_ROLES and principal.organization_id != organization_id:
        raise Forbidden("this resource belongs to another organization")
