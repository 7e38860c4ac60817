import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, DateTime, Numeric, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.guarantees.db import Base


class FeeInvoice(Base):
    """A lender's guarantee fees for a quarter, in one currency: Σ over its guarantees and the quarter's days of
    coverage × the loan's outstanding principal that day × the facility's annual fee rate ÷ 365."""

    __tablename__ = "fee_invoices"
    __table_args__ = (UniqueConstraint("lender_id", "quarter", "currency", name="uq_fee_invoices_quarter"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    lender_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    quarter: Mapped[str] = mapped_column(String(7))  # 2026-Q3
    period_from: Mapped[date] = mapped_column(Date)
    period_to: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(Numeric(20, 4))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, comment="per guarantee: days and fee")
    status: Mapped[str] = mapped_column(String(10), server_default="unpaid")  # unpaid | paid
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    paid_on: Mapped[date | None] = mapped_column(Date)
