import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, DateTime, Index, Integer, Numeric, String, Text, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.guarantees.db import Base


class Guarantee(Base):
    """The fund's guarantee on one loan, under the facility terms (version) it was issued with. Its exposure on a
    date is min(coverage × the loan's outstanding principal in CAD at that date's rate, cap): the outstanding
    follows the portfolio's loan events."""

    __tablename__ = "guarantees"
    __table_args__ = (
        Index("ix_guarantees_lender_status", "lender_id", "status"),
        Index("ix_guarantees_country_status", "country", "status"),
        Index("ix_guarantees_business_status", "business_id", "status"),
        Index(
            "ix_guarantees_overdue",
            "overdue_since",
            postgresql_where=text("status = 'active' AND overdue_since IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    loan_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    application_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    lender_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    business_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    country: Mapped[str] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(3))
    facility_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    facility_version: Mapped[int] = mapped_column(Integer)
    coverage_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    cap_cad: Mapped[Decimal] = mapped_column(Numeric(20, 2))
    principal: Mapped[Decimal] = mapped_column(Numeric(20, 4), comment="the loan's approved principal, in its currency")
    outstanding_principal: Mapped[Decimal] = mapped_column(Numeric(20, 4), comment="the loan's, in its currency")
    # active | released | called | paid | expired | cancelled; refused: asked for, but not within the facility or
    # the limits when the loan opened (`refusal` says why)
    status: Mapped[str] = mapped_column(String(20), server_default="active")
    refusal: Mapped[str | None] = mapped_column(Text)
    issued_on: Mapped[date] = mapped_column(Date)
    exposure_cad_at_issue: Mapped[Decimal] = mapped_column(
        Numeric(20, 2), server_default="0", comment="min(coverage × principal in CAD, cap) when issued"
    )
    overdue_since: Mapped[date | None] = mapped_column(
        Date, comment="the loan's oldest unpaid due date while it is in arrears (from the portfolio's arrears events)"
    )
    expired_on: Mapped[date | None] = mapped_column(Date, comment="the claim deadline passed with no claim")
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
