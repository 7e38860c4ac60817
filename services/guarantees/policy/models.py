from datetime import datetime
from decimal import Decimal
from uuid import UUID as PyUUID

from sqlalchemy import DateTime, Integer, Numeric, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.guarantees.db import Base


class GuaranteePolicy(Base):
    """The guarantee fund's policy (DOMAIN.md, Guarantees), versioned: a change is a new version, the old ones
    are kept, and each decision names the version it used."""

    __tablename__ = "guarantee_policy"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    coverage_default_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    coverage_min_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    coverage_max_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    fee_rate_default_pct: Mapped[Decimal] = mapped_column(Numeric(6, 3))
    claim_trigger_dpd_default: Mapped[int] = mapped_column(Integer)
    claim_deadline_months_default: Mapped[int] = mapped_column(Integer)
    leverage_max: Mapped[Decimal] = mapped_column(Numeric(6, 2), comment="total exposure / capital available")
    per_lender_max_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), comment="of total guarantee capacity")
    per_country_max_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    per_borrower_max_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[PyUUID | None] = mapped_column(UUID(as_uuid=True))
