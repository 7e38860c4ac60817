import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.portfolio.db import Base


class Lender(Base):
    """A local bank, microfinance institution or credit union lending beside the fund or under its guarantee."""

    __tablename__ = "lenders"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    institution_type: Mapped[str] = mapped_column(String(30))
    country: Mapped[str] = mapped_column(String(2))
    currencies: Mapped[list[str]] = mapped_column(ARRAY(String(3)))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LenderSecret(Base):
    """A lender's webhook signing secret. Two may be valid at once while the lender rotates."""

    __tablename__ = "lender_webhook_secrets"
    __table_args__ = (Index("ix_lender_webhook_secrets_lender", "lender_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    lender_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("portfolio.lenders.id"))
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
