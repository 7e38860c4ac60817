import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, DateTime, ForeignKey, Index, Integer, Numeric, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.guarantees.db import Base


class Claim(Base):
    """A lender's call on a guarantee: filed → validated → paid, or rejected."""

    __tablename__ = "claims"
    __table_args__ = (Index("ix_claims_lender", "lender_id", "filed_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    guarantee_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("guarantees.guarantees.id"))
    loan_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    lender_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    currency: Mapped[str] = mapped_column(String(3))
    default_date: Mapped[date] = mapped_column(Date)
    days_past_due: Mapped[int] = mapped_column(Integer, comment="on the day it was filed")
    amount_in_default: Mapped[Decimal] = mapped_column(
        Numeric(20, 4), comment="outstanding principal on the default date"
    )
    rate: Mapped[Decimal] = mapped_column(Numeric(24, 12), comment="CAD per unit on the default date")
    payout_cad: Mapped[Decimal] = mapped_column(Numeric(20, 2), comment="min(coverage × amount in default, cap)")
    documents: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20), server_default="filed")  # filed | validated | paid | rejected
    filed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    filed_by: Mapped[str] = mapped_column(String(200))
    validated_by: Mapped[str | None] = mapped_column(String(200))
    paid_on: Mapped[date | None] = mapped_column(Date)


class ClaimStep(Base):
    """A claim's history: who moved it, when, from what to what, and why."""

    __tablename__ = "claim_steps"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    claim_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("guarantees.claims.id"))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Recovery(Base):
    """The fund's share of money the lender recovered after a claim was paid: coverage × the recovery, in CAD at
    the recovery's date, until the payout is recouped, never beyond."""

    __tablename__ = "recoveries"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    claim_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("guarantees.claims.id"))
    source: Mapped[str] = mapped_column(String(100), unique=True, comment="the loan event or staff entry it came from")
    amount: Mapped[Decimal] = mapped_column(Numeric(20, 4), comment="recovered by the lender, in the loan's currency")
    value_date: Mapped[date] = mapped_column(Date)
    rate: Mapped[Decimal] = mapped_column(Numeric(24, 12))
    fund_share_cad: Mapped[Decimal] = mapped_column(Numeric(20, 2))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
