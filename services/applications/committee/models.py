import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.applications.db import Base


class Scorecard(Base):
    """The analyst's social scorecard of an application: five dimensions scored 0-4, weighted by policy."""

    __tablename__ = "scorecards"
    __table_args__ = (Index("ix_scorecards_application", "application_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    application_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("applications.applications.id"))
    reviewer: Mapped[str] = mapped_column(String(320))
    reviewer_key_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    policy_version: Mapped[int] = mapped_column(Integer, ForeignKey("applications.policies.version"))
    scores: Mapped[dict[str, int]] = mapped_column(JSONB)
    weights: Mapped[dict[str, int]] = mapped_column(JSONB)
    score: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ConflictOfInterest(Base):
    """A committee member's declared conflict of interest with a business: they may not vote on it."""

    __tablename__ = "conflicts_of_interest"
    __table_args__ = (UniqueConstraint("business_id", "member", name="uq_conflicts_of_interest_business_member"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    business_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("applications.businesses.id"))
    member: Mapped[str] = mapped_column(String(320))
    member_key_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    reason: Mapped[str] = mapped_column(Text)
    declared_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Vote(Base):
    __tablename__ = "committee_votes"
    __table_args__ = (UniqueConstraint("application_id", "voter", name="uq_committee_votes_application_voter"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    application_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("applications.applications.id"))
    voter: Mapped[str] = mapped_column(String(320))
    voter_key_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    decision: Mapped[str] = mapped_column(String(10))
    comment: Mapped[str] = mapped_column(Text)
    terms: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Approval(Base):
    """The committee's decision to approve, with the final terms (what opens the loan and the guarantee)."""

    __tablename__ = "approvals"

    application_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("applications.applications.id"), primary_key=True
    )
    terms: Mapped[dict[str, Any]] = mapped_column(JSONB)
    policy_version: Mapped[int] = mapped_column(Integer, ForeignKey("applications.policies.version"))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
