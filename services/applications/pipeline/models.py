import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, Numeric, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.applications.db import Base


class Application(Base):
    """An ICA's request for financing for one of its partner businesses."""

    __tablename__ = "applications"
    __table_args__ = (
        Index("ix_applications_ica_created", "ica_id", "created_at", "id"),
        Index("ix_applications_status_created", "status", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    ica_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("applications.icas.id"))
    business_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("applications.businesses.id"))
    status: Mapped[str] = mapped_column(String(20))
    amount: Mapped[Decimal] = mapped_column(Numeric(20, 4))
    currency: Mapped[str] = mapped_column(String(3))
    term_months: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(40))
    instruments: Mapped[list[str]] = mapped_column(ARRAY(String(20)))
    lender_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    lender_share_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    support_plan: Mapped[str] = mapped_column(Text)
    created_by: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Transition(Base):
    """Every change of an application's status: who, when, from, to, why."""

    __tablename__ = "application_transitions"
    __table_args__ = (Index("ix_application_transitions_application", "application_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    application_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("applications.applications.id"))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor_key_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), comment="None: the platform itself")
    actor_role: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str | None] = mapped_column(String(320), comment="the key's holder (maker-checker)")
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Screening(Base):
    """One run of the automatic screening, with every criterion's outcome and the policy version used."""

    __tablename__ = "screenings"
    __table_args__ = (Index("ix_screenings_application", "application_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    application_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("applications.applications.id"))
    policy_version: Mapped[int] = mapped_column(Integer, ForeignKey("applications.policies.version"))
    passed: Mapped[bool] = mapped_column(Boolean)
    criteria: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    screened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
