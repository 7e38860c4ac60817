import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.portfolio.db import Base


class LenderPush(Base):
    """A lender's signed push, stored exactly as received (the raw bytes the signature covers) before any 2xx."""

    __tablename__ = "lender_pushes"
    __table_args__ = (
        UniqueConstraint("lender_id", "webhook_id", name="uq_lender_pushes_webhook_id"),
        Index("ix_lender_pushes_pending", "received_at", postgresql_where="status = 'received'"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    lender_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("portfolio.lenders.id"))
    webhook_id: Mapped[str] = mapped_column(String(200))
    raw_body: Mapped[bytes] = mapped_column(LargeBinary)
    item_count: Mapped[int] = mapped_column(Integer)
    # received: stored, its items not yet applied; processed: every item applied or rejected with its reason
    status: Mapped[str] = mapped_column(String(20), server_default="received")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    applied: Mapped[int] = mapped_column(Integer, server_default="0")
    duplicates: Mapped[int] = mapped_column(Integer, server_default="0")
    rejected: Mapped[int] = mapped_column(Integer, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0", comment="failed attempts at applying it")
    last_error: Mapped[str | None] = mapped_column(Text)


class PushItem(Base):
    """What became of one item of a push: applied, a duplicate of a transaction already counted, or rejected with
    its reason."""

    __tablename__ = "lender_push_items"

    push_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("portfolio.lender_pushes.id"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str | None] = mapped_column(String(30))
    transaction_id: Mapped[str | None] = mapped_column(String(100), comment="the lender's transaction id")
    loan_id: Mapped[str | None] = mapped_column(String(100), comment="as the lender sent it")
    status: Mapped[str] = mapped_column(String(20))  # applied | duplicate | rejected
    reason: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)
    loan_transaction_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
