"""Who subscribes to whom: declared here, in the kernel, so a producer knows every subscriber it must wait for
before pruning, even one that has never called yet. A consumer binds its handlers to these names.

Each entry: the consuming service, the subscription's name, the producing service, the event types.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SubscriptionSpec:
    consumer: str
    name: str
    producer: str
    types: frozenset[str] | None  # None: every type

    @property
    def ack_name(self) -> str:
        return f"{self.consumer}:{self.name}"


# what a consumer following loans' figures needs from the portfolio (a charge changes no outstanding principal)
LOAN_CHANGES = frozenset(
    {
        "loan.opened",
        "loan.disbursed",
        "loan.repayment_applied",
        "loan.recovery_received",
        "loan.repayment_reversed",
        "loan.restructured",
        "loan.written_off",
        "loan.repaid",
        "loan.in_arrears",
        "loan.defaulted",
        "loan.cured",
    }
)

SUBSCRIPTIONS: list[SubscriptionSpec] = [
    SubscriptionSpec("portfolio", "loans-from-approvals", "applications", frozenset({"application.approved"})),
    SubscriptionSpec(
        "guarantees",
        "guarantees-from-loans",
        "portfolio",
        LOAN_CHANGES,
    ),
    # the reporting service's read model: every loan figure and FX rate, then businesses and applications
    SubscriptionSpec(
        "reporting",
        "portfolio-read-model",
        "portfolio",
        # every loan event (a charge too: it can change the standing of later dates) and every FX rate
        LOAN_CHANGES | {"loan.charged", "fx.rate_recorded"},
    ),
    SubscriptionSpec(
        "reporting",
        "applications-read-model",
        "applications",
        frozenset(
            {
                "business.registered",
                "business.updated",
                "application.submitted",
                "application.screened",
                "application.approved",
                "application.rejected",
                "application.sent_to_committee",
                "application.returned",
                "application.withdrawn",
            }
        ),
    ),
    SubscriptionSpec(
        "reporting",
        "guarantees-read-model",
        "guarantees",
        frozenset(
            {
                "guarantee.issued",
                "guarantee.refused",
                "guarantee.exposure_changed",
                "guarantee.released",
                "guarantee.expired",
                "claim.filed",
                "claim.validated",
                "claim.paid",
                "claim.rejected",
                "recovery.shared",
                "capital.entry_recorded",
                "facility.terms_set",
            }
        ),
    ),
]


def subscribers_of(producer: str) -> list[str]:
    return [s.ack_name for s in SUBSCRIPTIONS if s.producer == producer]
