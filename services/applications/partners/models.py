import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.applications.db import Base


class Business(Base):
    """A social/solidarity-economy business, partner of one ICA. It does not log in: its ICA acts for it."""

    __tablename__ = "businesses"
    __table_args__ = (Index("ix_businesses_ica_created", "ica_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    ica_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("applications.icas.id"))
    name: Mapped[str] = mapped_column(String(200))
    legal_form: Mapped[str] = mapped_column(String(40))
    country: Mapped[str] = mapped_column(String(2))
    sector: Mapped[str] = mapped_column(String(100))
    year_founded: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class BusinessProfile(Base):
    """Impact and governance facts as reported on a date. Never updated: a new report is a new row."""

    __tablename__ = "business_profiles"
    __table_args__ = (Index("ix_business_profiles_business_reported", "business_id", "reported_on", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    business_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("applications.businesses.id"))
    reported_on: Mapped[date] = mapped_column(Date)
    members_total: Mapped[int] = mapped_column(Integer)
    members_women: Mapped[int] = mapped_column(Integer)
    board_seats_total: Mapped[int] = mapped_column(Integer)
    board_seats_women: Mapped[int] = mapped_column(Integer)
    employees_total: Mapped[int] = mapped_column(Integer)
    employees_women: Mapped[int] = mapped_column(Integer)
    senior_managers_total: Mapped[int] = mapped_column(Integer)
    senior_managers_women: Mapped[int] = mapped_column(Integer)
    women_ownership_pct: Mapped[int | None] = mapped_column(Integer)
    general_assembly_last_12_months: Mapped[bool] = mapped_column(Boolean)
    board_elected_by_members: Mapped[bool] = mapped_column(Boolean)
    one_member_one_vote: Mapped[bool] = mapped_column(Boolean)
    environmental_practices: Mapped[list[str]] = mapped_column(ARRAY(Text))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    recorded_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
