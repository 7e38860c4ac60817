import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, Numeric, String, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.portfolio.db import Base


class Loan(Base):
    """A loan opened from an approved application, in the lender's currency."""

    __tablename__ = "loans"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    application_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    approval_event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    business_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    ica_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    lender_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    country: Mapped[str] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(3))
    principal: Mapped[Decimal] = mapped_column(Numeric(20, 4))
    term_months: Mapped[int] = mapped_column(Integer)
    instruments: Mapped[list[str]] = mapped_column(ARRAY(String(20)))
    guarantee_coverage_pct: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    conditions: Mapped[list[str]] = mapped_column(ARRAY(String))
    business: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="the business as approved (name, form, facts)")
    status: Mapped[str] = mapped_column(String(30), server_default="pending_disbursement")
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Participant(Base):
    """Who carries the loan and in what share: the fund and the lender for co-financing, the lender alone for a
    guaranteed loan. Shares sum to 100."""

    __tablename__ = "loan_participants"

    loan_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("portfolio.loans.id"), primary_key=True)
    participant: Mapped[str] = mapped_column(String(10), primary_key=True)  # "fund" | "lender"
    share_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2))
