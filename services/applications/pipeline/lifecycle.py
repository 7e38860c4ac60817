"""The application lifecycle (DOMAIN.md): which moves exist, and who may make each.

draft → submitted → screening → under_review → committee → approved | rejected, with returned (back to the ICA
for more information, then submitted again) and withdrawn (by the ICA before a decision). The platform itself
makes the screening moves. Any other move is refused with 409 naming the current state and the allowed moves.
"""

from __future__ import annotations

from enum import StrEnum

from shared.auth import Principal, Role
from shared.problems import Conflict, Forbidden


class Status(StrEnum):
    draft = "draft"
    submitted = "submitted"
    screening = "screening"
    under_review = "under_review"
    committee = "committee"
    approved = "approved"
    rejected = "rejected"
    returned = "returned"
    withdrawn = "withdrawn"


class Action(StrEnum):
    submit = "submit"
    withdraw = "withdraw"
    return_to_ica = "return"
    send_to_committee = "send_to_committee"


PLATFORM = "platform"
DECIDED = frozenset({Status.approved, Status.rejected, Status.withdrawn})

# (action, from) -> (to, roles allowed)
MOVES: dict[tuple[Action, Status], tuple[Status, frozenset[Role]]] = {
    (Action.submit, Status.draft): (Status.submitted, frozenset({Role.ica})),
    (Action.submit, Status.returned): (Status.submitted, frozenset({Role.ica})),
    (Action.return_to_ica, Status.under_review): (Status.returned, frozenset({Role.analyst})),
    (Action.send_to_committee, Status.under_review): (Status.committee, frozenset({Role.analyst})),
    **{
        (Action.withdraw, s): (Status.withdrawn, frozenset({Role.ica}))
        for s in (Status.draft, Status.submitted, Status.under_review, Status.committee, Status.returned)
    },
}
# moves the platform makes by itself, recorded with actor "platform"
AUTOMATIC: frozenset[tuple[Status, Status]] = frozenset(
    {
        (Status.submitted, Status.screening),
        (Status.screening, Status.under_review),
        (Status.screening, Status.rejected),
        (Status.committee, Status.approved),
        (Status.committee, Status.rejected),
    }
)


def allowed_actions(status: Status, role: Role) -> list[str]:
    return sorted(action.value for (action, source), (_, roles) in MOVES.items() if source == status and role in roles)


def target_of(action: Action, status: Status, principal: Principal) -> Status:
    """The status `action` leads to from `status` for this caller, or a 409 naming what is allowed."""
    if not any(a == action and principal.role in roles for (a, _), (_, roles) in MOVES.items()):
        raise Forbidden(f"role {principal.role.value!r} may never {action.value} an application")
    move = MOVES.get((action, status))
    if move is None or principal.role not in move[1]:
        allowed = allowed_actions(status, principal.role)
        raise Conflict(
            f"cannot {action.value} an application that is {status.value}"
            + (f" as {principal.role.value}" if move is not None else ""),
            slug="transition-not-allowed",
            current_status=status.value,
            allowed_actions=allowed,
        )
    return move[0]
