"""Who sees what in the applications service.

Staff (admin, analyst, committee, fund_manager) see every ICA's data. An `ica` key sees and touches only its own
organization's partners and applications; another ICA's resource answers 404, so its existence does not leak.
Lenders and funders read nothing here (funders get reports from the reporting service).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends

from shared.auth import CurrentPrincipal, Principal, Role
from shared.problems import Forbidden, NotFound

READERS = frozenset({Role.admin, Role.analyst, Role.committee, Role.fund_manager, Role.ica})


async def applications_reader(principal: CurrentPrincipal) -> Principal:
    if principal.role not in READERS:
        raise Forbidden(f"role {principal.role.value!r} has no access to applications and partners")
    return principal


Reader = Annotated[Principal, Depends(applications_reader)]


def ica_scope(principal: Principal) -> uuid.UUID | None:
    """The only ICA this caller may see, or None for staff (every ICA)."""
    return principal.organization_id if principal.role == Role.ica else None


def ensure_visible(principal: Principal, ica_id: uuid.UUID, what: str) -> None:
    scope = ica_scope(principal)
    if scope is not None and scope != ica_id:
        raise NotFound(f"no {what}")
