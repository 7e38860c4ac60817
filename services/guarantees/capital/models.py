import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Date, DateTime, Index, Numeric, String, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.guarantees.db import Base


class CapitalEntry(Base):
    """One movement of the guarantee fund's capital, in CAD. Capital available on a date = the sum of the entries
    dated on or before it. Entries are never changed: a mistake is corrected by an `adjustment`."""

    __tablename__ = "capital_entries"
    __table_args__ = (
        Index("ix_capital_entries_value_date", "value_date"),
        CheckConstraint("amount_cad <> 0", name="ck_capital_entries_nonzero"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(20))  # contribution | fee_income | claim_paid | recovery | adjustment
    amount_cad: Mapped[Decimal] = mapped_column(Numeric(20, 2), comment="signed: claims paid are negative")
    value_date: Mapped[date] = mapped_column(Date)
    reference: Mapped[str | None] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    recorded_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
