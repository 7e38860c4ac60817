import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.portfolio.db import Base


class LenderPush(Base):
    """A lender's signed push, stored exactly as received (the raw bytes the signature covers) before any 2xx."""

    __tablename__ = "lender_pushes"
    __table_args__ = (UniqueConstraint("lender_id", "webhook_id", name="uq_lender_pushes_webhook_id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    lender_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("portfolio.lenders.id"))
    webhook_id: Mapped[str] = mapped_column(String(200))
    raw_body: Mapped[bytes] = mapped_column(LargeBinary)
    item_count: Mapped[int] = mapped_column(Integer)
    # received: stored, its items not yet applied; processed: every item applied or rejected with its reason
    status: Mapped[str] = mapped_column(String(20), server_default="received")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
