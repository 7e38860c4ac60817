"""The gateway's own tables, in the `gateway` schema: API keys (stored only as SHA-256 hashes)."""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Float, Integer, MetaData, String, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA = "gateway"
metadata = MetaData(schema=SCHEMA)


class Base(DeclarativeBase):
    metadata = metadata


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(
            "role IN ('admin','analyst','committee','fund_manager','ica','lender','funder')",
            name="ck_api_keys_role",
        ),
        CheckConstraint("(role IN ('ica','lender')) = (organization_id IS NOT NULL)", name="ck_api_keys_organization"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    organization_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    holder: Mapped[str | None] = mapped_column(String(320))
    # SHA-256 of the whole key: keys are 256-bit random, so a fast hash is safe and a lookup is one index probe.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    rate_limit_per_second: Mapped[float | None] = mapped_column(Float)
    rate_limit_burst: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
