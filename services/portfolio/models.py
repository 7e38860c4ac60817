"""Every table of the portfolio service, all in its own `portfolio` schema (Alembic reads this)."""

from services.portfolio.db import SCHEMA, Base, events, idempotency_keys, metadata
from services.portfolio.fx.models import FxRate
from services.portfolio.lenders.models import Lender, LenderSecret
from services.portfolio.loans.models import Loan, Participant
from services.portfolio.pushes.models import LenderPush

__all__ = [
    "SCHEMA",
    "Base",
    "FxRate",
    "Lender",
    "LenderPush",
    "LenderSecret",
    "Loan",
    "Participant",
    "events",
    "idempotency_keys",
    "metadata",
]
