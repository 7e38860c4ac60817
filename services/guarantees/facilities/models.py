import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, DateTime, ForeignKey, Integer, Numeric, String, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.guarantees.db import Base


class Facility(Base):
    """The fund's guarantee agreement with one lender. Its terms are versioned (`FacilityTerms`): a change makes a
    new version and never rewrites the terms a guarantee was issued under."""

    __tablename__ = "facilities"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    lender_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class FacilityTerms(Base):
    __tablename__ = "facility_terms"

    facility_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("guarantees.facilities.id"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    coverage_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), comment="share of the outstanding principal covered")
    ceiling_cad: Mapped[Decimal] = mapped_column(Numeric(20, 2), comment="cap on the lender's guaranteed exposure")
    max_cover_per_loan_cad: Mapped[Decimal] = mapped_column(Numeric(20, 2))
    fee_rate_pct: Mapped[Decimal] = mapped_column(Numeric(6, 3), comment="a year, on the guaranteed outstanding")
    claim_trigger_dpd: Mapped[int] = mapped_column(Integer)
    claim_deadline_months: Mapped[int] = mapped_column(Integer, comment="after the default date")
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)
    recoveries: Mapped[str] = mapped_column(String(20), server_default="pari_passu")
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
