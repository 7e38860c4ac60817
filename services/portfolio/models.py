"""Every table of the portfolio service, all in its own `portfolio` schema (Alembic reads this)."""

from services.portfolio.db import SCHEMA, Base, events, idempotency_keys, metadata
from services.portfolio.fx.models import FxRate
from services.portfolio.lenders.models import Lender, LenderSecret
from services.portfolio.loans.models import (
    ArrearsSnapshot,
    CloseOfDay,
    Instalment,
    Loan,
    Participant,
    PortfolioPolicy,
    ScheduleVersion,
    Transaction,
)
from services.portfolio.pushes.models import LenderPush, PushItem

__all__ = [
    "SCHEMA",
    "ArrearsSnapshot",
    "Base",
    "CloseOfDay",
    "FxRate",
    "Instalment",
    "Lender",
    "LenderPush",
    "LenderSecret",
    "Loan",
    "Participant",
    "PortfolioPolicy",
    "PushItem",
    "ScheduleVersion",
    "Transaction",
    "events",
    "idempotency_keys",
    "metadata",
]
