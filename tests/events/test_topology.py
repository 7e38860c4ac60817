"""The reports' read model hears every loan event the portfolio announces: each carries the loan's standing,
and a missed one (a backdated charge, say) would leave later dates wrong."""

from __future__ import annotations

import shared.contracts.portfolio  # noqa: F401 - registers the portfolio's contracts
from shared.events.contracts import _CONTRACTS
from shared.events.topology import SUBSCRIPTIONS


def test_the_reporting_read_model_subscribes_to_every_loan_event() -> None:
    announced = {event_type for event_type, _ in _CONTRACTS if event_type.startswith(("loan.", "fx."))}
    reporting = next(s for s in SUBSCRIPTIONS if s.consumer == "reporting" and s.producer == "portfolio")
    assert announced - reporting.types == set()
    assert "loan.charged" in announced
